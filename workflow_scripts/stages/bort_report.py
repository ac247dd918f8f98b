"""Stage bort_report: distillation against MLM-only pretraining of the chosen architecture (the seed's Table 3 and
Figure 1): held-out MLM accuracy against steps, and the steps each objective needs to reach the accuracy that
MLM-only pretraining ends with.

    python -m workflow_scripts.stages.bort_report --curves results/bort/pretrain/kd_curve.csv \
        results/bort/pretrain/mlm_curve.csv --selection results/bort/fptas/selection.json \
        --output results/bort/pretrain/comparison.md --metrics results/bort/pretrain/comparison_metrics.json
"""
from __future__ import annotations

import csv

from workflow_scripts.core.io_utils import read_json, write_json, write_text


def read_curve(path: str) -> tuple[str, list[dict]]:
    with open(path) as handle:
        rows = [{"step": int(row["step"]), "mlm_accuracy": float(row["mlm_accuracy"]),
                 "mlm_loss": float(row["mlm_loss"]), "objective": row["objective"]} for row in csv.DictReader(handle)]
    if not rows:
        raise ValueError(f"{path} has no points")
    return rows[0]["objective"], rows


def steps_to_reach(curve: list[dict], target: float, key: str = "mlm_accuracy") -> int | None:
    """The first evaluated step whose accuracy is at least target, or whose loss (key mlm_loss) is at most target
    (None: never)."""
    reached = (lambda value: value <= target) if key == "mlm_loss" else (lambda value: value >= target)
    return next((point["step"] for point in curve if reached(point[key])), None)


def compare(curves: dict[str, list[dict]]) -> dict:
    """Final held-out accuracy and loss of each objective, and the steps each needs to reach MLM-only's final
    accuracy and loss (without an mlm curve: the worst final values). Accuracy is a step function while a small
    model still predicts the most frequent tokens; the loss shows progress there."""
    accuracy = {objective: curve[-1]["mlm_accuracy"] for objective, curve in curves.items()}
    loss = {objective: curve[-1]["mlm_loss"] for objective, curve in curves.items()}
    target_accuracy = accuracy["mlm"] if "mlm" in accuracy else min(accuracy.values())
    target_loss = loss["mlm"] if "mlm" in loss else max(loss.values())
    summary = {"target_mlm_accuracy": target_accuracy, "target_mlm_loss": target_loss, "objectives": {}}
    for objective, curve in curves.items():
        summary["objectives"][objective] = {
            "final_mlm_accuracy": accuracy[objective], "final_mlm_loss": loss[objective],
            "final_step": curve[-1]["step"], "steps_to_target": steps_to_reach(curve, target_accuracy),
            "steps_to_target_loss": steps_to_reach(curve, target_loss, "mlm_loss")}
    for suffix in ("", "_loss"):
        reached = {o: entry[f"steps_to_target{suffix}"] for o, entry in summary["objectives"].items()}
        if reached.get("kd") and reached.get("mlm"):
            summary[f"kd_steps_fraction_of_mlm{suffix}"] = reached["kd"] / reached["mlm"]
    return summary


def markdown(summary: dict, architecture: str) -> str:
    def steps(value):
        return value if value is not None else "not reached"

    lines = [f"Pretraining of {architecture}: held-out masked-LM accuracy and loss (the corpus' held-out split).", "",
             f"Targets: accuracy {summary['target_mlm_accuracy']:.4f} and loss {summary['target_mlm_loss']:.4f}, "
             "what MLM-only pretraining ends with.", "",
             "| objective | steps | final MLM accuracy | final MLM loss | steps to the accuracy target | "
             "steps to the loss target |", "|---|---|---|---|---|---|"]
    for objective, entry in summary["objectives"].items():
        lines.append(f"| {objective} | {entry['final_step']} | {entry['final_mlm_accuracy']:.4f} | "
                     f"{entry['final_mlm_loss']:.4f} | {steps(entry['steps_to_target'])} | "
                     f"{steps(entry['steps_to_target_loss'])} |")
    for suffix, what in (("", "accuracy"), ("_loss", "loss")):
        if f"kd_steps_fraction_of_mlm{suffix}" in summary:
            lines.append(f"\nDistillation reaches MLM-only's final {what} in "
                         f"{summary[f'kd_steps_fraction_of_mlm{suffix}']:.2f}x its steps.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    from workflow_scripts.pipeline.cli import stage_parser, start_stage

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
