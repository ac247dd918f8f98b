"""One layer of a head-pruning chain (prune_layer): re-split the training set into mini-train and mini-dev, let the
method choose heads of the layer on mini-dev, prune them physically.

Methods: auber (the DQN agent; its ablations are auber with other settings) and the competitors (random,
confidence, michel, voita). A competitor prunes as many heads as its budget says: the count AUBER pruned in this
layer for the same task and seed (budget: AUBER's prune folder of the layer), or the heads a global ranking picked
for the layer (budget: global_ranking.json). It scores the heads of the current checkpoint on mini-dev
(confidence, michel) or trains gates on mini-train (voita), and prunes the lowest.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from workflow_scripts.core.io_utils import read_json
from workflow_scripts.core.surgery import encoder_layers, kept_head_ids, prune_heads
from workflow_scripts.core.training import seed_everything
from workflow_scripts.data.tasks import TRAIN
from workflow_scripts.head_pruning.auber import AuberConfig, search_layer
from workflow_scripts.head_pruning.competitors import COMPETITORS, lowest_positions, score_heads
from workflow_scripts.head_pruning.configs import CompetitorConfig, ScoringConfig
from workflow_scripts.head_pruning.head_set_scorer import head_set_scorer
from workflow_scripts.head_pruning.layerwise import layer_seed, layer_split, seeded_subset

METHODS = ("auber", *COMPETITORS)


@dataclass
class LayerJob:
    """Which layer of which chain, and what the method and its scoring read."""
    layer: int
    method: str                 # auber or a competitor (an ablation runs auber)
    method_name: str            # the method's name in the pipeline (an ablation's name)
    seed: int
    layer_order: str
    scoring: ScoringConfig
    auber: AuberConfig | None = None            # for auber
    competitors: CompetitorConfig | None = None  # for a competitor
    budget: str | None = None                   # for a competitor
    search_cache: bool = True


def episode_progress(layer: int, episodes: int):
    bar = tqdm(total=episodes, desc=f"layer {layer} search", unit="episode", dynamic_ncols=True)

    def report(episode, log):
        bar.update()
        bar.set_postfix(eps=f"{log.epsilon:.2f}", ret=f"{log.episode_return:+.2f}", len=len(log.actions))
        if episode + 1 == episodes:
            bar.close()
    return report


def budget_for_layer(budget_path: str, layer: int) -> tuple[int, list[int] | None]:
    """(number of heads to prune, the original ids when a global ranking fixed them)."""
    if budget_path is None:
        raise ValueError("a competitor needs --budget (AUBER's prune folder of the layer or global_ranking.json)")
    if budget_path.endswith(".json"):
        head_ids = read_json(budget_path)["head_ids_by_layer"][str(layer)]
        return len(head_ids), head_ids
    auber_log = read_json(f"{budget_path}/search_log.json")
    if auber_log["layer"] != layer:
        raise ValueError(f"--budget {budget_path} is AUBER's search of layer {auber_log['layer']}, not {layer}")
    return len(auber_log["pruned_head_ids"]), None


def choose_heads_competitor(job: LayerJob, model, train_split, mini_train, mini_dev, metric, collate_fn, device,
                            logger) -> dict:
    """A competitor's decision for one layer, in the shape of AUBER's search log."""
    started = time.perf_counter()
    count, fixed_ids = budget_for_layer(job.budget, job.layer)
    original_ids = kept_head_ids(model, job.layer)
    scoring_rows = seeded_subset(mini_dev, job.competitors.score_max_examples,
                                 layer_seed(job.seed, job.layer, "score_rows"))
    details, scores = {}, None
    if fixed_ids is None:
        scores_by_layer, details = score_heads(
            job.method, model, [job.layer], train_split.select(scoring_rows), train_split.select(mini_train),
            job.scoring.batch_size, collate_fn, device, layer_seed(job.seed, job.layer, job.method),
            job.competitors.voita())
        scores = scores_by_layer[job.layer]
        pruned_positions = lowest_positions(scores, count)
    else:
        pruned_positions = sorted(original_ids.index(head_id) for head_id in fixed_ids)
    with head_set_scorer(model, job.layer, train_split.select(scoring_rows), metric, job.scoring.batch_size,
                         collate_fn, device) as scorer:
        before, after = scorer(()), scorer(pruned_positions)
    logger.info("layer %d: %s prunes %d heads (budget %s)%s", job.layer, job.method, count, job.budget,
                "" if scores is None else f"; scores {np.round(scores, 4).tolist()}")
    return {"layer": job.layer, "head_ids": original_ids,
            "scores": None if scores is None else scores.tolist(),
            "pruned_positions": pruned_positions,
            "pruned_head_ids": sorted(original_ids[p] for p in pruned_positions),
            "budget": {"source": job.budget, "heads": count, "fixed_by_global_ranking": fixed_ids is not None},
            "metric": metric, "mini_dev_score_before": before, "mini_dev_score_after": after,
            "mini_dev_examples": len(scoring_rows), "seconds": round(time.perf_counter() - started, 3),
            "details": details}


def choose_heads_auber(job: LayerJob, model, train_split, reward_rows, metric, collate_fn, device, logger) -> dict:
    job.auber.dqn.seed = layer_seed(job.seed, job.layer, "agent")
    seed_everything(job.auber.dqn.seed)
    log = search_layer(model, job.layer, train_split.select(reward_rows), metric, job.scoring.batch_size, collate_fn,
                       device, job.auber, cache=job.search_cache,
                       progress=episode_progress(job.layer, job.auber.dqn.episodes))
    logger.info("layer %d: %d scores computed for %d requests (%.0f%% hits)", job.layer,
                log["reward_cache"]["evaluations"], log["reward_cache"]["calls"], 100 * log["reward_cache"]["hit_rate"])
    return log


def prune_layer(job: LayerJob, model, dataset_dict, task: dict, collate_fn, device: str, logger) -> tuple[dict, dict]:
    """Choose and prune the layer's heads in place; return (search_log.json, mini_split.json)."""
    train_split = dataset_dict[TRAIN]
    num_layers = len(encoder_layers(model))
    if not 0 <= job.layer < num_layers:
        raise ValueError(f"--layer {job.layer}: the model has layers 0..{num_layers - 1}")
    reward_max_examples = job.auber.reward_max_examples if job.auber else None
    mini_train, mini_dev, reward_rows = layer_split(len(train_split), job.scoring.mini_dev_fraction,
                                                    reward_max_examples, job.seed, job.layer)
    metric = task["metrics"][0]  # accuracy, or Matthews correlation for CoLA-like tasks
    logger.info("layer %d: %d heads, mini-train %d / mini-dev %d, metric %s, method %s", job.layer,
                encoder_layers(model)[job.layer].attention.self.num_attention_heads, len(mini_train),
                len(mini_dev), metric, job.method)
    if job.method == "auber":
        log = choose_heads_auber(job, model, train_split, reward_rows, metric, collate_fn, device, logger)
    else:
        log = choose_heads_competitor(job, model, train_split, mini_train, mini_dev, metric, collate_fn, device,
                                      logger)
    logger.info("layer %d: prune heads %s; mini-dev %s %.4f -> %.4f", job.layer, log["pruned_head_ids"], metric,
                log["mini_dev_score_before"], log["mini_dev_score_after"])
    prune_heads(model, {job.layer: log["pruned_head_ids"]})
    log.update(method=job.method_name, algorithm=job.method, task=task["name"], seed=job.seed,
               layer_order=job.layer_order, mini_dev_fraction=job.scoring.mini_dev_fraction)
    mini_split = {"layer": job.layer, "seed": job.seed, "mini_dev_fraction": job.scoring.mini_dev_fraction,
                  "mini_train": mini_train, "mini_dev": mini_dev, "reward_examples": reward_rows}
    return log, mini_split
