"""Task registry: which columns, labels and metrics each task has, and where its data comes from.

Generated tasks (gen_*) mirror the four GLUE tasks of the AUBER paper and are built offline by
`task_generator`; GLUE tasks are read from the hub's `nyu-mll/glue` repository or a local copy of it.
Every task is stored as GLUE-schema JSON lines: data/<task>/raw/{train,validation,test}.jsonl.

This module is the registry only (no loading code), so that a stage that needs a split name or a task's metrics
does not depend on the generated tasks' grammar: data/sources.py builds the rows.
"""
from __future__ import annotations

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
