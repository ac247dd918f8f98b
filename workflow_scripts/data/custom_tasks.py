"""Tasks of your own: a local CSV/TSV/JSON-lines/parquet file or folder, or a hub dataset, as a task the pipeline runs.

A definition comes from params.yaml's `tasks` (pipeline/params.py validates its shape and fills in the defaults
from the schema) and is read here, at prepare time, where the data is:

    definition = {"name": "reviews", "data": "my_data/reviews.csv", "text_columns": ["review"],   # or "hub": {...}
                  "label_column": "stars", "labels": None, "metrics": ["accuracy"],
                  "splits": {"train": "train", "dev": None, "test": None}, "dev_fraction": 0.1, "test_fraction": 0.1}
    rows_by_split, spec, details = build_custom_task(definition, seed=0)
    write_task(rows_by_split, spec, "data/reviews/raw", details)    # data/sources.py

The rows are written like every other task's, in the GLUE schema: the text columns become `sentence` (one) or
`sentence1`, `sentence2` (a pair), the label `label` (a class id, or a number for regression), plus `idx`. So
tokenization, fine-tuning, evaluation and every pruning method read them unchanged. task.json records the spec,
the original label of each class id (`label_names`) and the columns the rows came from (`source_columns`).

Where the splits come from: a file holds the training rows; a folder holds `<split>.<ext>` or `<split>-*.<ext>`
files; a hub dataset has its own splits. `splits` names the source split used for train, dev and test; a dev or
test split given as null is a seeded share (dev_fraction, test_fraction) of the source training split, disjoint
from the rest. Problems with the data stop here with one message naming the file (or hub split) and what to fix.
"""
from __future__ import annotations

import json
import math
import os
import random
from dataclasses import dataclass, field

from workflow_scripts.core.metrics import BINARY_METRICS, REGRESSION_METRICS
from workflow_scripts.data.sources import split_files
from workflow_scripts.data.tasks import DEV, TEST, TRAIN, TaskSpec

SUPPORTED_SUFFIXES = (".csv", ".tsv", ".jsonl", ".parquet")
# The GLUE-schema names the text columns are written under: one column, or a sentence pair.
TEXT_COLUMN_NAMES = {1: ("sentence",), 2: ("sentence1", "sentence2")}
CUSTOM_SOURCE = "custom"  # TaskSpec.source of a task of your own


class CustomTaskError(ValueError):
    """A task of your own cannot be prepared from its data; the message names the file and what to fix."""


@dataclass
class SourceSplit:
    """The rows of one split as read, the columns they have, where they came from and each row's number there
    (1-based; a share drawn from the training split keeps the numbers of its rows), for messages."""
    rows: list[dict]
    columns: list[str]
    where: str
    row_numbers: list[int] = field(default_factory=list)

    def __post_init__(self):
        self.row_numbers = self.row_numbers or list(range(1, len(self.rows) + 1))

    def subset(self, positions: list[int]) -> "SourceSplit":
        return SourceSplit([self.rows[i] for i in positions], self.columns, self.where,
                           [self.row_numbers[i] for i in positions])


# ---- Reading ---------------------------------------------------------------------------------------------------


def _suffix(path: str) -> str:
    return os.path.splitext(path)[1].lower()


def read_table(path: str) -> SourceSplit:
    """All rows of one local file, by its suffix: .csv and .tsv through pandas (types inferred: a column of numbers
    gives numbers; empty cells stay empty text), .jsonl one JSON object per line, .parquet through pyarrow."""
    suffix = _suffix(path)
    if suffix not in SUPPORTED_SUFFIXES:
        raise CustomTaskError(f"{path}: unsupported file type {suffix or '(no suffix)'!r} "
                              f"(supported: {', '.join(SUPPORTED_SUFFIXES)})")
    if not os.path.isfile(path):
        raise CustomTaskError(f"{path} not found")
    if suffix in (".csv", ".tsv"):
        import pandas as pd

        try:
            frame = pd.read_csv(path, sep="," if suffix == ".csv" else "\t", keep_default_na=False)
        except pd.errors.EmptyDataError:
            return SourceSplit([], [], path)
        except (pd.errors.ParserError, UnicodeDecodeError) as error:
            raise CustomTaskError(f"{path} is not a readable {suffix[1:].upper()} file: {error}") from error
        return SourceSplit(frame.to_dict("records"), [str(column) for column in frame.columns], path)
    if suffix == ".jsonl":
        rows = []
        with open(path, encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise CustomTaskError(f"{path}: line {line_number} is not JSON ({error})") from error
                if not isinstance(row, dict):
                    raise CustomTaskError(f"{path}: line {line_number} is not a JSON object (one row per line)")
                rows.append(row)
        columns = list(dict.fromkeys(key for row in rows for key in row))
        return SourceSplit(rows, columns, path)
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as error:  # noqa: BLE001 - pyarrow's errors differ by version; one message names the file
        raise CustomTaskError(f"{path} is not a readable parquet file: {error}") from error
    return SourceSplit(table.to_pylist(), list(table.column_names), path)


def folder_split_files(folder: str) -> dict[str, list[str]]:
    """{split: files} of a folder of `<split>.<ext>` or `<split>-*.<ext>` files (files of other types are ignored)."""
    files_by_split = split_files(folder, SUPPORTED_SUFFIXES)
    if not files_by_split:
        raise CustomTaskError(f"{folder}: no {', '.join(SUPPORTED_SUFFIXES)} files in the folder (expected "
                              "<split>.<ext> or <split>-*.<ext>, e.g. train.csv, validation.csv)")
    return files_by_split


def _read_files(files: list[str]) -> SourceSplit:
    """One split from one or more files (shards, in name order), which must have the same columns; rows are
    numbered through the shards."""
    parts = [read_table(path) for path in files]
    for part in parts[1:]:
        if set(part.columns) != set(parts[0].columns):
            raise CustomTaskError(f"{part.where} has columns {', '.join(part.columns)} but {parts[0].where}, a shard "
                                  f"of the same split, has {', '.join(parts[0].columns)}")
    if len(parts) == 1:
        return parts[0]
    return SourceSplit([row for part in parts for row in part.rows], parts[0].columns, ", ".join(files))


class _LocalSource:
    """The splits of a local file (its rows are the training split) or folder, read when asked for."""

    def __init__(self, path: str):
        if not os.path.exists(path):
            raise CustomTaskError(f"{path} not found (a file or folder, relative to the workflow's folder)")
        self.path = path
        self.is_file = os.path.isfile(path)
        self.files_by_split = None if self.is_file else folder_split_files(path)
        if self.is_file and _suffix(path) not in SUPPORTED_SUFFIXES:
            read_table(path)  # raises: unsupported file type

    def split(self, name: str) -> SourceSplit:
        if self.is_file:
            return read_table(self.path)
        if name not in self.files_by_split:
            raise CustomTaskError(f"{self.path}: no files for split {name!r} (splits there: "
                                  f"{', '.join(self.files_by_split)}; expected {name}.<ext> or {name}-*.<ext>)")
        return _read_files(self.files_by_split[name])


class _HubSource:
    """The splits of a hub dataset (datasets.load_dataset), loaded once."""

    def __init__(self, dataset_id: str, config: str | None):
        import datasets

        self.label = f"hub dataset {dataset_id}" + (f" ({config})" if config else "")
        try:
            self.dataset_dict = datasets.load_dataset(dataset_id, config)
        except Exception as error:  # noqa: BLE001 - turned into one actionable message
            raise CustomTaskError(
                f"could not load the {self.label}: {error}. Offline? Download it on a machine with network "
                f"(`hf download --repo-type dataset {dataset_id} --local-dir DIR`) and set the task's `data` to the "
                "folder there holding its <split>-*.parquet files (instead of `hub`).") from error

    def split(self, name: str) -> SourceSplit:
        if name not in self.dataset_dict:
            raise CustomTaskError(f"{self.label}: no split {name!r} (splits there: {', '.join(self.dataset_dict)})")
        dataset = self.dataset_dict[name]
        return SourceSplit(dataset.to_list(), list(dataset.column_names), f"{self.label}, split {name!r}")


def open_source(definition: dict):
    """The object whose .split(name) reads one source split of the definition's data."""
    if definition.get("hub"):
        return _HubSource(definition["hub"]["id"], definition["hub"].get("config"))
    return _LocalSource(definition["data"])


# ---- Splits ----------------------------------------------------------------------------------------------------


def seeded_shares(count: int, fractions: dict[str, float], seed: int) -> dict[str, list[int]]:
    """Row indices of each share of `count` rows (in the order given), drawn by one seeded shuffle, and what is
    left under TRAIN; each list in ascending order (rows keep their source order). round(fraction x count) rows
    each; disjoint by construction."""
    order = list(range(count))
    random.Random(seed).shuffle(order)
    shares, start = {}, 0
    for name, fraction in fractions.items():
        size = round(fraction * count)
        shares[name] = sorted(order[start:start + size])
        start += size
    shares[TRAIN] = sorted(order[start:])
    return shares


def _fraction_key(split: str) -> str:
    return "dev_fraction" if split == DEV else "test_fraction"


def select_splits(definition: dict, source, seed: int) -> tuple[dict[str, SourceSplit], SourceSplit]:
    """({train, validation, test}: SourceSplit, the whole source training split) as the definition chooses."""
    names = definition["splits"]
    training = source.split(names["train"])
    if isinstance(source, _LocalSource) and source.is_file:
        given = [key for key in ("dev", "test") if names[key] is not None]
        if given:
            raise CustomTaskError(f"{source.path} is one file: it holds the training rows only. Set splits."
                                  f"{given[0]} to null (a seeded share of it) or give a folder of <split>.<ext> files")
    carved = {split: definition[_fraction_key(split)] for split, key in ((DEV, "dev"), (TEST, "test"))
              if names[key] is None}
    splits = {split: source.split(names[key]) for split, key in ((DEV, "dev"), (TEST, "test"))
              if names[key] is not None}
    shares = seeded_shares(len(training.rows), carved, seed)
    for split in (*carved, TRAIN):
        splits[split] = training.subset(shares[split])
    for split in (TRAIN, DEV, TEST):
        if splits[split].rows:
            continue
        problem = f"{splits[split].where} has no rows"
        if training.rows and split in carved:
            problem = (f"{_fraction_key(split)} {carved[split]:g} of the {len(training.rows)} rows of "
                       f"{training.where} rounds to none (raise it, or give a source split)")
        elif training.rows and split == TRAIN:
            problem = (f"the {' and '.join(carved)} shares take all {len(training.rows)} rows of {training.where} "
                       f"(lower {' and '.join(map(_fraction_key, carved))})")
        raise CustomTaskError(f"task {definition['name']}: the {split} split is empty: {problem}")
    return {split: splits[split] for split in (TRAIN, DEV, TEST)}, training


# ---- Labels and rows -------------------------------------------------------------------------------------------


def _is_missing(value) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def is_regression(metrics) -> bool:
    return all(metric in REGRESSION_METRICS for metric in metrics)


def check_columns(split: SourceSplit, columns: list[str]) -> None:
    missing = [column for column in columns if column not in split.columns]
    if missing:
        raise CustomTaskError(f"{split.where}: no column {missing[0]!r} (its columns: "
                              f"{', '.join(split.columns) or 'none'})")


def label_classes(definition: dict, training: SourceSplit) -> list:
    """The class labels in class-id order: the declared `labels`, or the sorted labels of the source training split
    (before any dev/test share is drawn from it, so a class is never lost to a share)."""
    if definition["labels"] is not None:
        return list(definition["labels"])
    found = {row[definition["label_column"]] for row in training.rows
             if not _is_missing(row[definition["label_column"]])}
    try:
        classes = sorted(found)
    except TypeError:  # labels of mixed types (numbers and text): in the order of their text
        classes = sorted(found, key=str)
    if len(classes) < 2:
        raise CustomTaskError(f"{training.where}: column {definition['label_column']!r} has "
                              f"{'only the label ' + repr(classes[0]) if classes else 'no labels'}: a classifier "
                              "needs two or more (or declare them with `labels`)")
    return classes


def _check_binary_metrics(definition: dict, classes: list) -> None:
    binary = [metric for metric in definition["metrics"] if metric in BINARY_METRICS]
    if binary and len(classes) != 2:
        raise CustomTaskError(f"task {definition['name']}: metric {binary[0]!r} scores two classes (class id 1 is "
                              f"the positive one) but the labels are {len(classes)}: {classes}; use accuracy")


def glue_rows(split: SourceSplit, definition: dict, class_ids: dict | None) -> list[dict]:
    """Rows in the GLUE schema: text under TEXT_COLUMN_NAMES, `label` as a class id (or a float for regression),
    `idx` the position in the split."""
    text_columns, label_column = definition["text_columns"], definition["label_column"]
    check_columns(split, [*text_columns, label_column])
    names = TEXT_COLUMN_NAMES[len(text_columns)]
    rows = []
    for position, (source_row, row_number) in enumerate(zip(split.rows, split.row_numbers)):
        where = f"{split.where}, row {row_number}"
        label = source_row.get(label_column)
        if _is_missing(label):
            raise CustomTaskError(f"{where}: no label in column {label_column!r}")
        if class_ids is None:
            if isinstance(label, bool) or not isinstance(label, (int, float)):
                raise CustomTaskError(f"{where}: label {label!r} is not a number (metrics "
                                      f"{', '.join(definition['metrics'])} score a regression)")
            label = float(label)
        elif label in class_ids:
            label = class_ids[label]
        else:
            raise CustomTaskError(f"{where}: unknown label {label!r} (the task's labels: "
                                  f"{', '.join(repr(known) for known in class_ids)})")
        texts = [source_row.get(column) for column in text_columns]
        if any(text is None for text in texts):
            empty = text_columns[texts.index(None)]
            raise CustomTaskError(f"{where}: no text in column {empty!r}")
        rows.append({**{name: str(text) for name, text in zip(names, texts)}, "label": label, "idx": position})
    return rows


def build_custom_task(definition: dict, seed: int) -> tuple[dict[str, list[dict]], TaskSpec, dict]:
    """(rows of train/validation/test in the GLUE schema, the TaskSpec, details for task.json) of a definition."""
    source = open_source(definition)
    splits, training = select_splits(definition, source, seed)
    check_columns(training, [*definition["text_columns"], definition["label_column"]])
    regression = is_regression(definition["metrics"])
    class_ids = None
    if not regression:
        classes = label_classes(definition, training)
        _check_binary_metrics(definition, classes)
        class_ids = {label: class_id for class_id, label in enumerate(classes)}
    rows_by_split = {split: glue_rows(splits[split], definition, class_ids) for split in (TRAIN, DEV, TEST)}
    names = TEXT_COLUMN_NAMES[len(definition["text_columns"])]
    spec = TaskSpec(definition["name"], CUSTOM_SOURCE, names, 1 if regression else len(class_ids),
                    tuple(definition["metrics"]), dev_split=DEV)
    details = {"label_names": None if regression else list(class_ids),
               "source_columns": {**dict(zip(names, definition["text_columns"])),
                                  "label": definition["label_column"]}}
    return rows_by_split, spec, details
