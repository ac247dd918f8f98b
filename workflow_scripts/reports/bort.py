"""Bort's reports: the FPTAS's choice among the trained candidates (the seed's Table 1 and the candidates' scatter)
and distillation against MLM-only pretraining of the chosen architecture (the seed's Table 3 and Figure 1).

    selection = select(teacher, candidates, references, "latency")     # W of every candidate, the largest wins
    outputs = selection_report(selection, config, "results/bort/fptas")  # {path: content}: tables, plot, JSON
    summary = compare(read_curves(paths))                               # final scores, steps to MLM-only's final
"""
from __future__ import annotations

import html
import os
from dataclasses import dataclass, field

import pandas as pd

from workflow_scripts.bort.fptas import REPRESENTATIVES, rank_by_w
from workflow_scripts.reports.render import (COLORS, csv_text, figure_bytes, figure_outputs, html_figure,
                                             html_page, html_table, markdown_table, new_figure)

# ---- the FPTAS's selection ---------------------------------------------------------------------------------------

INFERENCE_KEYS = {"latency": "latency_s", "flops": "flops"}
TABLE_COLUMNS = ["rank", "architecture", "depth", "heads", "hidden", "intermediate", "w_coefficient",
                 "parameters_millions", "latency_ms", "mflops", "surrogate_error", "mlm_accuracy"]
# The markdown/HTML table: column -> (header, format of its cells)
DISPLAY_COLUMNS = {"w_coefficient": ("W", "{:.3f}"), "parameters_millions": ("parameters (M)", "{:.2f}"),
                   "latency_ms": ("latency (ms/sample)", "{:.2f}"), "mflops": ("MFLOPs", "{:.1f}"),
                   "surrogate_error": ("surrogate error", "{:.3f}"), "mlm_accuracy": ("MLM acc.", "{:.3f}")}
SELECTION_KEYS = ("tag", "depth", "heads", "hidden", "intermediate", "parameters", "flops", "latency_s",
                  "surrogate_error", "w_coefficient")
# ALBERT's options (bort.search_space embedding_size and sharing): columns of the tables only when a row has them,
# so that a search without them writes the tables it always did
OPTION_COLUMNS = ["embedding_size", "sharing"]


@dataclass
class SelectionConfig:
    """How the FPTAS chose (params.yaml: bort.fptas) and what the search space held (the DAG's plan)."""
    inference_cost: str = field(metadata={"help": "i(xi) in the W-coefficient: measured latency or FLOPs",
                                          "choices": sorted(INFERENCE_KEYS)})
    epsilon: int = field(metadata={"help": "recorded: the interval size that chose the trained candidates"})
    representative: str = field(metadata={"help": "recorded: which member of an interval was trained",
                                          "choices": list(REPRESENTATIVES)})
    valid: int = field(metadata={"help": "recorded: valid architectures in the space"})
    skipped: int = field(metadata={"help": "recorded: combinations with H % A != 0"})


def select(teacher: dict, candidates: list[dict], references: list[dict], inference_cost: str) -> dict:
    """W of every candidate, reference and T against T; the chosen one is the candidate with the largest W
    (references are shown, never chosen)."""
    key = INFERENCE_KEYS[inference_cost]
    ranked = rank_by_w(candidates, teacher, key)
    scored_references = rank_by_w(references, teacher, key) if references else []
    scored_teacher = rank_by_w([teacher], teacher, key)[0]
    return {"ranked": ranked, "references": scored_references, "teacher": scored_teacher, "chosen": ranked[0]}


def sharing_label(row: dict) -> str:
    """none, all, attention or ffn, with the group size when the layers share in groups: all/2."""
    mode, group = row.get("sharing") or "none", row.get("sharing_group")
    return f"{mode}/{group}" if mode != "none" and group else mode


def table_row(rank, row: dict) -> dict:
    return {"rank": rank, "architecture": row["tag"], "depth": row["depth"], "heads": row["heads"],
            "hidden": row["hidden"], "intermediate": row["intermediate"],
            "embedding_size": row.get("embedding_size") or row["hidden"], "sharing": sharing_label(row),
            "w_coefficient": round(row["w_coefficient"], 4), "parameters_millions": round(row["parameters"] / 1e6, 3),
            "latency_ms": round(row["latency_s"] * 1e3, 3), "mflops": round(row["flops"] / 1e6, 1),
            "surrogate_error": round(row["surrogate_error"], 4), "mlm_accuracy": round(row["mlm_accuracy"], 4)}


def table_columns(selection: dict) -> list[str]:
    """TABLE_COLUMNS, with E and the sharing after the shape when any architecture shown has ALBERT's options."""
    rows = [*selection["ranked"], *selection["references"], selection["teacher"]]
    if not any(row.get("embedding_size") or (row.get("sharing") or "none") != "none" for row in rows):
        return TABLE_COLUMNS
    at = TABLE_COLUMNS.index("intermediate") + 1
    return [*TABLE_COLUMNS[:at], *OPTION_COLUMNS, *TABLE_COLUMNS[at:]]


def selection_table(selection: dict, top: int = 3) -> pd.DataFrame:
    """The seed's Table 1: the top `top` candidates by W (rank 1..), then the references and T with their own W."""
    rows = [table_row(rank, row) for rank, row in enumerate(selection["ranked"][:top], start=1)]
    rows += [table_row("reference", row) for row in selection["references"]]
    rows.append(table_row("T", selection["teacher"]))
    return pd.DataFrame(rows, columns=table_columns(selection))


def candidates_table(selection: dict) -> pd.DataFrame:
    """Every trained candidate (rank by W) and reference (ranked after them), with its role: the scatter's data."""
    rows = [table_row(rank, row) | {"role": row["role"]}
            for rank, row in enumerate(selection["ranked"] + selection["references"], start=1)]
    return pd.DataFrame(rows, columns=[*table_columns(selection), "role"])


def architecture_label(row) -> str:
    """<D, A, H, I>, then ALBERT's options when the table has them: E=128 (factorized embeddings), shared: all/2."""
    label = f"<{row.depth}, {row.heads}, {row.hidden}, {row.intermediate}>"
    if getattr(row, "embedding_size", row.hidden) != row.hidden:
        label += f" E={row.embedding_size}"
    if getattr(row, "sharing", "none") != "none":
        label += f" shared: {row.sharing}"
    return label


def selection_display(table: pd.DataFrame) -> pd.DataFrame:
    """Table 1 as printed: <D, A, H, I> (and ALBERT's options), W and the measurements (parameters, latency and
    FLOPs side by side: sharing shrinks the first only), formatted."""
    shapes = [architecture_label(r) for r in table.itertuples()]
    display = pd.DataFrame({"": table["rank"].astype(str), "architecture <D, A, H, I>": shapes})
    for column, (header, cell) in DISPLAY_COLUMNS.items():
        display[header] = table[column].map(cell.format)
    return display


def candidates_figure(candidates: pd.DataFrame, chosen: str, inference_cost: str):
    """Surrogate error against parameters and against the inference cost W used; the chosen one marked."""
    cost_column, cost_label = (("latency_ms", "latency (ms/sample)") if inference_cost == "latency"
                               else ("mflops", "MFLOPs per sequence"))
    figure = new_figure(8, 3.4)
    for axes, (column, label) in zip(figure.subplots(1, 2, sharey=True),
                                     (("parameters_millions", "parameters (M)"), (cost_column, cost_label))):
        for role, color, marker in (("candidate", COLORS[0], "o"), ("reference", "#7f7f7f", "s")):
            subset = candidates[candidates["role"] == role]
            axes.scatter(subset[column], subset["surrogate_error"], color=color, marker=marker, s=24, label=role)
        winner = candidates[candidates["architecture"] == chosen]
        axes.scatter(winner[column], winner["surrogate_error"], color=COLORS[2], marker="*", s=160, zorder=3,
                     label=f"chosen: {chosen}")
        axes.set_xlabel(label)
        axes.grid(alpha=0.3)
    figure.axes[0].set_ylabel("surrogate error")
    figure.axes[0].legend(fontsize="small")
    figure.suptitle(f"FPTAS candidates (W with inference cost = {inference_cost})")
    return figure


def surrogate_error_spread(candidates: list[dict]) -> dict:
    """How far apart the trained candidates' surrogate errors are: if they barely differ, W is decided by size and
    cost alone. The relative range is (max - min) / min."""
    errors = pd.Series([row["surrogate_error"] for row in candidates], dtype=float)
    return {"min": float(errors.min()), "max": float(errors.max()), "median": float(errors.median()),
            "std": float(errors.std(ddof=0)), "relative_range": float((errors.max() - errors.min()) / errors.min())}


def selection_note(inference_cost: str, spread: dict) -> str:
    return (f"W-coefficient with inference cost = {inference_cost}; latency on one CPU thread, one sequence. "
            f"Surrogate errors of the trained candidates: {spread['min']:.3f} to {spread['max']:.3f} "
            f"(median {spread['median']:.3f}, std {spread['std']:.3f}; the largest is "
            f"{100 * spread['relative_range']:.1f}% above the smallest).")


def selection_json(selection: dict, config: SelectionConfig) -> dict:
    chosen = selection["chosen"]
    options = {key: chosen[key] for key in ("embedding_size", "sharing", "sharing_group")
               if chosen.get(key) not in (None, "none")}  # ALBERT's options, when it has some
    return {"chosen": {**{key: chosen[key] for key in SELECTION_KEYS}, **options},
            "surrogate_error_spread": surrogate_error_spread(selection["ranked"]),
            "inference_cost": config.inference_cost, "epsilon": config.epsilon,
            "representative": config.representative, "valid_architectures": config.valid,
            "skipped_architectures": config.skipped, "trained_candidates": len(selection["ranked"]),
            "ranking": [{"tag": row["tag"], "w_coefficient": row["w_coefficient"]} for row in selection["ranked"]]}


EVERY_CANDIDATE_NOTE = "Every trained candidate, ranked by W:"


def selection_report(selection: dict, config: SelectionConfig, output_dir: str) -> dict[str, str | bytes | dict]:
    """{path under output_dir: content}: table.csv, table.md, table.html (Table 1 and the scatter),
    candidates_scatter.csv (DVC plot), candidates.{png,svg}, selection.json."""
    table, candidates = selection_table(selection), candidates_table(selection)
    display = selection_display(table)
    every_candidate = selection_display(candidates[candidates["role"] == "candidate"])
    note = selection_note(config.inference_cost, surrogate_error_spread(selection["ranked"]))
    rendered = figure_bytes(candidates_figure(candidates, selection["chosen"]["tag"], config.inference_cost))
    page = html_page("FPTAS: the chosen architecture", [
        f"<p>{html.escape(note)} Chosen: <code>{selection['chosen']['tag']}</code> "
        f"(largest W among {len(selection['ranked'])} trained candidates; references never win).</p>",
        html_table(display),
        f"<p>{html.escape(EVERY_CANDIDATE_NOTE)}</p>", html_table(every_candidate),
        html_figure(rendered, "Surrogate error of every trained candidate and reference; the chosen one starred.")])

    def path(name):
        return os.path.join(output_dir, name)

    return {path("table.csv"): csv_text(table),
            path("table.md"): (f"{note}\n\n{markdown_table(display)}\n\n{EVERY_CANDIDATE_NOTE}\n\n"
                               f"{markdown_table(every_candidate)}\n"),
            path("table.html"): page,
            path("candidates_scatter.csv"): csv_text(candidates),
            **figure_outputs(rendered, [path("candidates.png"), path("candidates.svg")]),
            path("selection.json"): selection_json(selection, config)}


# ---- distillation against MLM-only pretraining -------------------------------------------------------------------

CURVE_SUFFIX = "_curve.csv"
# Sentence objectives whose held-out pair accuracy a curve may carry (column <name>_accuracy), and their headers.
SENTENCE_ACCURACIES = {"sop": "held-out SOP accuracy", "nsp": "held-out NSP accuracy"}


def read_curve(path: str) -> tuple[str, pd.DataFrame]:
    """(run, curve) of a kd_pretrain curve CSV: step, mlm_accuracy, mlm_loss per evaluation. The run is the file's
    name before _curve.csv (an objective, or a variant of bort.pretrain.variants, whose objective column says kd or
    mlm too); the objective column for a file named otherwise."""
    # pandas >= 3 parses floats exactly (round trip): the summary's numbers are the file's, to the last bit
    curve = pd.read_csv(path)
    if curve.empty:
        raise ValueError(f"{path} has no points")
    name = os.path.basename(path)
    return name.removesuffix(CURVE_SUFFIX) if name.endswith(CURVE_SUFFIX) else curve["objective"].iloc[0], curve


def steps_to_reach(curve: list[dict], target: float, key: str = "mlm_accuracy") -> int | None:
    """The first evaluated step whose accuracy is at least target, or whose loss (key mlm_loss) is at most target
    (None: never)."""
    reached = (lambda value: value <= target) if key == "mlm_loss" else (lambda value: value >= target)
    return next((int(point["step"]) for point in curve if reached(point[key])), None)


def compare(curves: dict[str, list[dict]], teacher: dict | None = None) -> dict:
    """Final held-out accuracy and loss of each objective, the steps each needs to reach MLM-only's final accuracy
    and loss (without an mlm curve: the worst final values), and, where the curves carry training seconds, the
    cost of a step and each objective's accuracy at equal wall time (the last point of each within the shorter
    run's time). Each curve is its points in step order ({step, mlm_accuracy, mlm_loss[, train_seconds]}).
    `teacher`: teacher_prep's record (T's held-out accuracy and the most-frequent-token rate) when known."""
    accuracy = {objective: float(curve[-1]["mlm_accuracy"]) for objective, curve in curves.items()}
    loss = {objective: float(curve[-1]["mlm_loss"]) for objective, curve in curves.items()}
    target_accuracy = accuracy["mlm"] if "mlm" in accuracy else min(accuracy.values())
    target_loss = loss["mlm"] if "mlm" in loss else max(loss.values())
    summary = {"target_mlm_accuracy": target_accuracy, "target_mlm_loss": target_loss, "objectives": {}}
    for objective, curve in curves.items():
        summary["objectives"][objective] = {
            "final_mlm_accuracy": accuracy[objective], "final_mlm_loss": loss[objective],
            "final_step": int(curve[-1]["step"]), "steps_to_target": steps_to_reach(curve, target_accuracy),
            "steps_to_target_loss": steps_to_reach(curve, target_loss, "mlm_loss")}
        for name in SENTENCE_ACCURACIES:  # runs with a sentence objective: held-out pair accuracy (chance 0.5)
            if f"{name}_accuracy" in curve[-1]:
                summary["objectives"][objective][f"final_{name}_accuracy"] = float(curve[-1][f"{name}_accuracy"])
    for suffix in ("", "_loss"):
        reached = {o: entry[f"steps_to_target{suffix}"] for o, entry in summary["objectives"].items()}
        if reached.get("kd") and reached.get("mlm"):
            summary[f"kd_steps_fraction_of_mlm{suffix}"] = reached["kd"] / reached["mlm"]
    if all("train_seconds" in curve[-1] for curve in curves.values()):
        _add_equal_time(summary, curves)
    if teacher is not None:
        _add_baselines(summary, teacher)
    return summary


def _add_equal_time(summary: dict, curves: dict[str, list[dict]]) -> None:
    equal_time = min(float(curve[-1]["train_seconds"]) for curve in curves.values())
    summary["equal_time_seconds"] = equal_time
    for objective, curve in curves.items():
        entry = summary["objectives"][objective]
        entry["seconds_per_step"] = float(curve[-1]["train_seconds"]) / int(curve[-1]["step"])
        within = [point for point in curve if float(point["train_seconds"]) <= equal_time]
        entry["mlm_accuracy_at_equal_time"] = float(within[-1]["mlm_accuracy"]) if within else None
        entry["step_at_equal_time"] = int(within[-1]["step"]) if within else None
    if {"kd", "mlm"} <= set(curves):
        summary["kd_step_cost_ratio"] = (summary["objectives"]["kd"]["seconds_per_step"]
                                         / summary["objectives"]["mlm"]["seconds_per_step"])


def _add_baselines(summary: dict, teacher: dict) -> None:
    rate = teacher["most_frequent_token_rate"]
    summary["teacher_mlm_accuracy"] = teacher["heldout"]["mlm_accuracy"]
    summary["most_frequent_token_rate"] = rate
    for entry in summary["objectives"].values():
        entry["accuracy_over_most_frequent_token_rate"] = entry["final_mlm_accuracy"] / rate


def pretraining_table(summary: dict) -> pd.DataFrame:
    def steps(value):
        return str(value) if value is not None else "not reached"

    sentence_columns = [name for name in SENTENCE_ACCURACIES
                        if any(f"final_{name}_accuracy" in entry for entry in summary["objectives"].values())]
    rows = []
    for objective, entry in summary["objectives"].items():
        row = {"objective": objective, "steps": str(entry["final_step"]),
               "final MLM accuracy": f"{entry['final_mlm_accuracy']:.4f}",
               "final MLM loss": f"{entry['final_mlm_loss']:.4f}"}
        for name in sentence_columns:  # only when a run has a sentence objective; "-" for the others
            value = entry.get(f"final_{name}_accuracy")
            row[SENTENCE_ACCURACIES[name]] = f"{value:.4f}" if value is not None else "-"
        row.update({"steps to the accuracy target": steps(entry["steps_to_target"]),
                    "steps to the loss target": steps(entry["steps_to_target_loss"])})
        if "seconds_per_step" in entry:
            at_time = entry["mlm_accuracy_at_equal_time"]
            row.update({"s/step": f"{entry['seconds_per_step']:.3f}",
                        "MLM accuracy at equal time": f"{at_time:.4f}" if at_time is not None else "no point",
                        "its step": steps(entry["step_at_equal_time"])})
        rows.append(row)
    return pd.DataFrame(rows)


def pretraining_notes(summary: dict, architecture: str) -> tuple[list[str], list[str]]:
    """(what precedes the table, what follows it): the targets and baselines, then how distillation compared."""
    before = [f"Pretraining of {architecture}: held-out masked-LM accuracy and loss (the corpus' held-out split).",
              f"Targets: accuracy {summary['target_mlm_accuracy']:.4f} and loss {summary['target_mlm_loss']:.4f}, "
              "what MLM-only pretraining ends with."]
    if "most_frequent_token_rate" in summary:
        before.append(f"Baselines on the same positions: always predicting the most frequent token scores "
                      f"{summary['most_frequent_token_rate']:.4f}; the teacher T scores "
                      f"{summary['teacher_mlm_accuracy']:.4f}.")
    if any(f"final_{name}_accuracy" in entry for entry in summary["objectives"].values()
           for name in SENTENCE_ACCURACIES):
        before.append("Held-out SOP / NSP accuracy: the held-out blocks as sentence pairs, half of them negatives "
                      "(swapped segments for SOP, a segment of another block for NSP); chance is 0.5. MLM accuracy "
                      "is on the plain held-out blocks for every run.")
    after = [f"Distillation reaches MLM-only's final {what} in {summary[f'kd_steps_fraction_of_mlm{suffix}']:.2f}x "
             "its steps." for suffix, what in (("", "accuracy"), ("_loss", "loss"))
             if f"kd_steps_fraction_of_mlm{suffix}" in summary]
    if "kd_step_cost_ratio" in summary:
        after.append(f"A distillation step costs {summary['kd_step_cost_ratio']:.2f}x an MLM-only step; at equal "
                     f"wall time ({summary['equal_time_seconds']:.0f} s of training) the accuracies are in the "
                     "table's equal-time column.")
    return before, after


def pretraining_figure(curves: dict[str, pd.DataFrame], summary: dict, architecture: str):
    """Held-out MLM accuracy against steps and against training seconds, and the loss against steps, one line per
    objective; MLM-only's final values dashed."""
    with_time = all("train_seconds" in curve for curve in curves.values())
    panels = [("step", "mlm_accuracy", "held-out MLM accuracy", summary["target_mlm_accuracy"]),
              ("step", "mlm_loss", "held-out MLM loss", summary["target_mlm_loss"])]
    if with_time:
        panels.insert(1, ("train_seconds", "mlm_accuracy", "held-out MLM accuracy", summary["target_mlm_accuracy"]))
    figure = new_figure(4 * len(panels), 3.2)
    for axes, (x_column, column, label, target) in zip(figure.subplots(1, len(panels)), panels):
        for index, (objective, curve) in enumerate(curves.items()):
            axes.plot(curve[x_column], curve[column], marker="o", markersize=3, color=COLORS[index % len(COLORS)],
                      label=objective)
        axes.axhline(target, color="#7f7f7f", linestyle="--", linewidth=1, label="target")
        if column == "mlm_accuracy" and "most_frequent_token_rate" in summary:
            axes.axhline(summary["most_frequent_token_rate"], color="#d62728", linestyle=":", linewidth=1,
                         label="most frequent token")
        axes.set_xlabel("training seconds" if x_column == "train_seconds" else "step")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
    figure.axes[0].legend(fontsize="small")
    variants = [name for name in curves if name not in ("kd", "mlm")]
    figure.suptitle(f"Pretraining of {architecture}: distillation (kd) against MLM only (mlm)"
                    + (f"; variants: {', '.join(variants)}" if variants else ""))
    return figure


def pretraining_report(curves: dict[str, pd.DataFrame], architecture: str, markdown_path: str, html_path: str,
                       metrics_path: str, figure_paths: list[str], teacher: dict | None = None
                       ) -> dict[str, str | bytes | dict]:
    """{path: content}: the comparison as markdown and as a page with the curves, the figure, the DVC metrics."""
    summary = compare({objective: curve.to_dict("records") for objective, curve in curves.items()}, teacher)
    table = pretraining_table(summary)
    before, after = pretraining_notes(summary, architecture)
    rendered = figure_bytes(pretraining_figure(curves, summary, architecture))
    markdown = "\n\n".join([*before, markdown_table(table)]) + "\n" + "".join(f"\n{line}\n" for line in after)
    page = html_page(f"Bort: pretraining of {architecture}", [
        *(f"<p>{html.escape(line)}</p>" for line in before), html_table(table),
        *(f"<p>{html.escape(line)}</p>" for line in after),
        html_figure(rendered, "Held-out masked-LM accuracy against steps and training seconds, and loss.")])
    return {markdown_path: markdown, html_path: page, **figure_outputs(rendered, figure_paths), metrics_path: summary}
