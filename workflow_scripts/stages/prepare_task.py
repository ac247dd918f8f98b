"""Stage prepare_task: write one task's splits as GLUE-schema JSON lines (data/<task>/raw/<split>.jsonl).

Generated tasks are built deterministically from the seed and their sizes; GLUE tasks are read from
data.glue_source. The rule passes only what the task's source needs (pipeline/params.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from workflow_scripts.data.sources import build_task_rows, write_task
from workflow_scripts.data.tasks import get_task
from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage


@dataclass
class Paths:
    task: str = field(metadata={"help": "task name (workflow_scripts/data/tasks.py)"})
    output: str = field(metadata={"help": "folder for <split>.jsonl and task.json"})


@dataclass
class TaskSource:
    """What the task's source reads: a generated task its seed and sizes, a GLUE task glue_source. None: unused."""
    seed: int | None = field(default=None, metadata={"help": "seed of a generated task (seed)"})
    train: int | None = field(default=None, metadata={"help": "generated: training examples"})
    validation: int | None = field(default=None, metadata={"help": "generated: dev examples"})
    test: int | None = field(default=None, metadata={"help": "generated: test examples"})
    glue_source: str | None = field(default=None, metadata={"help": "GLUE: hub id or local folder"})


def check(paths: Paths, source: TaskSource, execution) -> str | None:
    spec = get_task(paths.task)
    needed = ["seed", "train", "validation", "test"] if spec.source == "generated" else ["glue_source"]
    missing = [name for name in needed if getattr(source, name) is None]
    return f"{spec.source} task {paths.task} needs --{', --'.join(n.replace('_', '-') for n in missing)}" \
        if missing else None


def main(argv=None) -> None:
    paths, source, execution = parse_stage_args(__doc__, [Paths, TaskSource, Execution], argv, check=check)
    logger, _ = start_stage(execution, paths, source)
    spec = get_task(paths.task)
    sizes = {paths.task: {"train": source.train, "validation": source.validation, "test": source.test}}
    rows_by_split = build_task_rows(spec, seed=source.seed, generated_sizes=sizes, glue_source=source.glue_source)
    write_task(rows_by_split, spec, paths.output)
    logger.info("wrote %s: %s", paths.output, {split: len(rows) for split, rows in rows_by_split.items()})


if __name__ == "__main__":
    main()
