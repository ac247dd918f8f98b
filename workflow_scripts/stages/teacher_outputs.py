"""Stage teacher_outputs: T's outputs at the masked positions, computed once (models/bort/teacher_outputs).

    python -m workflow_scripts.stages.teacher_outputs --teacher models/bort/teacher --corpus data/corpus/tokenized \
        --output models/bort/teacher_outputs --top-k 64 --streams '[[32, 800]]' --temperatures '[1.0, 2.0]' ...

For each training stream [batch_size, steps] (one per batch size that FPTAS candidates and KD pretraining train
with; the streams are deterministic, so a run of fewer steps reads a prefix; [batch_size, steps, "sop"|"nsp"] is the
sentence-pair stream of a KD run with a sentence objective) and for the held-out split: at every
masked position, the ids and logits of T's top k and, per temperature, the log-sum-exp of all logits and of the
rest (workflow_scripts/bort/teacher_outputs.py). Writes stream_b<batch>.safetensors, heldout.safetensors and
teacher_outputs.json (the streams, the mean tail mass per temperature, the time taken).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from workflow_scripts.bort.teacher_outputs import (HELDOUT_FILE, TeacherOutputsConfig, compute_teacher_outputs,
                                                   save_teacher_outputs, stream_info, tail_mass)
from workflow_scripts.core.io_utils import verified
from workflow_scripts.data.corpus import load_corpus
from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage


@dataclass
class TeacherOutputsPaths:
    """What the stage reads and writes."""
    teacher: str = field(metadata={"help": "masked-LM folder written by teacher_prep"})
    corpus: str = field(metadata={"help": "folder written by prepare_corpus"})
    output: str = field(metadata={"help": "folder to write"})


def main(argv=None) -> None:
    paths, config, execution = parse_stage_args(__doc__, [TeacherOutputsPaths, TeacherOutputsConfig, Execution],
                                                argv)
    logger, device = start_stage(execution, paths, config)
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    started = time.perf_counter()
    teacher = AutoModelForMaskedLM.from_pretrained(verified(paths.teacher))
    tokenizer = AutoTokenizer.from_pretrained(paths.teacher)
    train_blocks, heldout_blocks, _ = load_corpus(paths.corpus)
    files = compute_teacher_outputs(teacher, train_blocks, heldout_blocks, tokenizer, config, device, logger)
    info = {"top_k": config.top_k, "vocab_size": teacher.config.vocab_size, "temperatures": config.temperatures,
            "streams": stream_info(config, files), "heldout_positions": len(files[HELDOUT_FILE]["targets"]),
            "mean_tail_mass": {name: tail_mass(tensors, config.temperatures) for name, tensors in files.items()},
            "seconds": round(time.perf_counter() - started, 1)}
    save_teacher_outputs(paths.output, files, info)
    logger.info("wrote %s: %s", paths.output, info)


if __name__ == "__main__":
    main()
