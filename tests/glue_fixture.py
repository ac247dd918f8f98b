"""A local copy of (a sliver of) the hub's nyu-mll/glue repository: the same layout (<config>/<split>-*.parquet),
columns, dtypes and label names, with hidden test labels (-1) as GLUE has them."""
from __future__ import annotations

import random
from pathlib import Path

GLUE_SCHEMAS = {
    "mrpc": (("sentence1", "sentence2"), ["not_equivalent", "equivalent"]),
    "cola": (("sentence",), ["unacceptable", "acceptable"]),
    "rte": (("sentence1", "sentence2"), ["entailment", "not_entailment"]),
}
SUBJECTS = ["the farmer", "a teacher", "my sister", "the old dog", "our neighbour", "the pilot"]
VERBS = ["painted", "sold", "found", "repaired", "carried", "described"]
OBJECTS = ["the fence", "a red bicycle", "the kitchen table", "two boxes", "the small boat", "a letter"]


def _sentence(rng: random.Random) -> str:
    return f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} {rng.choice(OBJECTS)}."


def write_glue_fixture(root: Path, sizes=None, seed: int = 0) -> Path:
    import datasets

    sizes = sizes or {"train": 48, "validation": 16, "test": 16}
    rng = random.Random(seed)
    for config, (text_columns, label_names) in GLUE_SCHEMAS.items():
        features = datasets.Features({**{c: datasets.Value("string") for c in text_columns},
                                      "label": datasets.ClassLabel(names=label_names), "idx": datasets.Value("int32")})
        (root / config).mkdir(parents=True, exist_ok=True)
        for split, size in sizes.items():
            rows = {c: [_sentence(rng) for _ in range(size)] for c in text_columns}
            rows["label"] = [-1 if split == "test" else rng.randrange(2) for _ in range(size)]
            rows["idx"] = list(range(size))
            dataset = datasets.Dataset.from_dict(rows, features=features)
            dataset.to_parquet(str(root / config / f"{split}-00000-of-00001.parquet"))
    return root
