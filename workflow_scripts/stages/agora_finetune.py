"""Stage agora_finetune: fine-tune a student with Agora (workflow_scripts/agora/loop.py: the loop and its documented
choices; workflow_scripts/agora/run.py: the run on files).

Inputs: a student checkpoint (default: the distilled Bort student; any folder the pipeline writes), a teacher
("Socrates", default: the task's initial fine-tune), the task, and the hyperparameter grid. Every finished round
is a folder under <output>.rounds/round_NN (moved into <output>/rounds at the end):
    round.json   scores of every set, the best, the sets removed and surviving, errors, points added, time
    added.jsonl  the teacher-labelled points added after the round (with the dev point each came from)
    model/       the round's best model
A round's folder appears whole or not at all, so a killed run started again with the same inputs, code and
hyperparameters resumes after the last finished round. The output folder holds the model returned (the round
model that scores best on the pick share, a held-out share of the training split nothing else reads) and
agora.json (which round was returned, every round's selection and pick scores, wall time, training examples).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from workflow_scripts.agora.run import AgoraConfig, StudentConfig, check_student_config, run_agora, write_agora
from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage


@dataclass
class AgoraPaths:
    """What the stage reads and writes."""
    student: str = field(metadata={"help": "checkpoint folder of the student (Timaeus)"})
    teacher: str = field(metadata={"help": "checkpoint folder of the teacher (Socrates)"})
    raw: str = field(metadata={"help": "raw task folder (data/<task>/raw): psi works on text"})
    output: str = field(metadata={"help": "folder for the best model, agora.json and the rounds"})


def main(argv=None) -> None:
    paths, student_config, agora_config, execution = parse_stage_args(
        __doc__, [AgoraPaths, StudentConfig, AgoraConfig, Execution], argv,
        check=lambda paths, student_config, *_: check_student_config(student_config))
    logger, device = start_stage(execution, paths, student_config, agora_config)
    run, rounds = run_agora(paths.student, paths.teacher, paths.raw, paths.output, student_config, agora_config,
                            logger, device)
    write_agora(run, rounds)


if __name__ == "__main__":
    main()
