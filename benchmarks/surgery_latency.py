"""Does pruning heads buy latency? MiniLM (6 layers x 12 heads, hidden 384) on CPU, measured side by side:

  unpruned   the model as loaded
  gated      50% of the heads of every layer gated to zero (same compute as unpruned)
  pruned     those heads physically removed

    .venv/bin/python -m benchmarks.surgery_latency [--batch-size 32] [--seq-len 128] [--threads 2]

Variants are timed in interleaved rounds (unpruned, gated, pruned, unpruned, ...) so that load from other
processes hits all three alike; each variant's latency is the median of its per-round medians.
"""

import argparse
import copy
import os
import random
import statistics
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import AutoModelForSequenceClassification  # noqa: E402

from workflow_scripts.core.counters import count_flops  # noqa: E402
from workflow_scripts.core.latency import cpu_model_name, measure_latency  # noqa: E402
from workflow_scripts.core.models import minilm_folder  # noqa: E402
from workflow_scripts.core.surgery import attach_head_gates, prune_heads  # noqa: E402


def half_of_heads(num_layers: int, num_heads: int, seed: int) -> dict[int, list[int]]:
    rng = random.Random(seed)
    return {layer: sorted(rng.sample(range(num_heads), num_heads // 2)) for layer in range(num_layers)}


def build_variants(model_dir: Path, seed: int):
    unpruned = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2).eval()
    heads_to_prune = half_of_heads(unpruned.config.num_hidden_layers, unpruned.config.num_attention_heads, seed)
    gated = copy.deepcopy(unpruned)
    gates = attach_head_gates(gated, requires_grad=False)
    gates.close(heads_to_prune)
    pruned = copy.deepcopy(unpruned)
    prune_heads(pruned, heads_to_prune)
    return {"unpruned": unpruned, "gated": gated, "pruned": pruned}


def check_gated_equals_pruned(variants: dict) -> float:
    input_ids = torch.randint(1000, variants["gated"].config.vocab_size, (2, 16))
    with torch.no_grad():
        return float((variants["gated"](input_ids).logits - variants["pruned"](input_ids).logits).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=minilm_folder(), help="Hugging Face BERT folder")
    parser.add_argument("--batch-size", type=int, default=32, help="sequences per forward pass")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per sequence")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds over the three variants")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per variant per round")
    parser.add_argument("--warmup", type=int, default=1, help="untimed passes per variant per round")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0, help="seed for choosing the pruned heads")
    args = parser.parse_args()

    variants = build_variants(args.model_dir, args.seed)
    print(f"max |gated - pruned| logits: {check_gated_equals_pruned(variants):.2e}")
    timed_passes = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, model in variants.items():
            result = measure_latency(model, args.batch_size, args.seq_len, args.warmup, args.repeats, args.threads)
            timed_passes[name].append(result["median_s"])
            threads = result["threads"]

    flops = {name: count_flops(model, args.batch_size, args.seq_len)["total"] for name, model in variants.items()}
    latency = {name: statistics.median(values) for name, values in timed_passes.items()}
    print(f"{args.model_dir.parent.name}/{args.model_dir.name}: batch {args.batch_size}, seq {args.seq_len}, "
          f"{threads} threads, {cpu_model_name()}, torch {torch.__version__}")
    print(f"{'variant':10s} {'GFLOPs':>8s} {'FLOPs ratio':>12s} {'latency s':>10s} {'latency ratio':>14s} "
          f"{'round medians':>20s}")
    for name in variants:
        rounds = " ".join(f"{s:.3f}" for s in timed_passes[name])
        print(f"{name:10s} {flops[name] / 1e9:8.2f} {flops[name] / flops['unpruned']:12.3f} "
              f"{latency[name]:10.3f} {latency[name] / latency['unpruned']:14.3f}   {rounds}")
    print("(gated FLOPs are counted as unpruned: the zeroed heads are still computed)")


if __name__ == "__main__":
    main()
