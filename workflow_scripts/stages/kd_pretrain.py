"""Stage kd_pretrain: pretrain the architecture the FPTAS chose, by distillation from T (or by MLM alone).

    python -m workflow_scripts.stages.kd_pretrain --objective kd --teacher models/bort/teacher --corpus data/corpus/tokenized \
        --selection results/bort/fptas/selection.json --output models/bort/pretrain/kd --curve curve.csv ...
    python -m torch.distributed.run --standalone --nproc_per_node 8 -m workflow_scripts.stages.kd_pretrain ...   # DDP

Objective `kd`: mlm_weight * CE_MLM + teacher_weight * tau^2 * KL(T || student) at temperature tau, on masked
positions (bort.distillation_loss), T's outputs read from --teacher-outputs (T runs on every batch without it).
Objective `mlm`: the masked-LM loss alone, the self-supervised alternative.
The student starts from random initialization (workflow_scripts/bort/pretrain.py). With --stacking
'{"stages": k, "switch_steps": [...]}' it starts with depth / 2^k layers and doubles its encoder after each switch
step (progressive stacking, workflow_scripts/bort/stacking.py); stages 0 trains the full depth throughout.
With --sentence-objective sop (ALBERT's sentence order) or nsp (BERT's next sentence) and --sentence-weight w the
batches are sentence pairs, the student has a binary head on [CLS], w * the pairs' cross-entropy is added to the
loss, and the curve gains the held-out pair accuracy (sop_accuracy or nsp_accuracy); none: plain blocks.

Checkpoints go to <output>.checkpoints/step_NNNNNNN every --checkpoint-every-steps steps (Hugging Face folders,
openable with `python -m workflow_scripts.tools.inspect`, plus trainer_state.pt); a killed run started again with
the same inputs, code and hyperparameters resumes from the newest one and continues with exactly the batches it
would have seen. At the end the final model is written to --output with the checkpoints moved inside it
(checkpoints/), and the held-out MLM accuracy curve to --curve.

Under torchrun each of the WORLD_SIZE processes takes an equal slice of every global batch (--batch-size is the
global batch); the loss is normalized by the global number of masked positions, so averaging gradients over
ranks gives the single-process gradient. Only rank 0 evaluates and writes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from workflow_scripts.bort.pretrain import PretrainConfig, pretrain, write_pretrained
from workflow_scripts.core.training import distributed_setup
from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage


@dataclass
class PretrainPaths:
    """What the stage reads and writes."""
    teacher: str = field(metadata={"help": "masked-LM folder written by teacher_prep"})
    corpus: str = field(metadata={"help": "folder written by prepare_corpus"})
    selection: str = field(metadata={"help": "selection.json written by fptas_select"})
    output: str = field(metadata={"help": "model folder to write"})
    curve: str = field(metadata={"help": "CSV of held-out MLM accuracy against steps (DVC plot)"})
    teacher_outputs: str | None = field(default=None, metadata={
        "help": "folder written by teacher_outputs (T's cached outputs, objective kd); absent: T runs on every batch"})


def main(argv=None) -> None:
    paths, config, execution = parse_stage_args(__doc__, [PretrainPaths, PretrainConfig, Execution], argv)
    logger, device = start_stage(execution, paths, config)
    distributed = distributed_setup(device)
    run = pretrain(paths.teacher, paths.corpus, paths.selection, paths.output, config, distributed, logger,
                   teacher_outputs=paths.teacher_outputs)
    if distributed.rank == 0:
        write_pretrained(run, paths.output, paths.curve)
    distributed.close()


if __name__ == "__main__":
    main()
