"""The comparison of AUBER, its competitors and its ablations, as the paper's Table 2/3: statistics over seeds,
paired differences, tables, per-layer curves, pruned-heads heatmaps and one HTML page.

Statistics use the standard library (statistics.fmean, statistics.stdev with ddof 1), so the numbers in
comparison_metrics.json do not depend on pandas' summation order; the tables built from them are DataFrames.
Nothing here selects anything: dev and test are only reported.
"""
from __future__ import annotations

import html
import math
import os
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from workflow_scripts.core.io_utils import read_json
from workflow_scripts.pipeline.params import COMPETITOR_ALGORITHMS
from workflow_scripts.reports.render import (COLORS, csv_text, figure_bytes, html_figure, html_page, html_table,
                                             markdown_table, new_figure)

BASE = "base"
SPLITS = ("dev", "test")
# Table order: the unpruned model, the competitors, AUBER, then the ablations (any other name).
LEADING_METHODS = (BASE, *COMPETITOR_ALGORITHMS, "auber")
SUMMARY_COLUMNS = ["task", "method", "split", "metric", "seeds", "mean", "std", "heads_pruned_mean",
                   "heads_pruned_std", "parameters_mean"]


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
    agent_layers: list[dict] = field(default_factory=list)  # AUBER's search evidence per layer (reports/layers.py)


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
               heads_per_layer=layerwise["heads_per_layer_before"], dev_curve=curve,
               agent_layers=[layer for layer in layerwise["layers"] if "dqn_updates" in layer])


def method_order(methods) -> list[str]:
    leading = [m for m in LEADING_METHODS if m in methods]
    return leading + sorted(m for m in methods if m not in LEADING_METHODS)


# ---- statistics --------------------------------------------------------------------------------------------------

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


# ---- tables ------------------------------------------------------------------------------------------------------

def summary_table(summary: dict) -> pd.DataFrame:
    """table.csv: one row per (task, method, split) with the mean and std over seeds, heads and parameters."""
    rows = []
    for task, by_method in summary.items():
        for method, entry in by_method.items():
            for split in SPLITS:
                if f"{split}_mean" in entry:
                    rows.append({"task": task, "method": method, "split": split, "metric": entry["metric"],
                                 "seeds": entry["seeds"], "mean": round(entry[f"{split}_mean"], 6),
                                 "std": round(entry[f"{split}_std"], 6), "heads_pruned_mean": entry["heads_mean"],
                                 "heads_pruned_std": round(entry["heads_std"], 4),
                                 "parameters_mean": entry.get("parameters_mean")})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def points(value: float) -> str:
    return f"{100 * value:.1f}"


def table_cell(entry: dict, split: str) -> str:
    if f"{split}_mean" not in entry:
        return "n/a"
    spread = f" ± {points(entry[f'{split}_std'])}" if entry["seeds"] > 1 else ""
    return f"{points(entry[f'{split}_mean'])}{spread} ({entry['heads_mean']:.3g} heads)"


def method_table(summary: dict, split: str) -> pd.DataFrame:
    """The paper's layout: rows = methods in table order, columns = "<task> (<metric>)", cells = mean ± std in
    points (heads pruned); "n/a" where the split has no score, empty where the method did not run on the task."""
    methods = method_order({m for by_method in summary.values() for m in by_method})
    columns = {f"{task} ({next(iter(by_method.values()))['metric']})":
               [table_cell(by_method[method], split) if method in by_method else "" for method in methods]
               for task, by_method in summary.items()}
    return pd.DataFrame({"method": methods, **columns})


def has_scores(table: pd.DataFrame) -> bool:
    return bool((table.drop(columns="method") != "n/a").to_numpy().any())


def difference_lines(differences: dict, split: str) -> list[str]:
    """One line per task: AUBER minus each method, in points, mean ± std over the paired seeds."""
    lines = []
    for task, methods in differences.items():
        parts = [f"{method} {100 * d[split]['mean']:+.1f}"
                 + (f" ± {100 * d[split]['std']:.1f}" if d[split]["seeds"] > 1 else "")
                 for method, d in methods.items() if split in d]
        if parts:
            lines.append(f"{task}: " + "; ".join(parts))
    return lines


def curve_table(runs: list[Run]) -> pd.DataFrame:
    """Mean (and std) dev score per step over the runs of one method and task."""
    steps = min(len(run.dev_curve) for run in runs)
    rows = []
    for step in range(steps):
        mean, std = mean_std([run.dev_curve[step] for run in runs])
        rows.append({"step": step, "dev_score": round(mean, 6), "dev_std": round(std, 6)})
    return pd.DataFrame(rows, columns=["step", "dev_score", "dev_std"])


def heatmap_table(runs: list[Run]) -> pd.DataFrame:
    """One row per pruned (layer, head) and seed: DVC's confusion template counts them into a heatmap."""
    rows = [{"layer": layer, "head": head, "seed": run.seed}
            for run in runs for layer, heads in sorted(run.pruned_by_layer.items()) for head in heads]
    return pd.DataFrame(rows, columns=["layer", "head", "seed"])


def pruned_share(runs: list[Run]) -> np.ndarray:
    """(layers, heads) share of the runs (seeds) that pruned each head."""
    layers, heads = len(runs[0].heads_per_layer), max(runs[0].heads_per_layer, default=0)
    share = np.zeros((layers, heads))
    for row in heatmap_table(runs).itertuples():
        share[row.layer, row.head] += 1 / len(runs)
    return share


# ---- figures -----------------------------------------------------------------------------------------------------

def dev_curves_figure(task: str, metric: str, curves: dict[str, pd.DataFrame]):
    """Dev score after each step, one line per method (the std over seeds is in the CSVs: bands of nine methods
    would hide the lines)."""
    figure = new_figure(7, 3.6)
    axes = figure.subplots()
    for index, (method, curve) in enumerate(curves.items()):
        axes.plot(curve["step"], 100 * curve["dev_score"], marker="o", markersize=3, color=COLORS[index % len(COLORS)],
                  label=method)
    steps = max(len(curve) for curve in curves.values())
    axes.set_xticks(range(steps), ["before", *(str(step) for step in range(1, steps - 1)), "final"])
    axes.set_xlabel("after each layer's fine-tune, in processing order")
    axes.set_ylabel(f"dev {metric} (points)")
    axes.set_title(f"{task}: dev score layer by layer (mean over seeds)")
    axes.grid(alpha=0.3)
    axes.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize="small")
    return figure


def heads_heatmap_figure(task: str, runs_by_method: dict[str, list[Run]]):
    """One panel per method: layers x heads, shaded by the share of seeds that pruned the head."""
    columns = min(3, len(runs_by_method))
    rows = math.ceil(len(runs_by_method) / columns)
    figure = new_figure(3.2 * columns + 0.8, 2.6 * rows)
    panels = figure.subplots(rows, columns, squeeze=False).ravel()
    image = None
    for panel, (method, runs) in zip(panels, runs_by_method.items()):
        share = pruned_share(runs)
        # interpolation "none": the SVG embeds the layers x heads pixels as they are, drawn crisp (a few KB)
        image = panel.imshow(share, cmap="Reds", vmin=0, vmax=1, aspect="auto", interpolation="none")
        panel.set_title(f"{method} ({len(runs)} seed(s))", fontsize="medium")
        panel.set_xticks(range(share.shape[1]))
        panel.set_yticks(range(share.shape[0]))
        panel.set_xlabel("head")
        panel.set_ylabel("layer")
    for panel in panels[len(runs_by_method):]:
        panel.set_visible(False)
    if image is not None:
        figure.colorbar(image, ax=list(panels[:len(runs_by_method)]), shrink=0.6, label="share of seeds that pruned it")
    figure.suptitle(f"{task}: heads pruned")
    return figure


# ---- the report --------------------------------------------------------------------------------------------------

AGENT_COLUMNS = ["task", "method", "seed", "layer", "dqn_updates", "head_sets_scored", "heads_pruned",
                 "decision_reward", "random_sets", "random_best", "random_median", "random_at_most_decision"]


def agent_table(runs: list[Run]) -> pd.DataFrame:
    """One row per layer of every AUBER-type chain: the optimiser steps its agent took, the head sets it scored, the
    mini-dev reward of its decision (points) and the best and median reward of random sets of the same size, with
    the share of those the decision matches or beats."""
    rows = []
    for run in runs:
        for layer in run.agent_layers:
            random_sets = layer["random_sets"]
            rows.append({"task": run.task, "method": run.method, "seed": run.seed, "layer": layer["layer"],
                         "dqn_updates": layer["dqn_updates"], "head_sets_scored": layer["distinct_head_sets_scored"],
                         "heads_pruned": len(layer["pruned_head_ids"]), "decision_reward": layer["greedy_reward"],
                         "random_sets": random_sets["sets"], "random_best": random_sets.get("best_reward"),
                         "random_median": random_sets.get("median_reward"),
                         "random_at_most_decision": random_sets.get("decision_at_least_share")})
    return pd.DataFrame(rows, columns=AGENT_COLUMNS)


def agent_lines(runs: list[Run]) -> list[str]:
    table = agent_table(runs)
    if table.empty:
        return []
    return ["## AUBER's agent per layer (mini-dev reward rows)", "",
            "Optimiser steps the DQN took, head sets it scored, its decision's reward (points of the mini-dev "
            "score) and, for random sets of the same size scored on the same rows, the best and median reward and "
            "the share the decision matches or beats (empty when it pruned nothing).", "",
            markdown_table(table.round(3)), ""]


def markdown_report(summary: dict, differences: dict, runs: list[Run] = ()) -> str:
    seeds = max(entry["seeds"] for by_method in summary.values() for m, entry in by_method.items() if m != BASE)
    parts = [f"# Head pruning: AUBER, competitors and ablations ({seeds} seed(s))", "",
             "Cells: the task's metric in points (accuracy, or Matthews correlation x 100), mean ± standard "
             "deviation over seeds, and heads pruned. `base` is the fine-tuned model every chain starts from "
             "(one run). Nothing selected on dev or test.", ""]
    for split in SPLITS:
        table = method_table(summary, split)
        if has_scores(table):
            parts += [f"## {split}", "", markdown_table(table), ""]
            lines = difference_lines(differences, split)
            if lines:
                parts += [f"AUBER minus each method on {split}, in points, paired by seed (mean ± std):", "",
                          *(f"- {line}" for line in lines), ""]
    return "\n".join(parts + agent_lines(runs))


def html_report(summary: dict, differences: dict, figures: dict[str, dict[str, dict[str, bytes]]]) -> str:
    """The page: the tables, the paired differences, then per task the curves and the heatmaps (inline SVG)."""
    body = ["<p>Task metric in points, mean ± standard deviation over seeds (heads pruned). <code>base</code> is "
            "the fine-tuned model every chain starts from. Nothing was selected on dev or test.</p>"]
    for split in SPLITS:
        table = method_table(summary, split)
        if has_scores(table):
            body += [f"<h2>{split}</h2>", html_table(table)]
            lines = difference_lines(differences, split)
            if lines:
                body += [f"<p>AUBER minus each method on {split}, in points, paired by seed:</p><ul>",
                         *(f"<li>{html.escape(line)}</li>" for line in lines), "</ul>"]
    for task, rendered in figures.items():
        body += [f"<h2>{html.escape(task)}</h2>",
                 html_figure(rendered["curves"], "Dev score after each layer's fine-tune, mean over seeds."),
                 html_figure(rendered["heads"], "Heads pruned: the share of seeds that pruned each head.")]
    return html_page("Head pruning: AUBER, competitors and ablations", body)


def read_runs(base: list[str], evaluations: list[str], layerwise: list[str]) -> list[Run]:
    """The unpruned model of each task, then every chain (evaluation and layer report, paired by position)."""
    if len(evaluations) != len(layerwise):
        raise ValueError("the evaluations and layer reports must list the same chains, in the same order")
    return [*(base_run(read_json(path)) for path in base),
            *(chain_run(read_json(evaluation), read_json(layers))
              for evaluation, layers in zip(evaluations, layerwise))]


def comparison_report(runs: list[Run], output_dir: str) -> dict[str, str | bytes | dict]:
    """Every output of the comparison, {path under output_dir: content}:
    table.csv, table.md, comparison_metrics.json (DVC metrics), report.html, and under plots/ per task and method
    dev_by_layer_<task>_<method>.csv (DVC plot) and heads_<task>_<method>_heatmap.csv (DVC confusion plot), and per
    task dev_by_layer_<task>.{png,svg} (every method's curve) and heads_<task>.{png,svg} (a heatmap per method)."""
    summary, differences = summarize(runs), paired_differences(runs)
    chains = defaultdict(lambda: defaultdict(list))
    for run in runs:
        if run.method != BASE:
            chains[run.task][run.method].append(run)
    plots = os.path.join(output_dir, "plots")
    outputs = {os.path.join(output_dir, "table.csv"): csv_text(summary_table(summary)),
               os.path.join(output_dir, "table.md"): markdown_report(summary, differences, runs),
               os.path.join(output_dir, "agent.csv"): csv_text(agent_table(runs)),
               os.path.join(output_dir, "comparison_metrics.json"): {"summary": summary, "auber_minus": differences}}
    figures = {}
    for task, by_method in chains.items():
        curves = {method: curve_table(method_runs) for method, method_runs in by_method.items()}
        for method, method_runs in by_method.items():
            outputs[os.path.join(plots, f"dev_by_layer_{task}_{method}.csv")] = csv_text(curves[method])
            outputs[os.path.join(plots, f"heads_{task}_{method}_heatmap.csv")] = csv_text(heatmap_table(method_runs))
        metric = next(iter(by_method.values()))[0].metric
        figures[task] = {"curves": figure_bytes(dev_curves_figure(task, metric, curves)),
                         "heads": figure_bytes(heads_heatmap_figure(task, by_method))}
        for name, stem in (("curves", f"dev_by_layer_{task}"), ("heads", f"heads_{task}")):
            for kind, content in figures[task][name].items():
                outputs[os.path.join(plots, f"{stem}.{kind}")] = content
    outputs[os.path.join(output_dir, "report.html")] = html_report(summary, differences, figures)
    return outputs
