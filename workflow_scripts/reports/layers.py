"""What a layer-by-layer pruning chain did, layer by layer: the dev score after every layer's fine-tune (a DVC plot:
AUBER's per-layer figure) and layerwise_metrics.json (heads pruned per layer and in total, mini-dev scores and
search time of each layer's search, parameters and encoder FLOPs before and after, dev before and after).

Checkpoints are scored on dev as the evaluate stage scores them (core.evaluation): the dev split is only reported
here; nothing in the chain selects on it.
"""
from __future__ import annotations

import logging
import os

import pandas as pd

from workflow_scripts.core.counters import count_flops, count_parameters
from workflow_scripts.core.evaluation import evaluate_split
from workflow_scripts.core.io_utils import read_json
from workflow_scripts.core.models import load_for_classification
from workflow_scripts.core.surgery import model_structure
from workflow_scripts.data.tokenized import load_tokenized

FLOPS_SEQ_LEN = 128
CURVE_COLUMNS = ["step", "layer", "heads_pruned_in_layer", "heads_pruned_total", "metric", "dev_score"]
logger = logging.getLogger(__name__)


def describe_checkpoint(folder: str, dataset_dict, task: dict, batch_size: int, collate_fn, device: str) -> dict:
    """Dev metrics, parameters, encoder FLOPs of one sequence and heads per layer of a checkpoint folder."""
    model = load_for_classification(folder, task["num_labels"])
    dev = evaluate_split(model, dataset_dict[task["dev_split"]], task, batch_size, collate_fn, device, "dev")
    return {"dev": dev, "parameters": count_parameters(model)["total"],
            "encoder_flops": count_flops(model, batch_size=1, seq_len=FLOPS_SEQ_LEN)["encoder"],
            "heads_per_layer": model_structure(model)["heads_per_layer"]}


def search_evidence(search: dict) -> dict:
    """What shows that AUBER's agent learned in a layer: optimiser steps taken, head sets scored, the reward of its
    decision and where it falls among random sets of the same size. Competitors' logs have none of it."""
    if "dqn_updates" not in search:
        return {}
    random_sets = search["random_sets"]
    return {"dqn_updates": search["dqn_updates"], "distinct_head_sets_scored": search["distinct_head_sets_scored"],
            "greedy_reward": search["greedy_reward"],
            "random_sets": {key: random_sets.get(key) for key in
                            ("size", "sets", "possible_sets", "best_reward", "median_reward",
                             "decision_at_least_share")}}


def layer_report(data: str, initial: str, pruned: list[str], finetuned: list[str], final: str, batch_size: int,
                 device: str) -> tuple[pd.DataFrame, dict]:
    """(dev_by_layer table, layerwise_metrics) of a chain on its tokenized task `data`: its starting checkpoint,
    each layer's prune_layer and finetune_layer folders in processing order, and its final fine-tune. Step 0 is
    before pruning, the last row after the final fine-tune."""
    from transformers import AutoTokenizer, DataCollatorWithPadding

    if not pruned or len(pruned) != len(finetuned):
        raise ValueError("the pruned and fine-tuned checkpoints must list the same layers (at least one)")
    dataset_dict, task = load_tokenized(data)
    collate_fn = DataCollatorWithPadding(AutoTokenizer.from_pretrained(initial))
    metric = task["metrics"][0]

    def describe(folder):
        return describe_checkpoint(folder, dataset_dict, task, batch_size, collate_fn, device)

    first, last = describe(initial), describe(final)
    rows = [{"step": 0, "layer": "", "heads_pruned_in_layer": 0, "heads_pruned_total": 0,
             "metric": metric, "dev_score": first["dev"][metric]}]
    layers, total = [], 0
    for step, (pruned_folder, finetuned_folder) in enumerate(zip(pruned, finetuned), start=1):
        search = read_json(os.path.join(pruned_folder, "search_log.json"))
        after = describe(finetuned_folder)
        total += len(search["pruned_head_ids"])
        rows.append({"step": step, "layer": search["layer"], "heads_pruned_in_layer": len(search["pruned_head_ids"]),
                     "heads_pruned_total": total, "metric": metric, "dev_score": after["dev"][metric]})
        layers.append({"layer": search["layer"], "pruned_head_ids": search["pruned_head_ids"],
                       "mini_dev_score_before": search["mini_dev_score_before"],
                       "mini_dev_score_after": search["mini_dev_score_after"],
                       f"dev_{metric}_after_finetune": after["dev"][metric],
                       "search_seconds": search["seconds"], "reward_cache": search.get("reward_cache"),
                       **search_evidence(search)})
        logger.info("step %d (layer %d): pruned %s, dev %s %.4f", step, search["layer"], search["pruned_head_ids"],
                    metric, after["dev"][metric])
    rows.append({"step": len(rows), "layer": "final", "heads_pruned_in_layer": 0, "heads_pruned_total": total,
                 "metric": metric, "dev_score": last["dev"][metric]})
    summary = {
        "task": task["name"], "method": search["method"], "seed": search["seed"], "metric": metric,
        "heads_pruned_total": total,
        "heads_pruned_by_layer": {str(entry["layer"]): entry["pruned_head_ids"] for entry in layers},
        "heads_per_layer_before": first["heads_per_layer"], "heads_per_layer_after": last["heads_per_layer"],
        "dev_before": first["dev"], "dev_after": last["dev"],
        "parameters_before": first["parameters"], "parameters_after": last["parameters"],
        f"encoder_flops_seq{FLOPS_SEQ_LEN}_before": first["encoder_flops"],
        f"encoder_flops_seq{FLOPS_SEQ_LEN}_after": last["encoder_flops"],
        "search_seconds_total": round(sum(entry["search_seconds"] for entry in layers), 1),
        "layers": layers,
    }
    logger.info("%s: %d heads pruned; dev %s %.4f -> %.4f", task["name"], total, metric, first["dev"][metric],
                last["dev"][metric])
    return pd.DataFrame(rows, columns=CURVE_COLUMNS), summary
