"""The seed-004 table of one task and FLOPs ratio: every pruned model against the unpruned fine-tuned one.

Per model: FLOPs of one sequence (at evaluate.cost.seq_len), the FLOPs ratio and the speed-up it implies (the seed's
"Speedup" column is this ratio), the measured CPU speed-up at batch 1 and 32 (median latencies, models timed one
after another in the same job), the dev metric (and test when labelled) and its % change. Models whose sparsity is
unstructured (magnitude pruning, IMP) keep dense shapes: their FLOPs and latency are the unpruned model's.
Below the table, what each search did (the evidence that alpha moved) and a figure of its target and soft ratio.
"""
from __future__ import annotations

import os

import pandas as pd

from workflow_scripts.core.io_utils import read_json
from workflow_scripts.reports.model_table import CostConfig, dev_split
from workflow_scripts.reports.render import (COLORS, csv_text, figure_bytes, figure_outputs, markdown_table,
                                             new_figure)

CSV_COLUMNS = ["task", "method", "flops_g", "flops_ratio", "flops_speedup", "latency_b1_ms", "latency_b32_ms",
               "cpu_speedup_b1", "cpu_speedup_b32", "parameters", "metric", "dev", "dev_change_pct", "test",
               "test_change_pct", "model_folder"]


def method_of(metrics_path: str) -> str:
    """`models/<task>/<method>/ratio_<R>/evaluate/metrics.json` -> method; `.../sparsity_<s>/...` -> method with its
    sparsity; `.../base/evaluate/...` -> unpruned."""
    parts = os.path.normpath(metrics_path).split(os.sep)
    setting = parts[parts.index("evaluate") - 1]
    if setting == "base":
        return "unpruned"
    method = parts[parts.index("evaluate") - 2]
    if setting.startswith("sparsity_"):
        return f"{method} ({float(setting.removeprefix('sparsity_')):.0%} sparse)"
    return method


LATENCY_ROUNDS = 3  # every model timed once per round, models interleaved: load drifts hit all of them alike


def _row(metrics_path: str) -> dict:
    evaluation = read_json(metrics_path)
    metric, split = evaluation["headline_metric"], dev_split(evaluation, metrics_path)
    return {"task": evaluation["task"], "method": method_of(metrics_path), "metric": metric,
            "dev": evaluation[split][metric], "test": evaluation.get("test", {}).get(metric),
            "model_folder": evaluation["model"]}


def measure_side_by_side(folders: list[str], cost: CostConfig) -> list[dict]:
    """Parameters, FLOPs and the median over LATENCY_ROUNDS interleaved rounds of each model's median latency (ms)
    at batch 1 and 32. The models (small enough here) stay loaded, so that every round times all of them."""
    import statistics

    from transformers import AutoConfig

    from workflow_scripts.core.counters import count_flops, count_parameters
    from workflow_scripts.core.latency import measure_latency
    from workflow_scripts.core.models import load_for_classification

    models = [load_for_classification(folder, AutoConfig.from_pretrained(folder).num_labels).cpu()
              for folder in folders]
    timings = [{1: [], 32: []} for _ in models]
    for _ in range(LATENCY_ROUNDS):
        for model, timing in zip(models, timings):
            for batch_size in timing:
                latency = measure_latency(model, batch_size, cost.seq_len, warmup=cost.latency_warmup,
                                          repeats=cost.latency_repeats, threads=cost.latency_threads)
                timing[batch_size].append(1000.0 * latency["median_s"])
    return [{"flops": count_flops(model, 1, cost.seq_len)["total"], "parameters": count_parameters(model)["total"],
             "latency_b1_ms": statistics.median(timing[1]), "latency_b32_ms": statistics.median(timing[32])}
            for model, timing in zip(models, timings)]


def report_table(base_metrics: str, metrics_paths: list[str], cost: CostConfig) -> pd.DataFrame:
    rows = [_row(path) for path in [base_metrics, *metrics_paths]]
    for row, measured in zip(rows, measure_side_by_side([row["model_folder"] for row in rows], cost)):
        row.update(measured)
    base = rows[0]
    for row in rows:
        row.update(flops_g=row["flops"] / 1e9, flops_ratio=row["flops"] / base["flops"],
                   flops_speedup=base["flops"] / row["flops"],
                   cpu_speedup_b1=base["latency_b1_ms"] / row["latency_b1_ms"],
                   cpu_speedup_b32=base["latency_b32_ms"] / row["latency_b32_ms"],
                   dev_change_pct=_change(row["dev"], base["dev"]),
                   test_change_pct=_change(row["test"], base["test"]))
    return pd.DataFrame(rows, columns=CSV_COLUMNS)


def _change(value, reference):
    if value is None or reference is None or reference == 0:
        return None
    return 100.0 * (value - reference) / abs(reference)


def display(table: pd.DataFrame) -> pd.DataFrame:
    def number(value, digits):
        return "" if value is None or pd.isna(value) else f"{value:.{digits}f}"

    return pd.DataFrame({
        "method": table["method"], "FLOPs (G)": table["flops_g"].map(lambda v: f"{v:.4g}"),
        "FLOPs ratio": table["flops_ratio"].map(lambda v: number(v, 3)),
        "speed-up (FLOPs)": table["flops_speedup"].map(lambda v: number(v, 2) + "x"),
        "CPU speed-up b1": table["cpu_speedup_b1"].map(lambda v: number(v, 2) + "x"),
        "CPU speed-up b32": table["cpu_speedup_b32"].map(lambda v: number(v, 2) + "x"),
        f"dev {table['metric'].iloc[0]}": table["dev"].map(lambda v: number(v, 4)),
        "dev change": table["dev_change_pct"].map(lambda v: number(v, 1) + ("%" if v is not None and not pd.isna(v) else "")),
        "test": table["test"].map(lambda v: number(v, 4)),
        "test change": table["test_change_pct"].map(lambda v: number(v, 1) + ("%" if v is not None and not pd.isna(v) else "")),
    })


def search_summary(search_folders: list[str]) -> pd.DataFrame:
    """What each search did: steps, alpha entries updated, final soft ratio, the discrete architecture."""
    rows = []
    for folder in search_folders:
        record = read_json(os.path.join(folder, "search.json"))
        architecture = record["architecture"]
        rows.append({"search": folder.split(os.sep)[-3], "steps": record["steps"],
                     "alpha entries updated": record["alpha_entries_updated"],
                     "soft ratio at the end": f"{record['final_soft_ratio']:.4f}",
                     "discrete ratio": f"{architecture['ratio']:.4f}",
                     "units dropped / added to meet the band": f"{architecture['adjusted']['dropped']} / "
                                                               f"{architecture['adjusted']['added']}",
                     "heads per layer": " ".join(str(len(h)) for h in architecture["heads_kept"]),
                     "FFN units per layer": " ".join(str(len(f)) for f in architecture["ffn_kept"])})
    return pd.DataFrame(rows)


def search_figure(search_folders: list[str]) -> dict[str, bytes]:
    figure = new_figure(7, 3.2)
    axes = figure.subplots()
    for index, folder in enumerate(search_folders):
        trajectory = pd.DataFrame(read_json(os.path.join(folder, "search.json"))["trajectory"])
        name, color = folder.split(os.sep)[-3], COLORS[index % len(COLORS)]
        axes.plot(trajectory["step"], trajectory["soft_ratio"], color=color, label=f"{name}: soft FLOPs ratio")
        axes.plot(trajectory["step"], trajectory["target"], color=color, linestyle="--", label=f"{name}: target R")
    axes.set_xlabel("optimizer step of the search")
    axes.set_ylabel("FLOPs / unpruned FLOPs")
    axes.legend(fontsize=8)
    return figure_bytes(figure)


def dap_report(base_metrics: str, metrics_paths: list[str], search_folders: list[str], cost: CostConfig,
               markdown_path: str, csv_path: str, plot_paths: list[str]) -> dict:
    table = report_table(base_metrics, metrics_paths, cost)
    task = table["task"].iloc[0]
    lines = [f"# Architecture pruning on {task} (seed 004)", "",
             f"Dev split (test where labelled); FLOPs of one sequence of {cost.seq_len} tokens; CPU latency on "
             f"{cost.latency_threads} threads: the median over {LATENCY_ROUNDS} rounds (every model timed once per "
             f"round, in turn) of the median of {cost.latency_repeats} forward passes. Speed-up (FLOPs) is the seed's "
             "\"Speedup\": unpruned FLOPs / pruned FLOPs. One seed (params.yaml `seed`).", "",
             markdown_table(display(table)), "",
             "Unstructured sparsity (magnitude, IMP) keeps every matrix dense: no speed-up with dense kernels.", "",
             "## What the searches did", "", markdown_table(search_summary(search_folders)), ""]
    return {markdown_path: "\n".join(lines), csv_path: csv_text(table),
            **figure_outputs(search_figure(search_folders), plot_paths)}
