"""AUBER reward scoring: naive, the hidden-state cache (before issue 15) and the packed head-set scorer, per layer.

    python -m benchmarks.auber_search_cache                                  # gen_cola, every layer, params.yaml
    python -m benchmarks.auber_search_cache --layers 0 5 --reward-examples 96 --run-naive

For each layer, from the same seed and with params.yaml's agent:
- new: `HeadSetScorer` (layer-l input and per-head context computed once, rows packed by length with no padding,
  the last layer at [CLS] only, each head set scored once per search);
- today: `PrunedHeadsScorer` with its caches (the input of layer l and its self-attention output, the score cache);
- naive: a full forward pass of the whole model over the reward rows for the score before and the score after every
  reward (equation 4 taken literally), no caches. Its time is the search's reward requests x 2 x the measured time
  of one such pass (median of `--naive-samples`), unless --run-naive runs the naive search itself.
The new and today's searches (and the naive one with --run-naive) must make the same decisions: the same pruned
heads and every episode's actions and rewards. The ratios are naive / new and today / new. The breakdown of the
new scorer's time per head set (set-independent part excluded) is printed for the layers under 20x.
Needs `snakemake models/gen_cola/base/finetune_initial` (or `make run`) first.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from transformers import AutoTokenizer, DataCollatorWithPadding

from workflow_scripts.core.latency import cpu_model_name
from workflow_scripts.core.models import load_for_classification
from workflow_scripts.data.tasks import TRAIN
from workflow_scripts.data.tokenized import load_tokenized
from workflow_scripts.head_pruning import auber
from workflow_scripts.head_pruning.auber import auber_config_from_mapping, search_layer
from workflow_scripts.head_pruning.head_set_scorer import HeadSetScorer, attention_context, layer_after_attention
from workflow_scripts.head_pruning.layerwise import PrunedHeadsScorer, layer_seed, layer_split
from workflow_scripts.pipeline.params import load_params

TARGET = 20.0


def todays_scorer(model, layer_index, dataset, metric, batch_size, collate_fn, device, cache=True):
    return PrunedHeadsScorer(model, layer_index, dataset, metric, batch_size, collate_fn, device,
                             cache_hidden_states=cache, cache_scores=cache)


def run_search(args, layer: int, scorer_factory=None, cache: bool = True) -> tuple[dict, float]:
    """One layer's search; `scorer_factory` replaces the pipeline's scorer choice (today's or the naive one)."""
    dataset_dict, task = load_tokenized(args.data)
    model = load_for_classification(args.model, task["num_labels"])
    _, _, rows = layer_split(len(dataset_dict[TRAIN]), args.mini_dev_fraction, args.reward_examples, args.seed, layer)
    config = auber_config_from_mapping({**load_params()["auber"]["default"], "random_baseline_sets": 0},
                                       seed=layer_seed(args.seed, layer, "agent"))
    collate_fn = DataCollatorWithPadding(AutoTokenizer.from_pretrained(args.model))
    pipeline_factory = auber.head_set_scorer
    if scorer_factory is not None:
        auber.head_set_scorer = scorer_factory
    try:
        started = time.perf_counter()
        log = search_layer(model, layer, dataset_dict[TRAIN].select(rows), task["metrics"][0], args.batch_size,
                           collate_fn, "cpu", config, cache=cache)
        return log, time.perf_counter() - started
    finally:
        auber.head_set_scorer = pipeline_factory


def naive_pass_seconds(args, layer: int) -> float:
    """Median time of one uncached score (a full forward pass over the reward rows)."""
    dataset_dict, task = load_tokenized(args.data)
    model = load_for_classification(args.model, task["num_labels"])
    _, _, rows = layer_split(len(dataset_dict[TRAIN]), args.mini_dev_fraction, args.reward_examples, args.seed, layer)
    collate_fn = DataCollatorWithPadding(AutoTokenizer.from_pretrained(args.model))
    with todays_scorer(model, layer, dataset_dict[TRAIN].select(rows), task["metrics"][0], args.batch_size,
                       collate_fn, "cpu", cache=False) as scorer:
        times = []
        for sample in range(args.naive_samples):
            started = time.perf_counter()
            scorer((sample % scorer.num_heads,))
            times.append(time.perf_counter() - started)
    return statistics.median(times)


@torch.inference_mode()
def breakdown(args, layer: int, repeats: int = 3) -> dict:
    """Seconds per head set of the new scorer by part: layer l after its attention (output projection and FFN), the
    full layers above it, the last layer at [CLS], and the rest (pooler, classifier, metric)."""
    dataset_dict, task = load_tokenized(args.data)
    model = load_for_classification(args.model, task["num_labels"])
    _, _, rows = layer_split(len(dataset_dict[TRAIN]), args.mini_dev_fraction, args.reward_examples, args.seed, layer)
    parts = dict.fromkeys(["layer_l_projection_and_ffn", "full_layers_above", "last_layer_at_cls"], 0.0)
    total = 0.0
    with HeadSetScorer(model, layer, dataset_dict[TRAIN].select(rows), task["metrics"][0]) as scorer:
        layers, layout = scorer.layers, scorer.layout
        for _ in range(repeats):
            started = time.perf_counter()
            scorer._evaluate(frozenset())
            total += time.perf_counter() - started
            started = time.perf_counter()
            hidden = layer_after_attention(layers[layer], scorer._context, scorer._layer_input)
            parts["layer_l_projection_and_ffn"] += time.perf_counter() - started
            if not scorer.is_last_layer:
                started = time.perf_counter()
                for above in layers[layer + 1:-1]:
                    hidden = layer_after_attention(above, attention_context(above, hidden, layout), hidden)
                parts["full_layers_above"] += time.perf_counter() - started
                started = time.perf_counter()
                cls = layout.cls_positions
                layer_after_attention(layers[-1], attention_context(layers[-1], hidden, layout, cls), hidden[cls])
                parts["last_layer_at_cls"] += time.perf_counter() - started
    parts["rest"] = max(0.0, total - sum(parts.values()))
    return {name: round(seconds / repeats, 4) for name, seconds in {**parts, "total": total}.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/gen_cola/base/finetune_initial", help="fine-tuned checkpoint")
    parser.add_argument("--data", default="data/gen_cola/tokenized", help="tokenized task folder")
    parser.add_argument("--layers", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5], help="layers to search")
    parser.add_argument("--reward-examples", type=int, default=None, help="mini-dev rows per reward (default: all)")
    parser.add_argument("--mini-dev-fraction", type=float, default=0.6667, help="paper 1:2")
    parser.add_argument("--batch-size", type=int, default=64, help="examples per forward pass (today's and naive)")
    parser.add_argument("--seed", type=int, default=0, help="run seed (params.yaml seed)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (prune_layer runs on 1)")
    parser.add_argument("--naive-samples", type=int, default=5, help="uncached passes timed per layer")
    parser.add_argument("--run-naive", action="store_true", help="run the naive search itself (slow)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    agent = load_params()["auber"]["default"]
    print(f"# {cpu_model_name()} ({platform.machine()}), torch {torch.__version__}, {args.threads} threads; "
          f"{agent['episodes']} episodes, decay {agent['epsilon_decay_actions']}, reward rows "
          f"{args.reward_examples or 'all of mini-dev'}")
    print("layer  requests  sets  naive_s   today_s   new_s  naive/new  today/new  identical")
    results = []
    for layer in args.layers:
        new, seconds_new = run_search(args, layer)
        today, seconds_today = run_search(args, layer, todays_scorer)
        decisions = [new, today]
        if args.run_naive:
            naive, seconds_naive = run_search(args, layer, cache=False)
            decisions.append(naive)
        else:
            seconds_naive = 2 * new["reward_cache"]["calls"] * naive_pass_seconds(args, layer)
        identical = all(log["pruned_head_ids"] == new["pruned_head_ids"]
                        and log["search"]["episodes"] == new["search"]["episodes"] for log in decisions)
        row = {"layer": layer, "reward_requests": new["reward_cache"]["calls"],
               "distinct_sets": new["distinct_head_sets_scored"], "pruned_head_ids": new["pruned_head_ids"],
               "seconds_naive": round(seconds_naive, 2), "naive_measured": args.run_naive,
               "seconds_today": round(seconds_today, 2), "seconds_new": round(seconds_new, 2),
               "seconds_new_scoring": new["reward_cache"]["seconds_evaluating"],
               "naive_over_new": round(seconds_naive / seconds_new, 2),
               "today_over_new": round(seconds_today / seconds_new, 2), "identical": identical}
        print(f"{layer:5d}  {row['reward_requests']:8d}  {row['distinct_sets']:4d}  {seconds_naive:7.1f}  "
              f"{seconds_today:8.1f}  {seconds_new:6.1f}  {row['naive_over_new']:8.1f}x  "
              f"{row['today_over_new']:8.1f}x  {identical}")
        if row["naive_over_new"] < TARGET:
            row["breakdown_seconds_per_set"] = breakdown(args, layer)
            row["dqn_seconds"] = round(seconds_new - new["reward_cache"]["seconds_evaluating"], 2)
            print(f"       under {TARGET:.0f}x: per set {row['breakdown_seconds_per_set']}; "
                  f"agent (DQN) {row['dqn_seconds']} s of {seconds_new:.1f} s")
        results.append(row)
        if not identical:
            raise SystemExit(f"layer {layer}: the scorers decided differently")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
