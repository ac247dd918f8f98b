"""Four small English classification tasks in GLUE's schema, generated deterministically from a seed.

They mirror the four GLUE tasks of the AUBER paper, so the pipeline can run end to end without downloading GLUE,
while a pretrained model's knowledge of English (synonyms, hypernyms, irregular verbs, world knowledge) still
matters. Sentences are built from templates and the word lists in `lexicon`.

    from workflow_scripts.data.generated.task_generator import generate_task
    splits = generate_task("paraphrase", seed=0, split_sizes={"train": 1000, "validation": 300, "test": 300})
    splits["train"][0]  # {"sentence1": ..., "sentence2": ..., "label": 1, "idx": 0}

| kind            | mirrors | columns                          | labels                                        |
|-----------------|---------|----------------------------------|-----------------------------------------------|
| `paraphrase`    | MRPC    | sentence1, sentence2, label, idx | 1 = equivalent (68%), 0 = not_equivalent      |
| `acceptability` | CoLA    | sentence, label, idx             | 1 = acceptable (70%), 0 = unacceptable        |
| `entailment`    | RTE     | sentence1, sentence2, label, idx | 0 = entailment (50%), 1 = not_entailment      |
| `coreference`   | WNLI    | sentence1, sentence2, label, idx | 1 = entailment (50%), 0 = not_entailment      |

Each example comes from one phenomenon, drawn with the weights in `_SPEC_BUILDERS` below (easy and hard ones mixed,
so a fine-tuned small model stays well below perfect). `generate_task_annotated` returns the phenomenon with each
record. The phenomena themselves, and what each looks like, are described in the task's own module:

| kind            | module          | also runs                    |
|-----------------|-----------------|------------------------------|
| `paraphrase`    | `paraphrase`    | `grammar`, `english`         |
| `acceptability` | `acceptability` | `english`                    |
| `entailment`    | `entailment`    | `grammar`, `english`         |
| `coreference`   | `coreference`   | (only `lexicon`)             |

`grammar` holds the events, styles and rewrites that paraphrase and entailment share; `english` the small helpers
(articles, sentence case, names); every kind reads `lexicon` and runs this module, the driver. A task's module is
imported only when that kind is first generated, so `modules_for_kind(kind)` (from `KIND_MODULES`) lists exactly the
modules whose code generating the kind runs: a pipeline rule lists their files as its code inputs, and editing one
task's code reruns only that task's jobs.

Guarantees: the same (kind, seed, split_sizes) gives identical records in every process (one `random.Random` per
split, seeded from a string; no set or hash order is ever iterated); labels follow the ratios above exactly (up to
rounding); no sentence appears in two splits (for coreference: no sentence1, since short hypotheses such as "The
suitcase was too small." recur, as in WNLI); no record repeats within a split; `idx` counts from 0 in each split.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

TASK_KINDS: tuple[str, ...] = ("paraphrase", "acceptability", "entailment", "coreference")

# Draws per example before giving up: a task whose sentence space is nearly used up fails loudly, not slowly.
_MAX_ATTEMPTS_PER_EXAMPLE = 400

# ---------------------------------------------------------------------------------------------------------------
# Which modules each kind runs
# ---------------------------------------------------------------------------------------------------------------

_PACKAGE = "workflow_scripts.data.generated"
_DRIVER = f"{_PACKAGE}.task_generator"  # this module (spelled out: __name__ is "__main__" when run as a script)

# The modules of the package a kind's generation runs besides this driver: its task module, then what that imports
# (tests/data/test_task_generator.py checks this against the modules a fresh process has loaded after generating).
KIND_MODULES: dict[str, list[str]] = {
    "paraphrase": [f"{_PACKAGE}.paraphrase", f"{_PACKAGE}.grammar", f"{_PACKAGE}.english", f"{_PACKAGE}.lexicon"],
    "acceptability": [f"{_PACKAGE}.acceptability", f"{_PACKAGE}.english", f"{_PACKAGE}.lexicon"],
    "entailment": [f"{_PACKAGE}.entailment", f"{_PACKAGE}.grammar", f"{_PACKAGE}.english", f"{_PACKAGE}.lexicon"],
    "coreference": [f"{_PACKAGE}.coreference", f"{_PACKAGE}.lexicon"],
}


def modules_for_kind(kind: str) -> list[str]:
    """Every `workflow_scripts.data.generated.*` module whose code runs when `kind` is generated: this driver, the
    kind's task module, and the shared modules that one imports (`grammar`, `english`, `lexicon`)."""
    if kind not in KIND_MODULES:
        raise ValueError(f"unknown task kind {kind!r}; expected one of {', '.join(TASK_KINDS)}")
    return [_DRIVER, *KIND_MODULES[kind]]


# ---------------------------------------------------------------------------------------------------------------
# The tasks: columns, label convention, and phenomena with their weights
# ---------------------------------------------------------------------------------------------------------------

Builder = Callable[[random.Random], "tuple[str, ...] | None"]


@dataclass(frozen=True)
class _TaskSpec:
    columns: tuple[str, ...]   # text columns, in GLUE's order
    holds_label: int           # the label when the relation holds (equivalent / acceptable / entailed / correct)
    holds_share: float         # share of examples where it holds, as in the GLUE task
    max_total: int             # the most examples over all splits that stay clear of duplicates
    holds: tuple[tuple[str, float, Builder], ...]
    fails: tuple[tuple[str, float, Builder], ...]
    unique_column: str | None = None  # for cross-split checks, only this column (None: every text column)


# One function per kind; each imports its task module when called, so generating one kind runs no other kind's code.

def _paraphrase_spec() -> _TaskSpec:
    from .paraphrase import paraphrase_negative, paraphrase_positive

    return _TaskSpec(
        columns=("sentence1", "sentence2"), holds_label=1, holds_share=0.68, max_total=60_000,
        holds=(
            ("synonym", 2.0, paraphrase_positive("synonym")),
            ("passive", 1.5, paraphrase_positive("passive")),
            ("converse", 1.5, paraphrase_positive("converse")),
            ("dative", 0.7, paraphrase_positive("dative")),
            ("reorder", 1.0, paraphrase_positive("reorder")),
            ("combined", 2.0, paraphrase_positive("combined")),
        ),
        fails=(
            ("role_swap", 2.0, paraphrase_negative("role_swap")),
            ("number_change", 1.0, paraphrase_negative("number_change")),
            ("place_or_day", 1.0, paraphrase_negative("place_or_day")),
            ("antonym", 1.0, paraphrase_negative("antonym")),
            ("negation", 0.7, paraphrase_negative("negation")),
            ("near_synonym", 2.0, paraphrase_negative("near_synonym")),
            ("denial", 0.5, paraphrase_negative("denial")),
        ),
    )


def _acceptability_spec() -> _TaskSpec:
    from .acceptability import acceptability_builder

    return _TaskSpec(
        columns=("sentence",), holds_label=1, holds_share=0.70, max_total=60_000,
        holds=(("grammatical", 1.0, acceptability_builder(None)),),
        fails=(
            ("agreement", 1.0, acceptability_builder("agreement")),
            ("agreement_attractor", 0.6, acceptability_builder("agreement_attractor")),
            ("determiner_number", 1.0, acceptability_builder("determiner_number")),
            ("intransitive_object", 1.5, acceptability_builder("intransitive_object")),
            ("missing_argument", 1.5, acceptability_builder("missing_argument")),
            ("participle_form", 1.0, acceptability_builder("participle_form")),
            ("word_order", 1.5, acceptability_builder("word_order")),
            ("pronoun_case", 1.0, acceptability_builder("pronoun_case")),
        ),
    )


def _entailment_spec() -> _TaskSpec:
    from .entailment import (entailment_appositive, entailment_conjunction, entailment_drop_modifier,
                             entailment_hypernym, entailment_hyponym, entailment_implicative, entailment_monotone,
                             entailment_near_synonym, entailment_negation, entailment_quantity, entailment_rewrite,
                             entailment_role_swap, entailment_unsupported_modifier)

    return _TaskSpec(
        columns=("sentence1", "sentence2"), holds_label=0, holds_share=0.50, max_total=60_000,
        holds=(
            ("hypernym", 1.5, entailment_hypernym),
            ("drop_modifier", 1.5, entailment_drop_modifier),
            ("passive_or_converse", 1.0, entailment_rewrite),
            ("conjunction", 1.5, entailment_conjunction(True)),
            ("appositive", 0.8, entailment_appositive(True)),
            ("implicative", 0.6, entailment_implicative(True)),
            ("downward_monotone", 0.3, entailment_monotone(True)),
        ),
        fails=(
            ("hyponym", 1.2, entailment_hyponym),
            ("role_swap", 1.2, entailment_role_swap),
            ("negation", 1.5, entailment_negation),
            ("unsupported_modifier", 1.5, entailment_unsupported_modifier),
            ("quantity_change", 1.2, entailment_quantity),
            ("non_implicative", 0.6, entailment_implicative(False)),
            ("appositive_mismatch", 0.8, entailment_appositive(False)),
            ("disjunction", 0.4, entailment_conjunction(False)),
            ("upward_under_negation", 0.4, entailment_monotone(False)),
            ("near_synonym", 0.6, entailment_near_synonym),
        ),
    )


def _coreference_spec() -> _TaskSpec:
    from .coreference import coreference_builder

    return _TaskSpec(
        columns=("sentence1", "sentence2"), holds_label=1, holds_share=0.50, max_total=20_000,
        holds=(("people", 2.0, coreference_builder("people", True)),
               ("objects", 1.0, coreference_builder("objects", True))),
        fails=(("people", 2.0, coreference_builder("people", False)),
               ("objects", 1.0, coreference_builder("objects", False))),
        unique_column="sentence1",
    )


_SPEC_BUILDERS: dict[str, Callable[[], _TaskSpec]] = {
    "paraphrase": _paraphrase_spec, "acceptability": _acceptability_spec,
    "entailment": _entailment_spec, "coreference": _coreference_spec,
}


@lru_cache(maxsize=None)
def _task_spec(kind: str) -> _TaskSpec:
    return _SPEC_BUILDERS[kind]()


# ---------------------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------------------


def generate_task(kind: str, seed: int, split_sizes: dict[str, int]) -> dict[str, list[dict]]:
    """split_sizes like {"train": 1000, "validation": 300, "test": 300}; returns the same keys -> list of records.

    Records have GLUE's columns for the kind (see the module docstring) and an `idx` counting from 0 per split.
    """
    annotated = generate_task_annotated(kind, seed, split_sizes)
    return {split: [{k: v for k, v in r.items() if k != "phenomenon"} for r in records]
            for split, records in annotated.items()}


def generate_task_annotated(kind: str, seed: int, split_sizes: dict[str, int]) -> dict[str, list[dict]]:
    """Like `generate_task`, with each record's phenomenon under "phenomenon" (for error analysis)."""
    spec = _validated_spec(kind, split_sizes)
    split_of_text: dict[str, str] = {}  # every text used so far -> the split that used it
    output = {}
    for split, size in split_sizes.items():
        # A string seed is hashed with SHA-512 by `random`, so it does not depend on PYTHONHASHSEED.
        rng = random.Random(f"{kind}/{seed}/{split}")
        output[split] = _generate_split(rng, spec, kind, split, size, split_of_text)
    return output


def _validated_spec(kind: str, split_sizes: dict[str, int]) -> _TaskSpec:
    if kind not in _SPEC_BUILDERS:
        raise ValueError(f"unknown task kind {kind!r}; expected one of {', '.join(TASK_KINDS)}")
    for split, size in split_sizes.items():
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"split size for {split!r} must be a non-negative integer, got {size!r}")
    spec = _task_spec(kind)
    total = sum(split_sizes.values())
    if total > spec.max_total:
        raise ValueError(f"{kind}: {total} examples requested in all, but at most {spec.max_total} can be generated "
                         f"without duplicates; ask for fewer")
    return spec


def _label_schedule(rng: random.Random, spec: _TaskSpec, size: int) -> list[bool]:
    """Whether the relation holds, per example: exactly round(share * size) True, in random order."""
    holding = round(spec.holds_share * size)
    schedule = [True] * holding + [False] * (size - holding)
    rng.shuffle(schedule)
    return schedule


def _generate_split(rng: random.Random, spec: _TaskSpec, kind: str, split: str, size: int,
                    split_of_text: dict[str, str]) -> list[dict]:
    records: list[dict] = []
    seen_records: set[tuple[str, ...]] = set()  # membership only; never iterated
    for holds in _label_schedule(rng, spec, size):
        phenomena = spec.holds if holds else spec.fails
        for _ in range(_MAX_ATTEMPTS_PER_EXAMPLE):
            name, _, build = rng.choices(phenomena, weights=[w for _, w, _ in phenomena])[0]
            texts = build(rng)
            if texts is None or len(set(texts)) < len(texts) or texts in seen_records:
                continue
            checked = texts if spec.unique_column is None else (texts[spec.columns.index(spec.unique_column)],)
            if any(split_of_text.get(text, split) != split for text in checked):
                continue
            break
        else:
            raise ValueError(f"{kind}: could not fill split {split!r} with {size} distinct examples (stopped at "
                             f"{len(records)}); ask for fewer examples")
        seen_records.add(texts)
        for text in checked:
            split_of_text[text] = split
        label = spec.holds_label if holds else 1 - spec.holds_label
        records.append({**dict(zip(spec.columns, texts)), "label": label, "idx": len(records), "phenomenon": name})
    return records
