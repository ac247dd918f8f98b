"""Stage compare_methods: the comparison of AUBER, its competitors and its ablations, as the paper's Table 2/3.

Reads the unpruned model's evaluation per task and, per (task, method, seed), the chain's evaluation and
layerwise_metrics.json. Writes to --output-dir:
- table.csv: one row per (task, method, split): seeds, mean and standard deviation (ddof 1) of the task's metric,
  heads pruned, parameters after pruning.
- table.md: rows = the unpruned model, the competitors, AUBER, the ablations; columns = tasks; cells = metric
  in points, mean +- std over seeds (heads pruned); one table for dev (what the paper reports), one for test;
  then AUBER minus each other method, paired by seed (same splits), so a gain can be told from seed noise.
- comparison_metrics.json: the same numbers nested as task -> method -> value (DVC metrics: `dvc metrics diff`).
- plots/dev_by_layer_<task>_<method>.csv: dev score after each layer's fine-tune, mean over seeds (DVC plots).
- plots/heads_<task>_<method>_heatmap.csv: one row per pruned (layer, head) and seed (DVC's confusion template
  turns it into a layer x head heatmap of how often each head was pruned).
- report.html: all of the above on one self-contained page (inline SVG, no scripts, no network).
Nothing here selects anything: dev and test are only reported.
"""
from __future__ import annotations

import csv
import html
import io
import os
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from workflow_scripts.pipeline.cli import stage_parser, start_stage
from workflow_scripts.pipeline.params import COMPETITOR_ALGORITHMS
from workflow_scripts.core.io_utils import read_json, write_json, write_text

BASE = "base"
SPLITS = ("dev", "test")
# Table order: the unpruned model, the competitors, AUBER, then the ablations (any other name).
LEADING_METHODS = (BASE, *COMPETITOR_ALGORITHMS, "auber")
COLORS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
          "#bab0ac")


@dataclass
class Run:
    """One chain (or the unpruned model): its scores and what it pruned."""
    task: str
    method: str
    seed: int | None
    metric: str
    scores: dict[str, float]                    # split -> headline metric
    heads_pruned: int = 0
    parameters: int | None = None
    pruned_by_layer: dict[int, list[int]] = field(default_factory=dict)
    heads_per_layer: list[int] = field(default_factory=list)
    dev_curve: list[float] = field(default_factory=list)  # dev after each step (0 = before pruning, last = final)


def split_scores(evaluation: dict) -> dict[str, float]:
    metric = evaluation["headline_metric"]
    scores = {}
    for split, values in evaluation.items():
        if isinstance(values, dict) and metric in values:
            scores["test" if split == "test" else "dev"] = values[metric]
    return scores


def base_run(evaluation: dict) -> Run:
    return Run(evaluation["task"], BASE, None, evaluation["headline_metric"], split_scores(evaluation))


def chain_run(evaluation: dict, layerwise: dict) -> Run:
    if evaluation["task"] != layerwise["task"]:
        raise ValueError(f"evaluation of {evaluation['task']} paired with the layer report of {layerwise['task']}")
    metric = layerwise["metric"]
    curve = [layerwise["dev_before"][metric],
             *(layer[f"dev_{metric}_after_finetune"] for layer in layerwise["layers"]),
             layerwise["dev_after"][metric]]
    return Run(layerwise["task"], layerwise["method"], layerwise["seed"], metric, split_scores(evaluation),
               heads_pruned=layerwise["heads_pruned_total"], parameters=layerwise["parameters_after"],
               pruned_by_layer={int(layer): ids for layer, ids in layerwise["heads_pruned_by_layer"].items()},
               heads_per_layer=layerwise["heads_per_layer_before"], dev_curve=curve)


def method_order(methods) -> list[str]:
    leading = [m for m in LEADING_METHODS if m in methods]
    return leading + sorted(m for m in methods if m not in LEADING_METHODS)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(runs: list[Run]) -> dict:
    """task -> method -> {seeds, metric, <split>_mean/_std, heads_mean/_std, parameters_mean}."""
    grouped = defaultdict(lambda: defaultdict(list))
    for run in runs:
        grouped[run.task][run.method].append(run)
    summary = {}
    for task, by_method in grouped.items():
        summary[task] = {}
        for method in method_order(by_method):
            group = by_method[method]
            entry = {"seeds": len(group), "metric": group[0].metric}
            for split in SPLITS:
                values = [run.scores[split] for run in group if split in run.scores]
                if values:
                    entry[f"{split}_mean"], entry[f"{split}_std"] = mean_std(values)
            entry["heads_mean"], entry["heads_std"] = mean_std([run.heads_pruned for run in group])
            if group[0].parameters is not None:
                entry["parameters_mean"] = statistics.fmean(run.parameters for run in group)
            summary[task][method] = entry
    return summary


def paired_differences(runs: list[Run], reference: str = "auber") -> dict:
    """task -> method -> {split: {mean, std, seeds}} of reference minus method, matched on the seed."""
    by_key = {(run.task, run.method, run.seed): run for run in runs if run.method != BASE}
    result = defaultdict(dict)
    for (task, method, seed), run in sorted(by_key.items(), key=lambda item: str(item[0])):
        if method == reference or (task, reference, seed) not in by_key:
            continue
        ref = by_key[(task, reference, seed)]
        for split in SPLITS:
            if split in run.scores and split in ref.scores:
                result[task].setdefault(method, {}).setdefault(split, []).append(ref.scores[split] - run.scores[split])
    return {task: {method: {split: dict(zip(("mean", "std"), mean_std(values)), seeds=len(values))
                            for split, values in splits.items()}
                   for method, splits in methods.items()} for task, methods in result.items()}


def points(value: float) -> str:
    return f"{100 * value:.1f}"


def table_cell(entry: dict, split: str) -> str:
    if f"{split}_mean" not in entry:
        return "n/a"
    spread = f" ± {points(entry[f'{split}_std'])}" if entry["seeds"] > 1 else ""
    return f"{points(entry[f'{split}_mean'])}{spread} ({entry['heads_mean']:.3g} heads)"


def table_rows(summary: dict, split: str) -> tuple[list[str], list[list[str]]]:
    tasks = list(summary)
    methods = method_order({m for by_method in summary.values() for m in by_method})
    header = ["method", *(f"{task} ({summary[task][next(iter(summary[task]))]['metric']})" for task in tasks)]
    rows = [[method, *(table_cell(summary[task][method], split) if method in summary[task] else "" for task in tasks)]
            for method in methods]
    return header, rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def difference_lines(differences: dict, split: str) -> list[str]:
    lines = []
    for task, methods in differences.items():
        parts = [f"{method} {100 * d[split]['mean']:+.1f}"
                 + (f" ± {100 * d[split]['std']:.1f}" if d[split]["seeds"] > 1 else "")
                 for method, d in methods.items() if split in d]
        if parts:
            lines.append(f"- {task}: " + "; ".join(parts))
    return lines


def markdown_report(summary: dict, differences: dict) -> str:
    seeds = max(entry["seeds"] for by_method in summary.values() for m, entry in by_method.items() if m != BASE)
    parts = [f"# Head pruning: AUBER, competitors and ablations ({seeds} seed(s))", "",
             "Cells: the task's metric in points (accuracy, or Matthews correlation x 100), mean ± standard "
             "deviation over seeds, and heads pruned. `base` is the fine-tuned model every chain starts from "
             "(one run). Nothing selected on dev or test.", ""]
    for split in SPLITS:
        header, rows = table_rows(summary, split)
        if any(cell != "n/a" for row in rows for cell in row[1:]):
            parts += [f"## {split}", "", markdown_table(header, rows), ""]
            lines = difference_lines(differences, split)
            if lines:
                parts += [f"AUBER minus each method on {split}, in points, paired by seed (mean ± std):", "", *lines,
                          ""]
    return "\n".join(parts)


def write_csv(path: str, fieldnames: list[str], rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def summary_rows(summary: dict) -> list[dict]:
    rows = []
    for task, by_method in summary.items():
        for method, entry in by_method.items():
            for split in SPLITS:
                if f"{split}_mean" in entry:
                    rows.append({"task": task, "method": method, "split": split, "metric": entry["metric"],
                                 "seeds": entry["seeds"], "mean": round(entry[f"{split}_mean"], 6),
                                 "std": round(entry[f"{split}_std"], 6), "heads_pruned_mean": entry["heads_mean"],
                                 "heads_pruned_std": round(entry["heads_std"], 4),
                                 "parameters_mean": entry.get("parameters_mean", "")})
    return rows


def curve_rows(runs: list[Run]) -> list[dict]:
    """Mean (and std) dev score per step over the runs of one method and task."""
    steps = min(len(run.dev_curve) for run in runs)
    rows = []
    for step in range(steps):
        mean, std = mean_std([run.dev_curve[step] for run in runs])
        rows.append({"step": step, "dev_score": round(mean, 6), "dev_std": round(std, 6)})
    return rows


def heatmap_rows(runs: list[Run]) -> list[dict]:
    return [{"layer": layer, "head": head, "seed": run.seed}
            for run in runs for layer, heads in sorted(run.pruned_by_layer.items()) for head in heads]


# ---- the HTML page -----------------------------------------------------------------------------------------------

def svg_curves(curves: dict[str, list[dict]], width: int = 560, height: int = 260) -> str:
    """Dev score per step, one polyline per method."""
    values = [row["dev_score"] for rows in curves.values() for row in rows]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    steps = max(len(rows) for rows in curves.values()) - 1 or 1
    left, bottom, top, right = 50, height - 30, 10, width - 140

    def xy(step, value):
        return left + (right - left) * step / steps, bottom - (bottom - top) * (value - low) / span

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#333"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#333"/>',
             f'<text x="{left - 5}" y="{top + 10}" text-anchor="end" font-size="11">{points(high)}</text>',
             f'<text x="{left - 5}" y="{bottom}" text-anchor="end" font-size="11">{points(low)}</text>',
             f'<text x="{(left + right) / 2}" y="{height - 5}" text-anchor="middle" font-size="11">'
             'step (0: before pruning; then after each layer; last: final fine-tune)</text>']
    for index, (method, rows) in enumerate(curves.items()):
        color = COLORS[index % len(COLORS)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(r["step"], r["dev_score"]) for r in rows))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        parts.append(f'<text x="{right + 10}" y="{top + 14 * (index + 1)}" font-size="12" fill="{color}">'
                     f'{html.escape(method)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def html_heatmap(runs: list[Run]) -> str:
    """Layers x heads; the shade is the share of seeds that pruned the head."""
    heads = max(runs[0].heads_per_layer) if runs[0].heads_per_layer else 0
    counts = defaultdict(int)
    for row in heatmap_rows(runs):
        counts[(row["layer"], row["head"])] += 1
    cells = ["<table class='heat'><tr><th>layer</th>" + "".join(f"<th>{h}</th>" for h in range(heads)) + "</tr>"]
    for layer in range(len(runs[0].heads_per_layer)):
        row = [f"<th>{layer}</th>"]
        for head in range(heads):
            share = counts[(layer, head)] / len(runs)
            row.append(f"<td style='background: rgba(225,87,89,{share:.2f})' title='pruned in "
                       f"{counts[(layer, head)]} of {len(runs)} seed(s)'></td>")
        cells.append("<tr>" + "".join(row) + "</tr>")
    return "".join(cells) + "</table>"


def html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def html_report(summary: dict, differences: dict, chains: dict) -> str:
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Head pruning comparison</title><style>",
             "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;"
             "margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
             ".heat td{width:18px;height:18px;padding:0}h3{margin-top:1.5em}",
             "</style></head><body><h1>Head pruning: AUBER, competitors and ablations</h1>",
             "<p>Task metric in points, mean ± standard deviation over seeds (heads pruned). <code>base</code> is "
             "the fine-tuned model every chain starts from. Nothing was selected on dev or test.</p>"]
    for split in SPLITS:
        header, rows = table_rows(summary, split)
        if any(cell != "n/a" for row in rows for cell in row[1:]):
            parts += [f"<h2>{split}</h2>", html_table(header, rows)]
            lines = difference_lines(differences, split)
            if lines:
                parts += [f"<p>AUBER minus each method on {split}, in points, paired by seed:</p><ul>",
                          *(f"<li>{html.escape(line[2:])}</li>" for line in lines), "</ul>"]
    for task, by_method in chains.items():
        parts += [f"<h2>{html.escape(task)}: dev score after each layer (mean over seeds)</h2>",
                  svg_curves({method: curve_rows(runs) for method, runs in by_method.items()}),
                  f"<h2>{html.escape(task)}: heads pruned (share of seeds)</h2>"]
        for method, runs in by_method.items():
            parts += [f"<h3>{html.escape(method)}</h3>", html_heatmap(runs)]
    parts.append("</body></html>")
    return "\n".join(parts)


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--base", nargs="+", required=True, help="evaluate metrics of the unpruned model, per task")
    parser.add_argument("--evaluations", nargs="+", required=True, help="evaluate metrics of every chain")
    parser.add_argument("--layerwise", nargs="+", required=True, help="layerwise_metrics.json, same order")
    parser.add_argument("--output-dir", required=True, help="folder for the tables, plots and page")
    args = parser.parse_args(argv)
    if len(args.evaluations) != len(args.layerwise):
        parser.error("--evaluations and --layerwise must list the same chains, in the same order")
    logger, _ = start_stage(args)

    runs = [base_run(read_json(path)) for path in args.base]
    chains = defaultdict(lambda: defaultdict(list))
    for evaluation_path, layerwise_path in zip(args.evaluations, args.layerwise):
        run = chain_run(read_json(evaluation_path), read_json(layerwise_path))
        runs.append(run)
        chains[run.task][run.method].append(run)
    summary = summarize(runs)
    differences = paired_differences(runs)
    out = args.output_dir
    write_csv(os.path.join(out, "table.csv"), ["task", "method", "split", "metric", "seeds", "mean", "std",
                                               "heads_pruned_mean", "heads_pruned_std", "parameters_mean"],
              summary_rows(summary))
    write_text(os.path.join(out, "table.md"), markdown_report(summary, differences))
    write_json(os.path.join(out, "comparison_metrics.json"), {"summary": summary, "auber_minus": differences})
    for task, by_method in chains.items():
        for method, method_runs in by_method.items():
            write_csv(os.path.join(out, "plots", f"dev_by_layer_{task}_{method}.csv"), ["step", "dev_score", "dev_std"],
                      curve_rows(method_runs))
            write_csv(os.path.join(out, "plots", f"heads_{task}_{method}_heatmap.csv"), ["layer", "head", "seed"],
                      heatmap_rows(method_runs))
    write_text(os.path.join(out, "report.html"), html_report(summary, differences, chains))
    logger.info("wrote the comparison of %d runs to %s", len(runs), out)


if __name__ == "__main__":
    main()
