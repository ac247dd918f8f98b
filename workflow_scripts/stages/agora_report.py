"""Stages agora_rounds and agora_compare: what Agora did, round by round, and how it compares with the plain
fine-tune of the same student at equal compute.

    rounds   the dev score of every round's best model and the training-set size per round (two DVC plots).
             Dev is scored here for the report only: Agora selected on its selection split.
    compare  one row per task: dev headline metric of Agora and of the plain fine-tune, their wall times and
             training examples, the points Agora added, its rounds (markdown + a DVC metrics file).
"""
from __future__ import annotations

import csv
import io
import os

from transformers import AutoTokenizer, DataCollatorWithPadding

from workflow_scripts.pipeline.cli import stage_parser, start_stage
from workflow_scripts.stages.evaluate import evaluate_split
from workflow_scripts.core.io_utils import read_json, write_json, write_text
from workflow_scripts.core.models import load_for_classification
from workflow_scripts.stages.tokenize_task import load_tokenized


def to_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def round_rows(agora_folder: str, data_folder: str, batch_size: int, device: str, logger) -> list[dict]:
    summary = read_json(os.path.join(agora_folder, "agora.json"))
    dataset_dict, task = load_tokenized(data_folder)
    dev = dataset_dict[task["dev_split"]]
    headline = task["metrics"][0]
    rows = []
    for record in summary["rounds"]:
        folder = os.path.join(agora_folder, "rounds", f"round_{record['index']:02d}", "model")
        model = load_for_classification(folder, task["num_labels"])
        collate_fn = DataCollatorWithPadding(AutoTokenizer.from_pretrained(folder))
        dev_score = evaluate_split(model, dev, task, batch_size, collate_fn, device, task["dev_split"])[headline]
        rows.append({"round": record["index"], "replay_round": record["replay_round"],
                     "train_size": record["train_size"], "added": record["added"], "sets": len(record["scores"]),
                     "best_set": record["best_set"], "selection_score": record["scores"][record["best_set"]],
                     "dev_score": dev_score})
        logger.info("round %d: dev %s %.4f", record["index"], headline, dev_score)
    return rows


def comparison(agora_folders, plain_folders, agora_metrics, plain_metrics) -> list[dict]:
    rows = []
    for agora_folder, plain_folder, agora_file, plain_file in zip(agora_folders, plain_folders, agora_metrics,
                                                                  plain_metrics):
        summary = read_json(os.path.join(agora_folder, "agora.json"))
        plain = read_json(os.path.join(plain_folder, "plain.json"))
        agora_eval, plain_eval = read_json(agora_file), read_json(plain_file)
        metric = agora_eval["headline_metric"]
        dev = next(split for split in agora_eval if split not in ("task", "model", "headline_metric", "test"))
        rows.append({"task": summary["task"], "metric": metric, "split": dev,
                     "agora": agora_eval[dev][metric], "plain": plain_eval[dev][metric],
                     "agora_seconds": summary["seconds"], "plain_seconds": plain["seconds"],
                     "points_added": summary["points_added"], "rounds": len(summary["rounds"]),
                     "train_size_initial": summary["train_size"]["initial"],
                     "train_size_final": summary["train_size"]["final"],
                     "agora_training_examples": summary["training_examples"],
                     "plain_training_examples": plain["training_examples"],
                     "agora_set": summary["best_set"], "plain_set": plain["set"]})
    return rows


def comparison_markdown(rows: list[dict]) -> str:
    lines = ["# Agora against plain fine-tuning of the same student at equal compute", "",
             "Dev split of each task (never selected on: both select on a share of the training split).", "",
             "| task | metric | Agora | plain | rounds | points added | train size | Agora time (s) | plain time (s) "
             "| training examples (Agora / plain) | Agora's best set | plain's set |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['task']} | {row['metric']} | {row['agora']:.4f} | {row['plain']:.4f} | {row['rounds']} "
                     f"| {row['points_added']} | {row['train_size_initial']} -> {row['train_size_final']} "
                     f"| {row['agora_seconds']:.0f} | {row['plain_seconds']:.0f} "
                     f"| {row['agora_training_examples']} / {row['plain_training_examples']} "
                     f"| {row['agora_set']} | {row['plain_set']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("mode", choices=["rounds", "compare"])
    parser.add_argument("--agora", nargs="+", required=True, help="agora_finetune output folder(s)")
    parser.add_argument("--data", help="rounds: the tokenized task folder")
    parser.add_argument("--dev-output", help="rounds: CSV of the dev score per round")
    parser.add_argument("--size-output", help="rounds: CSV of the training-set size per round")
    parser.add_argument("--batch-size", type=int, default=64, help="rounds: examples per forward pass")
    parser.add_argument("--plain", nargs="+", help="compare: finetune_plain folders, in the order of --agora")
    parser.add_argument("--agora-metrics", nargs="+", help="compare: evaluate metrics of the Agora models")
    parser.add_argument("--plain-metrics", nargs="+", help="compare: evaluate metrics of the plain models")
    parser.add_argument("--output", help="compare: markdown table")
    parser.add_argument("--metrics-output", help="compare: DVC metrics JSON")
    args = parser.parse_args(argv)
    needed = (["data", "dev_output", "size_output"] if args.mode == "rounds"
              else ["plain", "agora_metrics", "plain_metrics", "output", "metrics_output"])
    missing = [f"--{name.replace('_', '-')}" for name in needed if getattr(args, name) is None]
    if missing:
        parser.error(f"{args.mode} needs {', '.join(missing)}")
    logger, device = start_stage(args)

    if args.mode == "rounds":
        rows = round_rows(args.agora[0], args.data, args.batch_size, device, logger)
        write_text(args.dev_output, to_csv([{k: row[k] for k in ("round", "replay_round", "train_size", "sets",
                                                                  "best_set", "selection_score", "dev_score")}
                                            for row in rows]))
        write_text(args.size_output, to_csv([{k: row[k] for k in ("round", "train_size", "added")} for row in rows]))
        return
    rows = comparison(args.agora, args.plain, args.agora_metrics, args.plain_metrics)
    write_text(args.output, comparison_markdown(rows))
    write_json(args.metrics_output, {row["task"]: {"agora": row["agora"], "plain": row["plain"],
                                                   "points_added": row["points_added"], "rounds": row["rounds"]}
                                     for row in rows})


if __name__ == "__main__":
    main()
