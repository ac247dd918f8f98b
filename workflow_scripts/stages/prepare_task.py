"""Stage prepare_task: write one task's splits as GLUE-schema JSON lines (data/<task>/raw/<split>.jsonl).

Generated tasks are built deterministically from the seed; GLUE tasks are read from data.glue_source.
"""
from __future__ import annotations

import json
import os

from workflow_scripts.pipeline.cli import stage_parser, start_stage
from workflow_scripts.core.io_utils import atomic_output_dir, write_json
from workflow_scripts.data.tasks import build_task_rows, get_task


def write_task(rows_by_split: dict[str, list[dict]], spec, folder: str) -> None:
    with atomic_output_dir(folder) as staging:
        for split, rows in rows_by_split.items():
            with open(os.path.join(staging, f"{split}.jsonl"), "w") as handle:
                for row in rows:
                    handle.write(json.dumps(row, sort_keys=True) + "\n")
        counts = {split: len(rows) for split, rows in rows_by_split.items()}
        write_json(os.path.join(staging, "task.json"), {**spec.to_json(), "split_sizes": counts})


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--task", required=True, help="task name (see workflow_scripts/data/tasks.py)")
    parser.add_argument("--output", required=True, help="folder for <split>.jsonl and task.json")
    group = parser.add_argument_group("data (from params.yaml)")
    group.add_argument("--seed", type=int, default=0, help="seed of generated tasks")
    group.add_argument("--train", type=int, help="generated tasks: training examples")
    group.add_argument("--validation", type=int, help="generated tasks: dev examples")
    group.add_argument("--test", type=int, help="generated tasks: test examples")
    group.add_argument("--glue-source", default="nyu-mll/glue", help="GLUE tasks: hub id or local folder")
    args = parser.parse_args(argv)
    logger, _ = start_stage(args)

    spec = get_task(args.task)
    sizes = {args.task: {"train": args.train, "validation": args.validation, "test": args.test}}
    rows_by_split = build_task_rows(spec, seed=args.seed, generated_sizes=sizes, glue_source=args.glue_source)
    write_task(rows_by_split, spec, args.output)
    logger.info("wrote %s: %s", args.output, {split: len(rows) for split, rows in rows_by_split.items()})


if __name__ == "__main__":
    main()
