"""Stage bort_report: distillation against MLM-only pretraining of the chosen architecture (the seed's Table 3 and
Figure 1): held-out MLM accuracy against steps, and the steps each objective needs to reach the accuracy that
MLM-only pretraining ends with.

    python -m workflow_scripts.bort_report --curves results/bort/pretrain/kd_curve.csv \
        results/bort/pretrain/mlm_curve.csv --selection results/bort/fptas/selection.json \
        --output results/bort/pretrain/comparison.md --metrics results/bort/pretrain/comparison_metrics.json
"""
from __future__ import annotations

import csv

from .io_utils import read_json, write_json, write_text


def read_curve(path: str) -> tuple[str, list[dict]]:
    with open(path) as handle:
        rows = [{"step": int(row["step"]), "mlm_accuracy": float(row["mlm_accuracy"]),
                 "objective": row["objective"]} for row in csv.DictReader(handle)]
    if not rows:
        raise ValueError(f"{path} has no points")
    return rows[0]["objective"], rows


def steps_to_reach(curve: list[dict], target: float) -> int | None:
    """The first evaluated step whose accuracy is at least target (None: never)."""
    return next((point["step"] for point in curve if point["mlm_accuracy"] >= target), None)


def compare(curves: dict[str, list[dict]]) -> dict:
    """Final accuracy of each objective; the target is MLM-only's final accuracy (else the lowest final one)."""
    finals = {objective: curve[-1]["mlm_accuracy"] for objective, curve in curves.items()}
    target = finals["mlm"] if "mlm" in finals else min(finals.values())
    summary = {"target_mlm_accuracy": target, "objectives": {}}
    for objective, curve in curves.items():
        summary["objectives"][objective] = {"final_mlm_accuracy": finals[objective], "final_step": curve[-1]["step"],
                                            "steps_to_target": steps_to_reach(curve, target)}
    reached = {o: s["steps_to_target"] for o, s in summary["objectives"].items()}
    if reached.get("kd") and reached.get("mlm"):
        summary["kd_steps_fraction_of_mlm"] = reached["kd"] / reached["mlm"]
    return summary


def markdown(summary: dict, architecture: str) -> str:
    lines = [f"Pretraining of {architecture}: held-out masked-LM accuracy (the corpus' held-out split).", "",
             f"Target: {summary['target_mlm_accuracy']:.4f}, the accuracy MLM-only pretraining ends with.", "",
             "| objective | final MLM accuracy | steps | steps to reach the target |", "|---|---|---|---|"]
    for objective, entry in summary["objectives"].items():
        reached = entry["steps_to_target"] if entry["steps_to_target"] is not None else "not reached"
        lines.append(f"| {objective} | {entry['final_mlm_accuracy']:.4f} | {entry['final_step']} | {reached} |")
    if "kd_steps_fraction_of_mlm" in summary:
        lines += ["", f"Distillation reaches it in {summary['kd_steps_fraction_of_mlm']:.2f}x the steps of MLM alone."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    from .cli import stage_parser, start_stage

    parser = stage_parser(__doc__)
    parser.add_argument("--curves", nargs="+", required=True, help="curve CSVs written by kd_pretrain")
    parser.add_argument("--selection", required=True, help="selection.json of fptas_select")
    parser.add_argument("--output", required=True, help="markdown report")
    parser.add_argument("--metrics", required=True, help="JSON summary (DVC metrics)")
    args = parser.parse_args(argv)
    logger, _ = start_stage(args)
    curves = dict(read_curve(path) for path in args.curves)
    summary = compare(curves)
    write_text(args.output, markdown(summary, read_json(args.selection)["chosen"]["tag"]))
    write_json(args.metrics, summary)
    logger.info("%s", summary)


if __name__ == "__main__":
    main()
