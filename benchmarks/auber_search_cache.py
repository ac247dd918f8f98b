"""AUBER search cost: one layer's DQN search with the hidden-state and score caches, and without them, side by side
from the same seed. The decisions (pruned heads, every episode's actions and rewards) must be identical; the
figure is the wall-time ratio.

    python -m benchmarks.auber_search_cache                        # MiniLM fine-tuned on gen_mrpc, layer 3
    python -m benchmarks.auber_search_cache --layers 0 3 5 --episodes 40 --reward-examples 128

"Without" means: every reward evaluates the mini-dev score before and after the prune (equation 4), each time
with a forward pass of the whole model. "With": the hidden states entering layer l and layer l's self-attention
outputs are computed once, and each pruned set is scored once (the score cache).
Needs `snakemake models/gen_mrpc/base/finetune_initial` (or `make run`) first.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch
from transformers import AutoTokenizer, DataCollatorWithPadding

from workflow_scripts.head_pruning.auber import auber_config_from_mapping, search_layer
from workflow_scripts.pipeline.params import load_params
from workflow_scripts.core.latency import cpu_model_name
from workflow_scripts.head_pruning.layerwise import layer_seed, layer_split
from workflow_scripts.core.models import load_for_classification
from workflow_scripts.data.tasks import TRAIN
from workflow_scripts.data.tokenized import load_tokenized


def run_search(args, layer: int, cache: bool) -> tuple[dict, float]:
    dataset_dict, task = load_tokenized(args.data)
    model = load_for_classification(args.model, task["num_labels"])
    _, _, rows = layer_split(len(dataset_dict[TRAIN]), args.mini_dev_fraction, args.reward_examples, args.seed, layer)
    # params.yaml's agent, with the schedule of the command line
    config = auber_config_from_mapping({**load_params()["auber"]["default"], "episodes": args.episodes,
                                        "epsilon_decay_actions": args.epsilon_decay_actions},
                                       seed=layer_seed(args.seed, layer, "agent"))
    collate_fn = DataCollatorWithPadding(AutoTokenizer.from_pretrained(args.model))
    started = time.perf_counter()
    log = search_layer(model, layer, dataset_dict[TRAIN].select(rows), task["metrics"][0], args.batch_size,
                       collate_fn, "cpu", config, cache=cache)
    return log, time.perf_counter() - started


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/gen_mrpc/base/finetune_initial", help="fine-tuned checkpoint")
    parser.add_argument("--data", default="data/gen_mrpc/tokenized", help="tokenized task folder")
    parser.add_argument("--layers", type=int, nargs="+", default=[3], help="layers to search (one search each)")
    parser.add_argument("--episodes", type=int, default=40, help="DQN episodes (params.yaml default)")
    parser.add_argument("--epsilon-decay-actions", type=float, default=32, help="params.yaml default")
    parser.add_argument("--reward-examples", type=int, default=128, help="mini-dev rows scored per reward")
    parser.add_argument("--mini-dev-fraction", type=float, default=0.6667, help="paper 1:2")
    parser.add_argument("--batch-size", type=int, default=64, help="examples per forward pass")
    parser.add_argument("--seed", type=int, default=0, help="run seed (params.yaml seed)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"# {cpu_model_name()} ({platform.machine()}), torch {torch.__version__}, {args.threads} threads; "
          f"{args.episodes} episodes, {args.reward_examples} reward examples")
    print("layer  pruned_heads          evaluations(with/without)  seconds(with/without)  speedup  identical")
    results = []
    for layer in args.layers:
        with_cache, seconds_with = run_search(args, layer, cache=True)
        without_cache, seconds_without = run_search(args, layer, cache=False)
        identical = (with_cache["pruned_head_ids"] == without_cache["pruned_head_ids"]
                     and with_cache["search"]["episodes"] == without_cache["search"]["episodes"])
        speedup = seconds_without / seconds_with
        print(f"{layer:5d}  {str(with_cache['pruned_head_ids']):20s}  "
              f"{with_cache['reward_cache']['evaluations']:5d} / {without_cache['reward_cache']['evaluations']:5d}"
              f"              {seconds_with:7.1f} / {seconds_without:7.1f}      {speedup:6.1f}x  {identical}")
        results.append({"layer": layer, "pruned_head_ids": with_cache["pruned_head_ids"], "identical": identical,
                        "seconds_with_cache": round(seconds_with, 2), "seconds_without": round(seconds_without, 2),
                        "speedup": round(speedup, 2), "reward_cache": with_cache["reward_cache"]})
        if not identical:
            raise SystemExit(f"layer {layer}: the cached search decided differently; the caches are wrong")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
