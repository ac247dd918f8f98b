"""Stage augment_task: TinyBERT's data augmentation of a task's training split, for task distillation.

Each training example gets up to --variants-per-example variants in which every single-piece word is, with
probability --replace-probability, replaced by one of a masked LM's top --top-k predictions (TinyBERT's procedure;
multi-piece words are kept instead of TinyBERT's GloVe neighbours, which are not available offline). Variants equal
to a source or to each other are dropped. A variant carries its source's label, which distillation never reads (the
teacher gives the targets). Writes a raw task folder like prepare_task's (train = sources + variants; the other
splits unchanged), which tokenize_task then tokenizes. The masked LM is Bort's teacher T by default.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field

import numpy as np

from workflow_scripts.agora.psi import MaskedLMPsi, deduplicate
from workflow_scripts.core.io_utils import atomic_output_dir, read_json, write_json
from workflow_scripts.data.tasks import TRAIN
from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage


@dataclass
class Paths:
    raw: str = field(metadata={"help": "the task's raw folder (prepare_task)"})
    masked_lm: str = field(metadata={"help": "a masked-LM checkpoint folder with its tokenizer"})
    output: str = field(metadata={"help": "the augmented raw folder"})


@dataclass
class Augmentation:
    variants_per_example: int = field(metadata={"help": "variants made from each training example (TinyBERT: 20)"})
    replace_probability: float = field(metadata={"help": "TinyBERT's p_t: chance that a word is replaced"})
    top_k: int = field(metadata={"help": "TinyBERT's K: candidates a replacement is drawn from"})
    seed: int = field(metadata={"help": "seeds which words are replaced and by which candidate"})


def _read_rows(path: str) -> list[dict]:
    with open(path) as handle:
        return [json.loads(line) for line in handle]


def main(argv=None) -> None:
    paths, augmentation, execution = parse_stage_args(__doc__, [Paths, Augmentation, Execution], argv)
    logger, device = start_stage(execution, paths, augmentation)
    spec = read_json(os.path.join(paths.raw, "task.json"))
    text_columns = tuple(spec["text_columns"])
    sources = _read_rows(os.path.join(paths.raw, f"{TRAIN}.jsonl"))
    psi = MaskedLMPsi(paths.masked_lm, augmentation.replace_probability, augmentation.top_k, device=device)
    variants = psi.transform(sources, text_columns, augmentation.variants_per_example,
                             np.random.default_rng(augmentation.seed))
    variants = deduplicate(variants, sources, text_columns)
    label_of = {row["idx"]: row["label"] for row in sources}
    # the same columns as the sources' (one schema per file): psi's source_idx becomes the variant's label only
    augmented = [*sources, *({**{k: v for k, v in variant.items() if k != "source_idx"},
                              "idx": len(sources) + position, "label": label_of[variant["source_idx"]]}
                             for position, variant in enumerate(variants))]
    with atomic_output_dir(paths.output) as staging:
        for split in spec["split_sizes"]:
            if split != TRAIN:
                shutil.copy(os.path.join(paths.raw, f"{split}.jsonl"), os.path.join(staging, f"{split}.jsonl"))
        with open(os.path.join(staging, f"{TRAIN}.jsonl"), "w") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in augmented)
        write_json(os.path.join(staging, "task.json"), {
            **spec, "split_sizes": {**spec["split_sizes"], TRAIN: len(augmented)},
            "augmentation": {"sources": len(sources), "variants": len(variants), "masked_lm": paths.masked_lm}})
    logger.info("%d training examples -> %d (%d variants, %.1f per example)", len(sources), len(augmented),
                len(variants), len(variants) / max(1, len(sources)))


if __name__ == "__main__":
    main()
