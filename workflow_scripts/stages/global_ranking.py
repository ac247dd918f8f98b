"""Stage global_ranking: one ranking of every head of the chain's starting model, for competitors.budget =
global_ranking. P is the total AUBER pruned for the same task and seed; the P lowest-scored heads (never a
layer's last one) are written as {layer: original head ids}, and each layer's prune_layer prunes exactly those.
Scores come from a split of the training set of its own (seeded by the run seed), never from dev.
"""
from __future__ import annotations

import numpy as np
from transformers import AutoTokenizer, DataCollatorWithPadding

from workflow_scripts.pipeline.cli import stage_parser, start_stage
from workflow_scripts.head_pruning.competitors import COMPETITORS, global_plan, score_heads
from workflow_scripts.core.io_utils import read_json, write_json
from workflow_scripts.head_pruning.layerwise import layer_seed, seeded_subset, split_mini_train_dev
from workflow_scripts.core.models import load_for_classification
from workflow_scripts.stages.prune_layer import add_competitor_args, voita_config_from_args
from workflow_scripts.core.surgery import encoder_layers, kept_head_ids
from workflow_scripts.data.tasks import TRAIN
from workflow_scripts.stages.tokenize_task import load_tokenized


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, help="the chain's starting checkpoint")
    parser.add_argument("--data", required=True, help="tokenized task folder")
    parser.add_argument("--auber-searches", nargs="+", required=True,
                        help="AUBER's prune folders (every layer) of the same task and seed: P is their total")
    parser.add_argument("--output", required=True, help="global_ranking.json to write")
    parser.add_argument("--method", choices=COMPETITORS, required=True, help="how heads are scored")
    parser.add_argument("--seed", type=int, default=0, help="run seed")
    parser.add_argument("--mini-dev-fraction", type=float, required=True, help="share of train used for scoring")
    parser.add_argument("--batch-size", type=int, default=64, help="examples per forward pass")
    parser.add_argument("--attn-implementation", default="sdpa", choices=["sdpa", "eager"], help="attention kernel")
    add_competitor_args(parser)
    args = parser.parse_args(argv)
    logger, device = start_stage(args)

    total = sum(len(read_json(f"{folder}/search_log.json")["pruned_head_ids"]) for folder in args.auber_searches)
    dataset_dict, task = load_tokenized(args.data)
    train_split = dataset_dict[TRAIN]
    collate_fn = DataCollatorWithPadding(AutoTokenizer.from_pretrained(args.model))
    model = load_for_classification(args.model, task["num_labels"], args.attn_implementation)
    layers = list(range(len(encoder_layers(model))))
    training_rows, scoring_pool = split_mini_train_dev(len(train_split), args.mini_dev_fraction,
                                                       layer_seed(args.seed, 0, "global_split"))
    scoring_rows = seeded_subset(scoring_pool, args.score_max_examples, layer_seed(args.seed, 0, "score_rows"))
    scores, details = score_heads(args.method, model, layers, train_split.select(scoring_rows),
                                  train_split.select(training_rows), args.batch_size, collate_fn, device,
                                  layer_seed(args.seed, 0, args.method), voita_config_from_args(args))
    plan = global_plan(model, scores, total)
    logger.info("%s: %d heads by one ranking: %s", args.method, total, {l: len(ids) for l, ids in plan.items()})
    write_json(args.output, {
        "method": args.method, "seed": args.seed, "heads_total": total,
        "head_ids_by_layer": {str(layer): ids for layer, ids in plan.items()},
        "scores_by_layer": {str(layer): {str(head_id): float(value) for head_id, value in
                                         zip(kept_head_ids(model, layer), np.asarray(values))}
                            for layer, values in scores.items()},
        "details": details})


if __name__ == "__main__":
    main()
