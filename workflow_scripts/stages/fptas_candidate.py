"""Stage fptas_candidate_train (and fptas_teacher_cost): one architecture of Bort's search, trained briefly and
measured.

    python -m workflow_scripts.stages.fptas_candidate --teacher models/bort/teacher --corpus data/corpus/tokenized \
        --architecture D2_A4_H128_I256 --output models/bort/fptas/candidates/D2_A4_H128_I256/metrics.json ...

The candidate starts from random initialization and is trained for --steps steps under each hyperparameter set
on the surrogate error, reading T's outputs from --teacher-outputs (or running T when it is absent); its surrogate
error is the lowest held-out value over the sets. Then it is measured:
parameters, FLOPs of one sequence, and the median latency of the encoder on one sequence of --seq-len tokens on
this job's threads (workflow_scripts/bort/candidate.py). With --teacher-only the same measurements are taken of
T itself (no training).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from workflow_scripts.bort.candidate import SearchConfig, measure
from workflow_scripts.core.io_utils import write_json
from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage


@dataclass
class CandidatePaths:
    """What the stage reads and writes, and which model it measures (exactly one of the last two)."""
    teacher: str = field(metadata={"help": "masked-LM folder written by teacher_prep"})
    corpus: str = field(metadata={"help": "folder written by prepare_corpus"})
    output: str = field(metadata={"help": "metrics.json to write"})
    teacher_outputs: str | None = field(default=None, metadata={
        "help": "folder written by teacher_outputs (T's cached outputs); absent: T runs on every batch"})
    architecture: str | None = field(default=None, metadata={
        "help": "D<depth>_A<heads>_H<hidden>_I<intermediate>, then ALBERT's options if any: _E<embedding size>, "
                "_S<all|attention|ffn>[<group size>] (bort/fptas.py Candidate.tag)"})
    teacher_only: bool = field(default=False, metadata={"help": "measure T itself"})


def _check(paths: CandidatePaths, *_) -> str | None:
    if (paths.architecture is None) == (not paths.teacher_only):
        return "give exactly one of --architecture and --teacher-only"
    return None


def main(argv=None) -> None:
    paths, config, execution = parse_stage_args(__doc__, [CandidatePaths, SearchConfig, Execution], argv,
                                                check=_check)
    logger, device = start_stage(execution, paths, config)
    metrics = measure(paths.teacher, paths.corpus, None if paths.teacher_only else paths.architecture, config,
                      execution.threads, device, logger, teacher_outputs=paths.teacher_outputs)
    write_json(paths.output, metrics)
    logger.info("%s: %d parameters, %.2f MFLOPs, %.2f ms, surrogate error %.4f", metrics["tag"], metrics["parameters"],
                metrics["flops"] / 1e6, metrics["latency_s"] * 1e3, metrics["surrogate_error"])


if __name__ == "__main__":
    main()
