"""TinyBERT's tables (seed 001; Jiao et al. 2019, Tables 5-7) for the task distillation of the Bort student.

Rows are runs (`tinybert` and each of tinybert.variants, labelled No GD, No Attn, ... by params.yaml), columns are
tasks and their average, cells the task's headline metric x 100 on one split, as the seed prints them:

    Table 5 (procedures)   TinyBERT / No GD / No TD / No DA
    Table 6 (objectives)   TinyBERT / No Embd / No Pred / No Trm / No Attn / No Hidn
    Table 7 (mapping)      TinyBERT (uniform) / top / bottom

The default run heads every table. Below them, the majority-class rates (the class most frequent in the training
split, predicted for every row) that a run must beat, and what each run did: its settings and each stage's loss in
its first and last epoch (the evidence that distillation acted). The CSV has one row per run and task.
"""
from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pandas as pd

from workflow_scripts.core.io_utils import read_json
from workflow_scripts.reports.render import csv_text, markdown_table

TABLES = {"procedures": "Table 5: procedures of the two-stage framework",
          "objectives": "Table 6: distillation objectives",
          "mapping": "Table 7: layer-mapping strategies",
          None: "Other runs"}
STAGES = ("distill_intermediate", "distill_prediction")
SETTINGS = ("student", "augmentation", "intermediate_stage", "prediction_target", "layer_mapping", "embedding_weight",
            "hidden_weight", "attention_weight", "temperature")
CSV_COLUMNS = ["method", "label", "table", "task", "metric", "dev", "test", "dev_accuracy", "test_accuracy",
               "dev_majority", "test_majority", "dev_majority_accuracy", "test_majority_accuracy", *SETTINGS,
               *(f"{stage}_{when}" for stage in STAGES for when in ("steps", "loss_first_epoch", "loss_last_epoch")),
               "model_folder"]


def run_of(metrics_path: str) -> tuple[str, str]:
    """(task, method) of models/<task>/<method>/evaluate/metrics.json."""
    parts = os.path.normpath(metrics_path).split(os.sep)
    return parts[-4], parts[-3]


def majority_rates(dataset_dict, task: dict) -> dict[str, dict]:
    """{split: {"accuracy": ..., "<headline metric>": ...}} of always predicting the training split's most frequent
    class, on the splits evaluate reports (none for a regression task)."""
    from workflow_scripts.core.evaluation import splits_to_report
    from workflow_scripts.core.metrics import compute_metrics

    if task["num_labels"] == 1:
        return {}
    majority = Counter(dataset_dict["train"]["labels"]).most_common(1)[0][0]
    rates = {}
    for split in splits_to_report(dataset_dict, task):
        labels = np.asarray(dataset_dict[split]["labels"])
        logits = np.zeros((len(labels), task["num_labels"]))
        logits[:, majority] = 1.0
        scores = compute_metrics(sorted({"accuracy", task["metrics"][0]}), logits, labels)
        rates[split] = scores
    return rates


def loss_summary(stage_folder: str | None) -> dict:
    """Steps and the mean loss of the first and of the last epoch of a distill_task stage (training_log.json)."""
    if stage_folder is None:
        return {"steps": 0, "loss_first_epoch": None, "loss_last_epoch": None}
    log = read_json(os.path.join(stage_folder, "training_log.json"))
    losses, epochs = log["losses"], log["training"]["epochs"]
    per_epoch = max(1, len(losses) // epochs)
    return {"steps": len(losses), "loss_first_epoch": float(np.mean(losses[:per_epoch])),
            "loss_last_epoch": float(np.mean(losses[-per_epoch:]))}


def report_rows(runs: dict[str, dict], metrics_paths: list[str], stage_folders: list[str],
                majority_by_task: dict[str, dict]) -> pd.DataFrame:
    """One row per run and task: the run's label, table and settings, dev and test metrics, the majority-class
    rates, and its stages' losses."""
    rows = []
    for path in metrics_paths:
        task, method = run_of(path)
        evaluation, run = read_json(path), runs[method]
        metric = evaluation["headline_metric"]
        dev = next(split for split in ("validation", "validation_matched", "dev") if split in evaluation)
        majority = majority_by_task.get(task, {})
        row = {"method": method, "label": run["label"], "table": run["table"], "task": task, "metric": metric,
               "dev": evaluation[dev][metric], "test": evaluation.get("test", {}).get(metric),
               "dev_accuracy": evaluation[dev].get("accuracy"),
               "test_accuracy": evaluation.get("test", {}).get("accuracy"),
               "dev_majority": majority.get(dev, {}).get(metric), "test_majority": majority.get("test", {}).get(metric),
               "dev_majority_accuracy": majority.get(dev, {}).get("accuracy"),
               "test_majority_accuracy": majority.get("test", {}).get("accuracy"),
               **{name: run[name] for name in SETTINGS}, "model_folder": evaluation["model"]}
        run_folder = os.path.dirname(os.path.dirname(os.path.normpath(path)))
        for stage in STAGES:
            folder = os.path.join(run_folder, stage)
            known = folder if folder in {os.path.normpath(f) for f in stage_folders} else None
            row.update({f"{stage}_{key}": value for key, value in loss_summary(known).items()})
        rows.append(row)
    return pd.DataFrame(rows, columns=CSV_COLUMNS)


def _cell(value) -> str:
    return "" if value is None or pd.isna(value) else f"{100 * value:.1f}"


def seed_table(rows: pd.DataFrame, runs: dict[str, dict], table: str | None, split: str) -> pd.DataFrame:
    """The seed's layout: one row per run of the table (the default run first), one column per task, the average."""
    methods = ["tinybert", *(method for method, run in runs.items() if method != "tinybert" and run["table"] == table)]
    tasks = list(dict.fromkeys(rows["task"]))
    lines = []
    for method in methods:
        label = runs[method]["label"]
        if table == "mapping":
            label = f"{label} ({runs[method]['layer_mapping']})" if method == "tinybert" else label
        values = [rows[(rows["method"] == method) & (rows["task"] == task)][split] for task in tasks]
        values = [None if value.empty else value.iloc[0] for value in values]
        known = [value for value in values if value is not None and not pd.isna(value)]
        lines.append({"System": label, **{task: _cell(value) for task, value in zip(tasks, values)},
                      "Average": _cell(float(np.mean(known))) if len(known) == len(values) else ""})
    return pd.DataFrame(lines, columns=["System", *tasks, "Average"])


def _number(value, digits: int = 4) -> str:
    return "" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def evidence_table(rows: pd.DataFrame) -> pd.DataFrame:
    """What each run did: its start, data, stages and their losses, its dev accuracy against the majority rate."""
    def stage(row, name):
        if not row[f"{name}_steps"]:
            return "skipped"
        return (f"{row[f'{name}_steps']} steps: {_number(row[f'{name}_loss_first_epoch'])} -> "
                f"{_number(row[f'{name}_loss_last_epoch'])}")
    return pd.DataFrame([{
        "run": row["method"], "task": row["task"], "student": row["student"],
        "augmented": "yes" if row["augmentation"] else "no",
        "losses (emb/hid/att, map)": f"{row['embedding_weight']:g}/{row['hidden_weight']:g}/"
                                     f"{row['attention_weight']:g}, {row['layer_mapping']}",
        "intermediate (loss, first -> last epoch)": stage(row, "distill_intermediate"),
        "prediction (target: loss, first -> last epoch)": f"{row['prediction_target']}: "
                                                          f"{stage(row, 'distill_prediction')}",
        "dev accuracy": _number(row["dev_accuracy"], 3), "majority": _number(row["dev_majority_accuracy"], 3),
        "dev metric": f"{_number(row['dev'], 3)} ({row['metric']})"} for _, row in rows.iterrows()])


def majority_table(majority_by_task: dict[str, dict], rows: pd.DataFrame) -> pd.DataFrame:
    metric_of = dict(zip(rows["task"], rows["metric"]))
    return pd.DataFrame([{"task": task, "split": split, "accuracy": _number(scores["accuracy"], 3),
                          "headline metric": f"{_number(scores.get(metric_of.get(task)), 3)} ({metric_of.get(task)})"}
                         for task, rates in majority_by_task.items() for split, scores in rates.items()],
                        columns=["task", "split", "accuracy", "headline metric"])


def tinybert_report(runs: dict[str, dict], metrics_paths: list[str], stage_folders: list[str],
                    majority_by_task: dict[str, dict], markdown_path: str, csv_path: str) -> dict:
    rows = report_rows(runs, metrics_paths, stage_folders, majority_by_task)
    tables = [table for table in TABLES if table is None and len(runs) == 1
              or any(run["table"] == table for method, run in runs.items() if method != "tinybert")]
    lines = ["# TinyBERT: task distillation of the Bort student (seed 001)", "",
             "Each run starts from a Bort student and learns from the task's fine-tuned model (TinyBERT's intermediate "
             "and prediction stages; docs/tinybert.md). Cells: the task's headline metric x 100 (the seed's scale), "
             "one seed (params.yaml `seed`). Nothing is selected on dev or test.", ""]
    for split, name in (("dev", "dev split"), ("test", "test split")):
        if rows[split].isna().all():
            continue
        lines += [f"## {name.capitalize()}", ""]
        for table in tables:
            title = TABLES[table] if len(runs) > 1 else "Task distillation of the Bort student"
            lines += [f"### {title}", "", markdown_table(seed_table(rows, runs, table, split)), ""]
    lines += ["## Majority-class rates", "",
              "Always predicting the training split's most frequent class scores this (the rate a run must beat; "
              "Matthews correlation 0):", "", markdown_table(majority_table(majority_by_task, rows)), "",
              "## What each run did", "",
              "Losses are the mean of a stage's first and of its last epoch (training_log.json of the stage).", "",
              markdown_table(evidence_table(rows)), ""]
    return {markdown_path: "\n".join(lines), csv_path: csv_text(rows)}
