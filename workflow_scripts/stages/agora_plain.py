"""Stage finetune_plain: Agora's baseline at equal compute. The same student, with the same classification head,
fine-tuned plainly on the original training rows with the best single set of the grid (the best of Agora's
first round, where every set trained on the same data), for as many training examples as Agora's models saw
in all its rounds together, from the same seed. It is scored on the pick share after every epoch and keeps its
best epoch: the rule by which Agora picks the round it returns, on the same rows, and neither ever looks at dev
(workflow_scripts/agora/run.py).

Writes a Hugging Face folder and plain.json (the set, epochs, training examples, wall time, pick scores).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from workflow_scripts.agora.run import StudentConfig, check_student_config, plain_finetune
from workflow_scripts.core.models import save_checkpoint
from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage


@dataclass
class PlainPaths:
    """What the stage reads and writes."""
    student: str = field(metadata={"help": "checkpoint folder of the student (Timaeus)"})
    agora: str = field(metadata={"help": "agora_finetune output folder (its agora.json)"})
    raw: str = field(metadata={"help": "raw task folder (data/<task>/raw)"})
    output: str = field(metadata={"help": "folder for the fine-tuned checkpoint"})


def main(argv=None) -> None:
    paths, config, execution = parse_stage_args(
        __doc__, [PlainPaths, StudentConfig, Execution], argv,
        check=lambda paths, config, *_: check_student_config(config))
    logger, device = start_stage(execution, paths, config)
    model, tokenizer, record = plain_finetune(paths.student, paths.agora, paths.raw, config, logger, device)
    save_checkpoint(model.cpu(), tokenizer, paths.output, extra_json={"plain.json": record})
    logger.info("wrote %s: pick %s %.4f at step %s, %.0f s", paths.output, record["metric"],
                record["best_pick_score"], record["best_step"], record["seconds"])


if __name__ == "__main__":
    main()
