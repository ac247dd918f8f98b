"""Stage teacher_prep: the maximum point T of Bort's search as a masked-LM (models/bort/teacher).

Distillation needs T's output distribution over the vocabulary. A checkpoint with a masked-LM head keeps it; one
without (the embedded MiniLM) gets a fresh head tied to its word embeddings. Then --steps steps of masked-LM
training on the corpus' training split, of the whole model or of the head alone (workflow_scripts/bort/teacher.py).
Writes a Hugging Face masked-LM folder and teacher.json (which head, the losses, T's held-out masked-LM scores
before and after, and the most-frequent-token rate).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from workflow_scripts.bort.teacher import TeacherConfig, prepare_teacher
from workflow_scripts.core.models import save_checkpoint
from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage


@dataclass
class TeacherPaths:
    """What the stage reads and writes."""
    model: str = field(metadata={"help": "the base model folder (T)"})
    corpus: str = field(metadata={"help": "folder written by prepare_corpus"})
    output: str = field(metadata={"help": "masked-LM folder to write"})


def main(argv=None) -> None:
    paths, config, execution = parse_stage_args(__doc__, [TeacherPaths, TeacherConfig, Execution], argv)
    logger, device = start_stage(execution, paths, config)
    model, tokenizer, record = prepare_teacher(paths.model, paths.corpus, config, device, logger)
    save_checkpoint(model.cpu(), tokenizer, paths.output, extra_json={"teacher.json": record})
    logger.info("wrote %s", paths.output)


if __name__ == "__main__":
    main()
