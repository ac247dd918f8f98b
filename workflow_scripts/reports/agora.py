"""Agora's reports: what it did round by round (the dev score of every round's best model, the training-set size),
and how it compares with the plain fine-tune of the same student at equal compute.

Round models are scored on dev as the evaluate stage scores them (core.evaluation): dev is scored for the report
only; Agora selected on its selection split.
"""
from __future__ import annotations

import html
import logging
import os

import pandas as pd

from workflow_scripts.core.evaluation import evaluate_split
from workflow_scripts.core.io_utils import read_json
from workflow_scripts.core.models import load_for_classification
from workflow_scripts.data.tokenized import load_tokenized
from workflow_scripts.reports.render import (COLORS, csv_text, figure_bytes, figure_outputs, html_page, html_table,
                                             markdown_table, new_figure)

DEV_COLUMNS = ["round", "replay_round", "train_size", "sets", "best_set", "selection_score", "dev_score"]
SIZE_COLUMNS = ["round", "train_size", "added"]
EVALUATION_KEYS = ("task", "model", "headline_metric", "test")  # the rest of an evaluation JSON: its dev split
logger = logging.getLogger(__name__)


# ---- round by round ----------------------------------------------------------------------------------------------

def round_table(agora_folder: str, data: str, batch_size: int, device: str) -> tuple[pd.DataFrame, dict]:
    """(table, task): one row per round of the Agora run in agora_folder: its index and replay round,
    training-set size, points added after it, sets trained, the best set with its selection score, and that
    model's score on the dev split of the tokenized task `data`."""
    from transformers import AutoTokenizer, DataCollatorWithPadding

    summary = read_json(os.path.join(agora_folder, "agora.json"))
    dataset_dict, task = load_tokenized(data)
    headline = task["metrics"][0]
    rows = []
    for record in summary["rounds"]:
        folder = os.path.join(agora_folder, "rounds", f"round_{record['index']:02d}", "model")
        model = load_for_classification(folder, task["num_labels"])
        collate_fn = DataCollatorWithPadding(AutoTokenizer.from_pretrained(folder))
        dev_score = evaluate_split(model, dataset_dict[task["dev_split"]], task, batch_size, collate_fn, device,
                                   task["dev_split"])[headline]
        rows.append({"round": record["index"], "replay_round": record["replay_round"],
                     "train_size": record["train_size"], "added": record["added"], "sets": len(record["scores"]),
                     "best_set": record["best_set"], "selection_score": record["scores"][record["best_set"]],
                     "dev_score": dev_score})
        logger.info("round %d: dev %s %.4f", record["index"], headline, dev_score)
    return pd.DataFrame(rows, columns=[*DEV_COLUMNS, "added"]), task


def rounds_figure(rounds: pd.DataFrame, task: str, metric: str):
    """The best model's dev and selection scores per round, and the training-set size per round."""
    figure = new_figure(8, 3.2)
    scores, sizes = figure.subplots(1, 2)
    scores.plot(rounds["round"], rounds["dev_score"], marker="o", color=COLORS[0], label="dev (reported only)")
    scores.plot(rounds["round"], rounds["selection_score"], marker="s", color=COLORS[1], linestyle="--",
                label="selection split (what Agora chose on)")
    scores.set_ylabel(metric)
    scores.legend(fontsize="small")
    sizes.bar(rounds["round"], rounds["train_size"], color=COLORS[4])
    sizes.set_ylabel("training examples")
    for axes in (scores, sizes):
        axes.set_xlabel("round")
        axes.set_xticks(rounds["round"])
        axes.grid(alpha=0.3)
    figure.suptitle(f"Agora on {task}: the best model of each round")
    return figure


def rounds_report(rounds: pd.DataFrame, task: str, metric: str, dev_path: str, size_path: str,
                  figure_paths: list[str]) -> dict[str, str | bytes]:
    """{path: content}: the two DVC plots (dev score, training-set size per round) and the figure."""
    return {dev_path: csv_text(rounds[DEV_COLUMNS]), size_path: csv_text(rounds[SIZE_COLUMNS]),
            **figure_outputs(figure_bytes(rounds_figure(rounds, task, metric)), figure_paths)}


# ---- Agora against the plain fine-tune ---------------------------------------------------------------------------

def comparison_table(agora_folders: list[str], plain_folders: list[str], agora_metrics: list[str],
                     plain_metrics: list[str]) -> pd.DataFrame:
    """One row per task (the four lists in the same task order): dev headline metric of Agora and of the plain
    fine-tune, their wall times and training examples, Agora's rounds, points added and training-set growth."""
    if not len(agora_folders) == len(plain_folders) == len(agora_metrics) == len(plain_metrics):
        raise ValueError("the Agora and plain folders and their evaluations must list the same tasks")
    rows = []
    for agora_folder, plain_folder, agora_file, plain_file in zip(agora_folders, plain_folders, agora_metrics,
                                                                  plain_metrics):
        summary = read_json(os.path.join(agora_folder, "agora.json"))
        plain = read_json(os.path.join(plain_folder, "plain.json"))
        agora_eval, plain_eval = read_json(agora_file), read_json(plain_file)
        metric = agora_eval["headline_metric"]
        dev = next(split for split in agora_eval if split not in EVALUATION_KEYS)
        rows.append({"task": summary["task"], "metric": metric, "split": dev,
                     "agora": agora_eval[dev][metric], "plain": plain_eval[dev][metric],
                     "agora_seconds": summary["seconds"], "plain_seconds": plain["seconds"],
                     "points_added": summary["points_added"], "rounds": len(summary["rounds"]),
                     "train_size_initial": summary["train_size"]["initial"],
                     "train_size_final": summary["train_size"]["final"],
                     "agora_training_examples": summary["training_examples"],
                     "plain_training_examples": plain["training_examples"],
                     "agora_set": summary["best_set"], "plain_set": plain["set"]})
    return pd.DataFrame(rows)


def comparison_display(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "task": table["task"], "metric": table["metric"], "Agora": table["agora"].map("{:.4f}".format),
        "plain": table["plain"].map("{:.4f}".format), "rounds": table["rounds"].astype(str),
        "points added": table["points_added"].astype(str),
        "train size": [f"{r.train_size_initial} -> {r.train_size_final}" for r in table.itertuples()],
        "Agora time (s)": table["agora_seconds"].map("{:.0f}".format),
        "plain time (s)": table["plain_seconds"].map("{:.0f}".format),
        "training examples (Agora / plain)": [f"{r.agora_training_examples} / {r.plain_training_examples}"
                                              for r in table.itertuples()],
        "Agora's best set": table["agora_set"], "plain's set": table["plain_set"]})


TITLE = "Agora against plain fine-tuning of the same student at equal compute"
NOTE = "Dev split of each task (never selected on: both select on a share of the training split)."


def comparison_report(table: pd.DataFrame, markdown_path: str, html_path: str,
                      metrics_path: str) -> dict[str, str | dict]:
    """{path: content}: the comparison as markdown and as a page, and the DVC metrics (task -> scores)."""
    display = comparison_display(table)
    metrics = {row.task: {"agora": row.agora, "plain": row.plain, "points_added": row.points_added,
                          "rounds": row.rounds} for row in table.itertuples()}
    return {markdown_path: f"# {TITLE}\n\n{NOTE}\n\n{markdown_table(display)}\n",
            html_path: html_page(TITLE, [f"<p>{html.escape(NOTE)}</p>", html_table(display)]),
            metrics_path: metrics}
