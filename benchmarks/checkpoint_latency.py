"""CPU latency of pipeline checkpoints side by side (e.g. before and after AUBER), in interleaved rounds so that load
from other processes hits every checkpoint alike; each latency is the median of its per-round medians, and the
ratios are to the first checkpoint.

    python -m benchmarks.checkpoint_latency models/gen_cola/base/finetune_initial models/gen_cola/auber/finetune_final
"""
import argparse
import os
import statistics

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from workflow_scripts.core.counters import count_parameters  # noqa: E402
from workflow_scripts.core.latency import cpu_model_name, measure_latency  # noqa: E402
from workflow_scripts.core.surgery import load_pruned, model_structure  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="model folders; the first is the reference")
    parser.add_argument("--batch-size", type=int, default=1, help="sequences per forward pass")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per sequence")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    args = parser.parse_args(argv)
    models = [load_pruned(folder) for folder in args.checkpoints]
    medians = [[] for _ in models]
    for _ in range(args.rounds):
        for index, model in enumerate(models):
            medians[index].append(measure_latency(model, args.batch_size, args.seq_len, repeats=10,
                                                  threads=args.threads)["median_s"])
    print(f"# {cpu_model_name()}, {args.threads} threads, batch {args.batch_size} x {args.seq_len} tokens")
    reference = statistics.median(medians[0])
    for folder, model, per_round in zip(args.checkpoints, models, medians):
        latency = statistics.median(per_round)
        print(f"{folder}: heads {sum(model_structure(model)['heads_per_layer'])}, parameters "
              f"{count_parameters(model)['total']:,}, latency {1000 * latency:.2f} ms ({latency / reference:.3f}x)")


if __name__ == "__main__":
    main()
