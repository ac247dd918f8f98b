"""Print the structure, size and stored metrics of a model folder (pruned or not).

    python -m workflow_scripts.tools.inspect models/sst2/auber/final [--json] [--seq-len 128]

Shows heads kept per layer (original ids), FFN sizes, parameters, FLOPs of one sequence at --seq-len, and
the metrics.json found in the folder or next to it (printed as stored).
"""

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder: never reach the network

from workflow_scripts.core.counters import count_flops, count_parameters  # noqa: E402
from workflow_scripts.core.surgery import load_pruned, model_structure  # noqa: E402


def find_metrics(directory: Path) -> tuple[Path | None, dict | None]:
    """metrics.json inside the folder, else the method's evaluation (models/<task>/<method>/evaluate/), else the
    parent folder."""
    candidates = (directory / "metrics.json", directory.parent / "evaluate" / "metrics.json",
                  directory.parent / "metrics.json")
    for candidate in candidates:
        if candidate.is_file():
            return candidate, json.loads(candidate.read_text())
    return None, None


def inspect_folder(directory: Path, seq_len: int) -> dict:
    model = load_pruned(directory)
    structure = model_structure(model)
    flops = count_flops(model, batch_size=1, seq_len=seq_len)
    metrics_path, metrics = find_metrics(directory)
    return {
        "directory": str(directory),
        "architecture": type(model).__name__,
        "pruned": getattr(model.config, "compression", None) is not None,
        "albert": getattr(model.config, "albert", None),  # factorized embeddings, cross-layer sharing (core/albert.py)
        "heads_kept_by_layer": structure["heads_kept_by_layer"],
        "heads_per_layer": structure["heads_per_layer"],
        "original_num_attention_heads": structure["original_num_attention_heads"],
        "ffn_size_by_layer": structure["ffn_size_by_layer"],
        "original_intermediate_size": structure["original_intermediate_size"],
        "parameters": count_parameters(model),
        "seq_len": seq_len,
        "flops": {k: v for k, v in flops.items() if k != "encoder_by_layer"},
        "metrics_path": str(metrics_path) if metrics_path else None,
        "metrics": metrics,
    }


def print_report(report: dict) -> None:
    print(f"{report['directory']}  ({report['architecture']}, {'pruned' if report['pruned'] else 'unpruned'})")
    heads_total = report["original_num_attention_heads"]
    for i, (heads, ffn) in enumerate(zip(report["heads_kept_by_layer"], report["ffn_size_by_layer"])):
        print(f"  layer {i:2d}: {len(heads):2d}/{heads_total} heads {heads}  "
              f"FFN {ffn}/{report['original_intermediate_size']}")
    if report["albert"]:
        albert = report["albert"]
        print(f"ALBERT options: embedding size {albert['embedding_size'] or 'hidden'}, sharing {albert['sharing']}"
              + (f" in groups of {albert['group_size']}" if albert["sharing"] != "none" and albert["group_size"]
                 else ""))
    parameters = report["parameters"]
    print("parameters: " + ", ".join(f"{k} {v:,}" for k, v in parameters.items()))
    flops = report["flops"]
    print(f"FLOPs at seq_len {report['seq_len']}, batch 1: {flops['total']:,} ({flops['total'] / 1e9:.3f} G; "
          f"encoder {flops['encoder']:,})")
    if report["metrics"] is not None:
        print(f"metrics ({report['metrics_path']}):")
        print(json.dumps(report["metrics"], indent=2))
    else:
        print("metrics: none found")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.tools.inspect", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path, help="Hugging Face model folder (pruned or not)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--seq-len", type=int, default=128, help="sequence length for the FLOP count")
    args = parser.parse_args(argv)
    report = inspect_folder(args.directory, args.seq_len)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)


if __name__ == "__main__":
    main()
