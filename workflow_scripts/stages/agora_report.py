"""Stages agora_rounds and agora_compare: what Agora did, round by round, and how it compares with the plain
fine-tune of the same student at equal compute.

    agora_report rounds   the dev score of every round's model and the training-set size per round (two DVC
                          plots) and a figure of both. Dev is scored here for the report only: Agora ranked sets
                          on its selection share and picked the round it returns on its pick share.
    agora_report compare  per task, the mean and std over seeds of Agora's and the plain fine-tune's headline
                          metric on dev (and test when labelled) and of their paired difference, then one row per
                          seed with what each run did (markdown, two CSVs, a page and a DVC metrics file).

`agora_report rounds --help` and `agora_report compare --help` list each mode's flags. The logic is
workflow_scripts.reports.agora.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage
from workflow_scripts.reports.agora import comparison_report, round_table, rounds_report, seed_table
from workflow_scripts.reports.render import write_outputs


@dataclass
class RoundsPaths:
    """rounds: one Agora run and its task's data, and the plots to write."""
    agora: str = field(metadata={"help": "agora_finetune output folder"})
    data: str = field(metadata={"help": "the tokenized task folder"})
    dev_output: str = field(metadata={"help": "CSV of the dev score per round"})
    size_output: str = field(metadata={"help": "CSV of the training-set size per round"})
    plots: list[str] = field(metadata={"help": "the rounds' figure, as .png and/or .svg"})


@dataclass
class DevScoring:
    """How the dev split is scored (params.yaml: evaluate)."""
    batch_size: int = field(metadata={"help": "examples per forward pass (evaluate.batch_size)"})


@dataclass
class ComparePaths:
    """compare: per task and seed, in the same order, Agora's and the plain fine-tune's folders and evaluations."""
    agora: list[str] = field(metadata={"help": "agora_finetune output folders, one per task and seed"})
    plain: list[str] = field(metadata={"help": "finetune_plain folders, in the order of --agora"})
    agora_metrics: list[str] = field(metadata={"help": "evaluate metrics of the Agora models"})
    plain_metrics: list[str] = field(metadata={"help": "evaluate metrics of the plain models"})
    output: str = field(metadata={"help": "markdown tables (over seeds, per seed)"})
    output_csv: str = field(metadata={"help": "CSV: per task and split, mean and std over seeds"})
    output_seeds_csv: str = field(metadata={"help": "CSV: one row per task, seed and split"})
    output_html: str = field(metadata={"help": "the table as a page"})
    metrics_output: str = field(metadata={"help": "DVC metrics JSON"})


def check_compare(paths: ComparePaths, execution: Execution) -> str | None:
    if not len(paths.agora) == len(paths.plain) == len(paths.agora_metrics) == len(paths.plain_metrics):
        return "--agora, --plain, --agora-metrics and --plain-metrics must list the same runs, in the same order"
    return None


def rounds(argv) -> None:
    paths, scoring, execution = parse_stage_args(__doc__, [RoundsPaths, DevScoring, Execution], argv)
    _, device = start_stage(execution, paths, scoring)
    table, task = round_table(paths.agora, paths.data, scoring.batch_size, device)
    write_outputs(rounds_report(table, task["name"], task["metrics"][0], paths.dev_output, paths.size_output,
                                paths.plots))


def compare(argv) -> None:
    paths, execution = parse_stage_args(__doc__, [ComparePaths, Execution], argv, check=check_compare)
    start_stage(execution, paths)
    seeds = seed_table(paths.agora, paths.plain, paths.agora_metrics, paths.plain_metrics)
    write_outputs(comparison_report(seeds, paths.output, paths.output_csv, paths.output_seeds_csv, paths.output_html,
                                    paths.metrics_output))


MODES = {"rounds": rounds, "compare": compare}


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in MODES:
        sys.exit(f"usage: python -m workflow_scripts.stages.agora_report {{{','.join(MODES)}}} ...\n\n{__doc__}")
    MODES[argv[0]](argv[1:])


if __name__ == "__main__":
    main()
