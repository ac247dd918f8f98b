"""Agora's reports: what it did round by round (the dev score of every round's model, the training-set size), and
how it compares with the plain fine-tune of the same student at equal compute, over seeds.

Round models are scored on dev as the evaluate stage scores them (core.evaluation): dev is scored for the report
only; Agora ranked sets on its selection share and picked the round it returns on its pick share. Statistics over
seeds are reports.comparison's (statistics.fmean, and stdev with ddof 1), as for the head-pruning methods.
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
from workflow_scripts.reports.comparison import SPLITS, mean_std, split_scores
from workflow_scripts.reports.render import (COLORS, csv_text, figure_bytes, figure_outputs, html_page, html_table,
                                             markdown_table, new_figure)

DEV_COLUMNS = ["round", "replay_round", "train_size", "sets", "best_set", "selection_score", "pick_score",
               "dev_score"]
SIZE_COLUMNS = ["round", "train_size", "added"]
SEED_COLUMNS = ["task", "seed", "metric", "split", "agora", "plain", "difference", "agora_round", "rounds",
                "points_added", "train_size_initial", "train_size_final", "agora_pick_score", "plain_pick_score",
                "agora_seconds", "plain_seconds", "agora_training_examples", "plain_training_examples", "agora_set",
                "plain_set"]
SUMMARY_COLUMNS = ["task", "metric", "split", "seeds", "agora_mean", "agora_std", "plain_mean", "plain_std",
                   "difference_mean", "difference_std"]
logger = logging.getLogger(__name__)


# ---- round by round ----------------------------------------------------------------------------------------------

def round_table(agora_folder: str, data: str, batch_size: int, device: str) -> tuple[pd.DataFrame, dict]:
    """(table, task): one row per round of the Agora run in agora_folder: its index and replay round,
    training-set size, points added after it, sets trained, the best set with its selection and pick scores, and
    that model's score on the dev split of the tokenized task `data`."""
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
                     "pick_score": record["pick_score"], "dev_score": dev_score})
        logger.info("round %d: dev %s %.4f", record["index"], headline, dev_score)
    return pd.DataFrame(rows, columns=[*DEV_COLUMNS, "added"]), task


def rounds_figure(rounds: pd.DataFrame, task: str, metric: str):
    """The round model's dev, selection and pick scores per round, and the training-set size per round."""
    figure = new_figure(8, 3.2)
    scores, sizes = figure.subplots(1, 2)
    scores.plot(rounds["round"], rounds["dev_score"], marker="o", color=COLORS[0], label="dev (reported only)")
    scores.plot(rounds["round"], rounds["selection_score"], marker="s", color=COLORS[1], linestyle="--",
                label="selection share (ranks sets, gives errors)")
    scores.plot(rounds["round"], rounds["pick_score"], marker="^", color=COLORS[2], linestyle=":",
                label="pick share (picks the round returned)")
    scores.set_ylabel(metric)
    scores.legend(fontsize="small")
    sizes.bar(rounds["round"], rounds["train_size"], color=COLORS[4])
    sizes.set_ylabel("training examples")
    for axes in (scores, sizes):
        axes.set_xlabel("round")
        axes.set_xticks(rounds["round"])
        axes.grid(alpha=0.3)
    figure.suptitle(f"Agora on {task}: the model of each round")
    return figure


def rounds_report(rounds: pd.DataFrame, task: str, metric: str, dev_path: str, size_path: str,
                  figure_paths: list[str]) -> dict[str, str | bytes]:
    """{path: content}: the two DVC plots (dev score, training-set size per round) and the figure."""
    return {dev_path: csv_text(rounds[DEV_COLUMNS]), size_path: csv_text(rounds[SIZE_COLUMNS]),
            **figure_outputs(figure_bytes(rounds_figure(rounds, task, metric)), figure_paths)}


# ---- Agora against the plain fine-tune, over seeds ---------------------------------------------------------------

def read_pair(agora_folder: str, plain_folder: str, agora_file: str, plain_file: str) -> tuple[dict, dict, dict, dict]:
    """(agora.json, plain.json, Agora's evaluation, the plain model's evaluation) of one task and seed; raises when
    the four do not belong to the same task and seed."""
    summary = read_json(os.path.join(agora_folder, "agora.json"))
    plain = read_json(os.path.join(plain_folder, "plain.json"))
    agora_eval, plain_eval = read_json(agora_file), read_json(plain_file)
    found = {(summary["task"], summary["seed"]), (plain["task"], plain["seed"])}
    tasks = {summary["task"], agora_eval["task"], plain_eval["task"]}
    if len(found) > 1 or len(tasks) > 1:
        raise ValueError(f"{agora_folder}, {plain_folder}, {agora_file} and {plain_file} are not one task and seed "
                         f"(found {sorted(found)}, tasks {sorted(tasks)})")
    return summary, plain, agora_eval, plain_eval


def seed_table(agora_folders: list[str], plain_folders: list[str], agora_metrics: list[str],
               plain_metrics: list[str]) -> pd.DataFrame:
    """One row per task, seed and reported split (dev, and test when labelled), the four lists in the same
    (task, seed) order: both models' headline metric, Agora minus plain, and what each run did."""
    if not len(agora_folders) == len(plain_folders) == len(agora_metrics) == len(plain_metrics):
        raise ValueError("the Agora and plain folders and their evaluations must list the same runs")
    rows = []
    for paths in zip(agora_folders, plain_folders, agora_metrics, plain_metrics):
        summary, plain, agora_eval, plain_eval = read_pair(*paths)
        agora_scores, plain_scores = split_scores(agora_eval), split_scores(plain_eval)
        for split in (split for split in SPLITS if split in agora_scores and split in plain_scores):
            rows.append({
                "task": summary["task"], "seed": summary["seed"], "metric": agora_eval["headline_metric"],
                "split": split, "agora": agora_scores[split], "plain": plain_scores[split],
                "difference": agora_scores[split] - plain_scores[split], "agora_round": summary["returned_round"],
                "rounds": len(summary["rounds"]), "points_added": summary["points_added"],
                "train_size_initial": summary["train_size"]["initial"],
                "train_size_final": summary["train_size"]["final"],
                "agora_pick_score": summary["returned_pick_score"], "plain_pick_score": plain["best_pick_score"],
                "agora_seconds": summary["seconds"], "plain_seconds": plain["seconds"],
                "agora_training_examples": summary["training_examples"],
                "plain_training_examples": plain["training_examples"], "agora_set": summary["returned_set"],
                "plain_set": plain["set"]})
    return pd.DataFrame(rows, columns=SEED_COLUMNS)


def summary_table(seeds: pd.DataFrame) -> pd.DataFrame:
    """One row per task and split: mean and sample std over seeds of Agora, of plain, and of the paired difference
    Agora - plain (seed by seed)."""
    rows = []
    for (task, split), runs in seeds.groupby(["task", "split"], sort=False):
        row = {"task": task, "metric": runs["metric"].iloc[0], "split": split, "seeds": len(runs)}
        for column in ("agora", "plain", "difference"):
            row[f"{column}_mean"], row[f"{column}_std"] = mean_std([float(value) for value in runs[column]])
        rows.append(row)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _mean_std_text(mean: float, std: float, seeds: int) -> str:
    return f"{mean:.4f} ± {std:.4f}" if seeds > 1 else f"{mean:.4f}"


def summary_display(summary: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "task": summary["task"], "metric": summary["metric"], "split": summary["split"],
        "seeds": summary["seeds"].astype(str),
        **{label: [_mean_std_text(getattr(r, f"{column}_mean"), getattr(r, f"{column}_std"), r.seeds)
                   for r in summary.itertuples()]
           for label, column in (("Agora", "agora"), ("plain", "plain"), ("Agora - plain, paired", "difference"))}})


def seed_display(seeds: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "task": seeds["task"], "seed": seeds["seed"].astype(str), "split": seeds["split"],
        "Agora": seeds["agora"].map("{:.4f}".format), "plain": seeds["plain"].map("{:.4f}".format),
        "Agora - plain": seeds["difference"].map("{:+.4f}".format),
        "round returned": [f"{r.agora_round} of {r.rounds}" for r in seeds.itertuples()],
        "points added": seeds["points_added"].astype(str),
        "train size": [f"{r.train_size_initial} -> {r.train_size_final}" for r in seeds.itertuples()],
        "pick score (Agora / plain)": [f"{r.agora_pick_score:.4f} / {r.plain_pick_score:.4f}"
                                       for r in seeds.itertuples()],
        "time, s (Agora / plain)": [f"{r.agora_seconds:.0f} / {r.plain_seconds:.0f}" for r in seeds.itertuples()],
        "training examples (Agora / plain)": [f"{r.agora_training_examples} / {r.plain_training_examples}"
                                              for r in seeds.itertuples()],
        "Agora's set": seeds["agora_set"], "plain's set": seeds["plain_set"]})


def summary_metrics(summary: pd.DataFrame) -> dict:
    """DVC metrics: task -> split -> {seeds, agora_mean, agora_std, plain_mean, ..., difference_std}."""
    metrics: dict[str, dict] = {}
    for row in summary.to_dict("records"):
        metrics.setdefault(row["task"], {})[row["split"]] = {
            "seeds": int(row["seeds"]), **{column: float(row[column]) for column in SUMMARY_COLUMNS[4:]}}
    return metrics


TITLE = "Agora against plain fine-tuning of the same student at equal compute"
NOTE = ("The task's dev and test splits are only reported. Both methods choose on shares of the training split: "
        "Agora ranks its sets on the selection share, and the model each returns (Agora's round, the plain "
        "fine-tune's epoch) is the best on the pick share. Mean ± sample standard deviation over seeds; Agora - "
        "plain is paired by seed.")


def comparison_report(seeds: pd.DataFrame, markdown_path: str, summary_csv_path: str, seeds_csv_path: str,
                      html_path: str, metrics_path: str) -> dict[str, str | dict]:
    """{path: content}: the comparison over seeds and per seed as markdown, CSV and a page, and the DVC metrics."""
    summary = summary_table(seeds)
    summary_shown, seeds_shown = summary_display(summary), seed_display(seeds)
    markdown = (f"# {TITLE}\n\n{NOTE}\n\n## Over seeds\n\n{markdown_table(summary_shown)}\n\n"
                f"## Per seed\n\n{markdown_table(seeds_shown)}\n")
    page = html_page(TITLE, [f"<p>{html.escape(NOTE)}</p>", "<h3>Over seeds</h3>", html_table(summary_shown),
                             "<h3>Per seed</h3>", html_table(seeds_shown)])
    return {markdown_path: markdown, summary_csv_path: csv_text(summary), seeds_csv_path: csv_text(seeds),
            html_path: page, metrics_path: summary_metrics(summary)}
