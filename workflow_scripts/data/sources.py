"""Where a task's rows come from: the generated tasks (data/generated) or a copy of GLUE (hub or local folder), and
how a task's splits are written (data/<task>/raw/<split>.jsonl + task.json)."""
from __future__ import annotations

import glob
import json
import os
import re

from workflow_scripts.core.io_utils import atomic_output_dir, write_json
from workflow_scripts.data.tasks import TaskSpec


def split_files(folder: str, suffixes: tuple[str, ...]) -> dict[str, list[str]]:
    """{split: files, in name order} of a folder of `<split>.<ext>` or `<split>-*.<ext>` files with one of
    `suffixes` (the hub's layout, and a task of your own's folder); other files are ignored, {} when none."""
    files_by_split: dict[str, list[str]] = {}
    for path in sorted(glob.glob(os.path.join(glob.escape(folder), "*"))):
        if os.path.isfile(path) and os.path.splitext(path)[1].lower() in suffixes:
            split = re.match(r"[^.-]*", os.path.basename(path)).group(0)
            files_by_split.setdefault(split, []).append(path)
    return files_by_split


def glue_split_files(glue_source: str, config_name: str) -> dict[str, list[str]]:
    """Parquet files of one GLUE configuration in a local copy of the hub repo (<config>/<split>-*.parquet)."""
    files_by_split = split_files(os.path.join(glue_source, config_name), (".parquet",))
    if not files_by_split:
        raise FileNotFoundError(
            f"no parquet files for GLUE task {config_name!r} under {glue_source!r} "
            f"(expected {os.path.join(glue_source, config_name, '<split>-*.parquet')}, as in the hub repo nyu-mll/glue)")
    return files_by_split


def load_glue_task(spec: TaskSpec, glue_source: str) -> dict[str, list[dict]]:
    """Rows of each split of a GLUE task, from a local folder or (network permitting) the hub."""
    import datasets

    if os.path.isdir(glue_source):
        dataset_dict = datasets.load_dataset("parquet", data_files=glue_split_files(glue_source, spec.glue_config))
    else:
        try:
            dataset_dict = datasets.load_dataset(glue_source, spec.glue_config)
        except Exception as error:  # noqa: BLE001 - turned into one actionable message
            raise RuntimeError(
                f"could not load GLUE task {spec.glue_config!r} from the hub dataset {glue_source!r}: {error}. "
                f"Offline? Download it on a machine with network (`hf download --repo-type dataset {glue_source} "
                f"--local-dir DIR`) and set data.glue_source to DIR.") from error
    columns = [*spec.text_columns, "label", "idx"]
    return {split: [{column: row[column] for column in columns} for row in dataset_dict[split]]
            for split in dataset_dict}


def build_task_rows(spec: TaskSpec, *, seed: int, generated_sizes: dict, glue_source: str) -> dict[str, list[dict]]:
    """All splits of a task as GLUE-schema rows, generated or read."""
    if spec.source == "generated":
        from workflow_scripts.data.generated.task_generator import generate_task

        if spec.name not in generated_sizes:
            raise KeyError(f"data.generated_sizes has no entry for task {spec.name!r}")
        return generate_task(spec.generator_kind, seed, generated_sizes[spec.name])
    return load_glue_task(spec, glue_source)


def write_task(rows_by_split: dict[str, list[dict]], spec: TaskSpec, folder: str, details: dict | None = None) -> None:
    """Each split as JSON lines, and task.json (the spec, the split sizes and `details`), written atomically."""
    with atomic_output_dir(folder) as staging:
        for split, rows in rows_by_split.items():
            with open(os.path.join(staging, f"{split}.jsonl"), "w") as handle:
                for row in rows:
                    handle.write(json.dumps(row, sort_keys=True) + "\n")
        counts = {split: len(rows) for split, rows in rows_by_split.items()}
        write_json(os.path.join(staging, "task.json"), {**spec.to_json(), "split_sizes": counts, **(details or {})})
