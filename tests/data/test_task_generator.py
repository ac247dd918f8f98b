"""The generated GLUE-like tasks: schema, labels, determinism, split hygiene and input validation."""

import importlib.util
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from workflow_scripts.data.generated.task_generator import (KIND_MODULES, TASK_KINDS, generate_task,
                                                           generate_task_annotated, modules_for_kind)

REPO_ROOT = Path(__file__).resolve().parents[2]
# The project's default sizes (params.yaml: data.generated_sizes).
DEFAULT_SIZES = {
    "paraphrase": {"train": 1000, "validation": 300, "test": 300},
    "acceptability": {"train": 1000, "validation": 300, "test": 300},
    "entailment": {"train": 800, "validation": 250, "test": 250},
    "coreference": {"train": 300, "validation": 70, "test": 70},
}
TEXT_COLUMNS = {
    "paraphrase": ("sentence1", "sentence2"),
    "acceptability": ("sentence",),
    "entailment": ("sentence1", "sentence2"),
    "coreference": ("sentence1", "sentence2"),
}
# GLUE's share of label 1 in each mirrored task: MRPC 68% equivalent, CoLA 70% acceptable, RTE and WNLI about half.
LABEL_ONE_SHARE = {"paraphrase": 0.68, "acceptability": 0.70, "entailment": 0.50, "coreference": 0.50}

_cache: dict = {}


def default_task(kind: str) -> dict[str, list[dict]]:
    if kind not in _cache:
        _cache[kind] = generate_task(kind, 0, DEFAULT_SIZES[kind])
    return _cache[kind]


def record_texts(kind: str, record: dict) -> tuple[str, ...]:
    return tuple(record[column] for column in TEXT_COLUMNS[kind])


@pytest.mark.parametrize("kind", TASK_KINDS)
def test_schema_and_labels(kind):
    splits = default_task(kind)
    assert list(splits) == list(DEFAULT_SIZES[kind])
    for split, records in splits.items():
        assert len(records) == DEFAULT_SIZES[kind][split]
        for position, record in enumerate(records):
            assert set(record) == {*TEXT_COLUMNS[kind], "label", "idx"}
            assert record["idx"] == position
            assert record["label"] in (0, 1) and type(record["label"]) is int
            for text in record_texts(kind, record):
                assert isinstance(text, str) and text[0].isupper() and text.endswith(".")
                assert "  " not in text and " ," not in text and "None" not in text


@pytest.mark.parametrize("kind", TASK_KINDS)
def test_label_ratios_follow_glue(kind):
    for records in default_task(kind).values():
        share = sum(r["label"] for r in records) / len(records)
        assert abs(share - LABEL_ONE_SHARE[kind]) < 0.01


@pytest.mark.parametrize("kind", TASK_KINDS)
def test_no_duplicates_within_or_across_splits(kind):
    splits = default_task(kind)
    for records in splits.values():
        assert len({record_texts(kind, r) for r in records}) == len(records)
    # WNLI-style hypotheses ("The suitcase was too small.") may recur; premises may not.
    columns = ("sentence1",) if kind == "coreference" else TEXT_COLUMNS[kind]
    texts_by_split = {split: {r[c] for r in records for c in columns} for split, records in splits.items()}
    names = list(texts_by_split)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            assert not texts_by_split[first] & texts_by_split[second], (first, second)


@pytest.mark.parametrize("kind", TASK_KINDS)
def test_same_seed_same_data_and_other_seed_other_data(kind):
    sizes = {"train": 60, "validation": 20}
    assert generate_task(kind, 3, sizes) == generate_task(kind, 3, sizes)
    assert generate_task(kind, 3, sizes)["train"] != generate_task(kind, 4, sizes)["train"]


def test_same_output_in_a_process_with_another_hash_seed():
    sizes = {"train": 50, "validation": 10}
    script = (
        "import json; from workflow_scripts.data.generated.task_generator import TASK_KINDS, generate_task; "
        f"print(json.dumps({{k: generate_task(k, 7, {sizes!r}) for k in TASK_KINDS}}, sort_keys=True))"
    )
    here = json.dumps({k: generate_task(k, 7, sizes) for k in TASK_KINDS}, sort_keys=True)
    for hash_seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        there = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, check=True,
                               capture_output=True, text=True).stdout.strip()
        assert there == here


def test_every_phenomenon_occurs():
    # Each kind mixes several phenomena; a silently failing builder would drop one from the mix.
    for kind in TASK_KINDS:
        counts = Counter(r["phenomenon"] for r in generate_task_annotated(kind, 0, {"train": 400})["train"])
        assert len(counts) >= (2 if kind == "coreference" else 8 if kind != "paraphrase" else 12)


def test_zero_sized_split_is_empty():
    assert generate_task("paraphrase", 0, {"train": 5, "test": 0})["test"] == []


@pytest.mark.parametrize("kind, sizes, message", [
    ("sentiment", {"train": 10}, "unknown task kind"),
    ("paraphrase", {"train": -1}, "non-negative"),
    ("acceptability", {"train": 2.5}, "non-negative integer"),
    ("coreference", {"train": 10**7}, "without duplicates"),
])
def test_bad_arguments_raise(kind, sizes, message):
    with pytest.raises(ValueError, match=message):
        generate_task(kind, 0, sizes)


# The generator is split by task (data/generated/{paraphrase,acceptability,entailment,coreference}.py over the shared
# grammar, english and lexicon modules); a pipeline rule lists modules_for_kind(kind)'s files as its code inputs.
GENERATED_PACKAGE = "workflow_scripts.data.generated"
DRIVER_MODULE = f"{GENERATED_PACKAGE}.task_generator"
TASK_MODULES = {kind: f"{GENERATED_PACKAGE}.{kind}" for kind in TASK_KINDS}
LOADED_MODULES_SCRIPT = """
import json, sys
def loaded():
    return sorted(name for name in sys.modules if name.startswith("workflow_scripts.data.generated."))
import {task_module}
alone = loaded()
from workflow_scripts.data.generated.task_generator import generate_task
generate_task({kind!r}, 0, {{"train": 30, "test": 10}})
print(json.dumps({{"alone": alone, "generating": loaded()}}))
"""


@pytest.mark.parametrize("kind", TASK_KINDS)
def test_task_module_imports_alone_and_modules_for_kind_is_exact(kind):
    needed = modules_for_kind(kind)
    assert len(set(needed)) == len(needed) and DRIVER_MODULE in needed and TASK_MODULES[kind] in needed
    for name in needed:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin and Path(spec.origin).is_file(), name
    # No kind runs another kind's task code (paraphrase does not need acceptability, ...).
    assert not {TASK_MODULES[other] for other in TASK_KINDS if other != kind} & set(needed)
    # A fresh process: the task module imports on its own, and generating the kind loads exactly modules_for_kind.
    script = LOADED_MODULES_SCRIPT.format(task_module=TASK_MODULES[kind], kind=kind)
    loaded = json.loads(subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, check=True,
                                       capture_output=True, text=True).stdout)
    assert set(loaded["alone"]) == set(needed) - {DRIVER_MODULE}
    assert set(loaded["generating"]) == set(needed)


def test_every_generator_module_is_needed_by_some_kind():
    package_dir = Path(importlib.util.find_spec(GENERATED_PACKAGE).origin).parent
    on_disk = {f"{GENERATED_PACKAGE}.{path.stem}" for path in package_dir.glob("*.py") if path.stem != "__init__"}
    assert on_disk == {name for kind in TASK_KINDS for name in modules_for_kind(kind)}
    assert set(KIND_MODULES) == set(TASK_KINDS)
    with pytest.raises(ValueError, match="unknown task kind"):
        modules_for_kind("sentiment")
