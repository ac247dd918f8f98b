"""Stage distill_task: one stage of TinyBERT-style task distillation of a student from the task's fine-tuned teacher.

--objective intermediate: embedding, hidden-state and attention-score MSEs (the student's classifier untouched);
--objective prediction: soft cross-entropy to the teacher's logits. Run one after the other they are the two-stage
distillation fine-tune of seed 004 (and TinyBERT's task distillation, of a pruned model or of Bort's student);
--objective labels: the gold labels' cross-entropy instead, the teacher unused (TinyBERT's ablations "No Pred" and
"No TD"). Trains on the task's training split; the dev split is never looked at. Writes the student's checkpoint
(pruned structure kept) and training_log.json.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from transformers import AutoTokenizer, DataCollatorWithPadding

from workflow_scripts.core.models import load_for_classification, save_checkpoint
from workflow_scripts.data.tasks import TRAIN
from workflow_scripts.data.tokenized import load_tokenized
from workflow_scripts.core.training import OptimizationConfig
from workflow_scripts.distill.task_distillation import OBJECTIVES, DistillLosses, distill
from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage


@dataclass
class Paths:
    student: str = field(metadata={"help": "checkpoint folder of the student (pruned or not)"})
    teacher: str = field(metadata={"help": "the task's fine-tuned teacher"})
    data: str = field(metadata={"help": "tokenized task folder"})
    output: str = field(metadata={"help": "folder for the distilled student"})


@dataclass
class Stage:
    objective: str = field(metadata={"choices": list(OBJECTIVES), "help": "which of the two stages"})
    attn_implementation: str = field(metadata={"choices": ["sdpa", "eager"], "help": "attention kernel"})


def main(argv=None) -> None:
    paths, stage, training, losses, execution = parse_stage_args(
        __doc__, [Paths, Stage, OptimizationConfig, DistillLosses, Execution], argv)
    logger, device = start_stage(execution, paths, stage, training, losses)
    dataset_dict, task = load_tokenized(paths.data)
    teacher = load_for_classification(paths.teacher, task["num_labels"], stage.attn_implementation)
    student = load_for_classification(paths.student, task["num_labels"], stage.attn_implementation)
    tokenizer = AutoTokenizer.from_pretrained(paths.student)
    history = distill(student, teacher, dataset_dict[TRAIN], DataCollatorWithPadding(tokenizer), stage.objective,
                      training, losses, device)
    logger.info("%s distillation: %d steps, loss %.4f -> %.4f", stage.objective, len(history.losses),
                history.losses[0], history.losses[-1])
    save_checkpoint(student.cpu(), tokenizer, paths.output, extra_json={"training_log.json": {
        "objective": stage.objective, "teacher": paths.teacher, "training": dataclasses.asdict(training),
        "losses_config": dataclasses.asdict(losses), "losses": history.losses,
        "loss_terms": history.step_details}})


if __name__ == "__main__":
    main()
