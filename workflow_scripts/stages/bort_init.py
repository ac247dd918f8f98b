"""Stage bort_init: the architecture Bort's FPTAS chose, at random initialization (models/bort/init).

    python -m workflow_scripts.stages.bort_init --teacher models/bort/teacher \
        --selection results/bort/fptas/selection.json --output models/bort/init --dropout 0.1 --seed 0

The student a pretraining run without stacking or a sentence head starts from (bort.distillation.build_student:
T's family, vocabulary and tokenizer, the candidate's <D, A, H, I>, the same seed), written before any training: TinyBERT's task distillation
starts from it for the ablation "No GD" (no general distillation). Writes a Hugging Face masked-LM folder and
init.json (the architecture and the seed).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from workflow_scripts.bort.distillation import build_student
from workflow_scripts.bort.fptas import Candidate
from workflow_scripts.core.io_utils import read_json
from workflow_scripts.core.models import save_checkpoint
from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage


@dataclass
class Paths:
    teacher: str = field(metadata={"help": "teacher_prep's masked-LM folder (T: family, vocabulary, tokenizer)"})
    selection: str = field(metadata={"help": "selection.json written by fptas_select"})
    output: str = field(metadata={"help": "model folder to write"})


@dataclass
class Initialization:
    dropout: float = field(metadata={"help": "dropout of the student (bort.pretrain.dropout)"})
    seed: int = field(metadata={"help": "seeds the initialization (as pretraining's)"})


def main(argv=None) -> None:
    paths, init, execution = parse_stage_args(__doc__, [Paths, Initialization, Execution], argv)
    logger, _ = start_stage(execution, paths, init)
    from transformers import AutoConfig, AutoTokenizer

    candidate = Candidate.from_tag(read_json(paths.selection)["chosen"]["tag"])
    student = build_student(AutoConfig.from_pretrained(paths.teacher), candidate, init.dropout, init.seed)
    save_checkpoint(student, AutoTokenizer.from_pretrained(paths.teacher), paths.output,
                    extra_json={"init.json": {"architecture": candidate.tag, "initialization": "random",
                                              "seed": init.seed}})
    logger.info("wrote %s (%s at random initialization)", paths.output, candidate.tag)


if __name__ == "__main__":
    main()
