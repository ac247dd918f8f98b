"""Stage evaluate: metrics of a fine-tuned checkpoint on the task's dev split (and test, when it has labels).

Writes a metrics JSON that dvc.yaml declares as DVC metrics. Dev is the split the AUBER paper reports; no stage
ever selects anything on it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from workflow_scripts.core.evaluation import evaluate_checkpoint
from workflow_scripts.core.io_utils import write_json
from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage


@dataclass
class Paths:
    model: str = field(metadata={"help": "fine-tuned checkpoint folder"})
    data: str = field(metadata={"help": "tokenized task folder"})
    output: str = field(metadata={"help": "metrics JSON to write"})


@dataclass
class Scoring:
    batch_size: int = field(metadata={"help": "examples per forward pass (evaluate.batch_size)"})


def main(argv=None) -> None:
    paths, scoring, execution = parse_stage_args(__doc__, [Paths, Scoring, Execution], argv)
    logger, device = start_stage(execution, paths, scoring)
    write_json(paths.output, evaluate_checkpoint(paths.model, paths.data, scoring.batch_size, device, logger))


if __name__ == "__main__":
    main()
