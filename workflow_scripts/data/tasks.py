"""Task registry: which columns, labels and metrics each task has, and where its data comes from.

Generated tasks (gen_*) mirror the four GLUE tasks of the AUBER paper and are built offline by
`task_generator`; GLUE tasks are read from the hub's `nyu-mll/glue` repository or a local copy of it.
Every task is stored as GLUE-schema JSON lines: data/<task>/raw/{train,validation,test}.jsonl.
"""
from __future__ import annotations

import glob
import os
from dataclasses import asdict, dataclass

TRAIN, DEV, TEST = "train", "validation", "test"


@dataclass(frozen=True)
class TaskSpec:
    name: str
    source: str                     # "generated" or "glue"
    text_columns: tuple[str, ...]   # one column: single sentence; two: sentence pair
    num_labels: int                 # 1 means regression (STS-B)
    metrics: tuple[str, ...]        # reported on dev; the first is the task's headline metric
    generator_kind: str | None = None   # task_generator kind, for generated tasks
    glue_config: str | None = None      # configuration name in nyu-mll/glue
    dev_split: str = DEV                # the split we report (MNLI: validation_matched)

    def to_json(self) -> dict:
        return asdict(self)


def _generated(name, kind, text_columns, metrics):
    return TaskSpec(name, "generated", text_columns, 2, metrics, generator_kind=kind)


def _glue(name, text_columns, num_labels, metrics, dev_split=DEV):
    return TaskSpec(name, "glue", text_columns, num_labels, metrics, glue_config=name, dev_split=dev_split)


PAIR, SINGLE = ("sentence1", "sentence2"), ("sentence",)
TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in [
    _generated("gen_mrpc", "paraphrase", PAIR, ("accuracy", "f1")),
    _generated("gen_cola", "acceptability", SINGLE, ("matthews_correlation", "accuracy")),
    _generated("gen_rte", "entailment", PAIR, ("accuracy",)),
    _generated("gen_wnli", "coreference", PAIR, ("accuracy",)),
    _glue("mrpc", PAIR, 2, ("accuracy", "f1")),
    _glue("cola", SINGLE, 2, ("matthews_correlation", "accuracy")),
    _glue("rte", PAIR, 2, ("accuracy",)),
    _glue("wnli", PAIR, 2, ("accuracy",)),
    _glue("sst2", SINGLE, 2, ("accuracy",)),
    _glue("stsb", PAIR, 1, ("pearson", "spearman")),
    _glue("qqp", ("question1", "question2"), 2, ("accuracy", "f1")),
    _glue("qnli", ("question", "sentence"), 2, ("accuracy",)),
    _glue("mnli", ("premise", "hypothesis"), 3, ("accuracy",), dev_split="validation_matched"),
]}


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[name]


def glue_split_files(glue_source: str, config_name: str) -> dict[str, list[str]]:
    """Parquet files of one GLUE configuration in a local copy of the hub repo (<config>/<split>-*.parquet)."""
    files_by_split: dict[str, list[str]] = {}
    for path in sorted(glob.glob(os.path.join(glue_source, config_name, "*.parquet"))):
        split = os.path.basename(path).split("-")[0]
        files_by_split.setdefault(split, []).append(path)
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
