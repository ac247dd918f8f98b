"""Stage prepare_task: write one task's splits as GLUE-schema JSON lines (data/<task>/raw/<split>.jsonl).

Generated tasks are built deterministically from the seed and their sizes; GLUE tasks are read from
data.glue_source; a task of your own (a definition in params.yaml's `tasks`) from its file, folder or hub dataset,
with dev and test drawn from its training rows by the seed where it has none (data/custom_tasks.py). The rule
passes only what the task's source needs (pipeline/params.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from workflow_scripts.data.custom_tasks import CustomTaskError, build_custom_task
from workflow_scripts.data.sources import build_task_rows, write_task
from workflow_scripts.data.tasks import TASKS, get_task
from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage


@dataclass
class Paths:
    task: str = field(metadata={"help": "task name (workflow_scripts/data/tasks.py, or a task of your own)"})
    output: str = field(metadata={"help": "folder for <split>.jsonl and task.json"})


@dataclass
class TaskSource:
    """What the task's source reads: a generated task its seed and sizes, a GLUE task glue_source, a task of your
    own its definition and the seed of its dev/test shares. None: unused."""
    seed: int | None = field(default=None, metadata={"help": "seed of a generated task, or of a task of your own's "
                                                             "dev/test shares (seed)"})
    train: int | None = field(default=None, metadata={"help": "generated: training examples"})
    validation: int | None = field(default=None, metadata={"help": "generated: dev examples"})
    test: int | None = field(default=None, metadata={"help": "generated: test examples"})
    glue_source: str | None = field(default=None, metadata={"help": "GLUE: hub id or local folder"})
    custom_task: dict | None = field(default=None, metadata={
        "help": "a task of your own: its definition from params.yaml `tasks` as JSON, defaults filled in"})


def check(paths: Paths, source: TaskSource, execution) -> str | None:
    if source.custom_task is not None or paths.task not in TASKS:
        if source.custom_task is None:
            return f"task {paths.task} is not built in (known: {', '.join(TASKS)}): give its definition with " \
                   "--custom-task"
        if source.custom_task.get("name") != paths.task:
            return f"--custom-task defines task {source.custom_task.get('name')!r}, not {paths.task!r}"
        return f"task {paths.task} needs --seed (of its dev/test shares)" if source.seed is None else None
    spec = get_task(paths.task)
    needed = ["seed", "train", "validation", "test"] if spec.source == "generated" else ["glue_source"]
    missing = [name for name in needed if getattr(source, name) is None]
    return f"{spec.source} task {paths.task} needs --{', --'.join(n.replace('_', '-') for n in missing)}" \
        if missing else None


def main(argv=None) -> None:
    paths, source, execution = parse_stage_args(__doc__, [Paths, TaskSource, Execution], argv, check=check)
    logger, _ = start_stage(execution, paths, source)
    details = None
    if source.custom_task is not None:
        try:
            rows_by_split, spec, details = build_custom_task(source.custom_task, seed=source.seed)
        except CustomTaskError as error:  # a problem with the user's data: one line saying what to fix
            logger.error("%s", error)
            raise SystemExit(f"prepare_task {paths.task}: {error}") from None
    else:
        spec = get_task(paths.task)
        sizes = {paths.task: {"train": source.train, "validation": source.validation, "test": source.test}}
        rows_by_split = build_task_rows(spec, seed=source.seed, generated_sizes=sizes, glue_source=source.glue_source)
    write_task(rows_by_split, spec, paths.output, details)
    logger.info("wrote %s: %s", paths.output, {split: len(rows) for split, rows in rows_by_split.items()})


if __name__ == "__main__":
    main()
