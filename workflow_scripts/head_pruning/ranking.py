"""competitors.budget = global_ranking: one ranking of every head of the chain's starting model. P is the total
AUBER pruned for the same task and seed; the P lowest-scored heads (never a layer's last one) become each layer's
decision. Scores come from a split of the training set of its own (seeded by the run seed), never from dev."""
from __future__ import annotations

import numpy as np

from workflow_scripts.core.io_utils import read_json
from workflow_scripts.core.surgery import encoder_layers, kept_head_ids
from workflow_scripts.data.tasks import TRAIN
from workflow_scripts.head_pruning.competitors import global_plan, score_heads
from workflow_scripts.head_pruning.configs import CompetitorConfig, ScoringConfig
from workflow_scripts.head_pruning.layerwise import layer_seed, seeded_subset, split_mini_train_dev


def auber_total(search_folders: list[str]) -> int:
    """P: the heads AUBER pruned over all layers (its prune folders' search logs)."""
    return sum(len(read_json(f"{folder}/search_log.json")["pruned_head_ids"]) for folder in search_folders)


def global_ranking(method: str, seed: int, model_folder: str, data_folder: str, total: int,
                   scoring: ScoringConfig, competitors: CompetitorConfig, device: str, logger) -> dict:
    """global_ranking.json: the heads each layer loses, and every head's score."""
    from transformers import AutoTokenizer, DataCollatorWithPadding

    from workflow_scripts.core.models import load_for_classification
    from workflow_scripts.data.tokenized import load_tokenized

    dataset_dict, task = load_tokenized(data_folder)
    train_split = dataset_dict[TRAIN]
    collate_fn = DataCollatorWithPadding(AutoTokenizer.from_pretrained(model_folder))
    model = load_for_classification(model_folder, task["num_labels"], scoring.attn_implementation)
    layers = list(range(len(encoder_layers(model))))
    training_rows, scoring_pool = split_mini_train_dev(len(train_split), scoring.mini_dev_fraction,
                                                       layer_seed(seed, 0, "global_split"))
    scoring_rows = seeded_subset(scoring_pool, competitors.score_max_examples, layer_seed(seed, 0, "score_rows"))
    scores, details = score_heads(method, model, layers, train_split.select(scoring_rows),
                                  train_split.select(training_rows), scoring.batch_size, collate_fn, device,
                                  layer_seed(seed, 0, method), competitors.voita())
    plan = global_plan(model, scores, total)
    logger.info("%s: %d heads by one ranking: %s", method, total, {l: len(ids) for l, ids in plan.items()})
    return {"method": method, "seed": seed, "heads_total": total,
            "head_ids_by_layer": {str(layer): ids for layer, ids in plan.items()},
            "scores_by_layer": {str(layer): {str(head_id): float(value) for head_id, value in
                                             zip(kept_head_ids(model, layer), np.asarray(values))}
                                for layer, values in scores.items()},
            "details": details}
