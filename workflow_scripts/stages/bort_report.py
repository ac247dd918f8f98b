"""Stage bort_report: distillation against MLM-only pretraining of the chosen architecture (the seed's Table 3 and
Figure 1): held-out MLM accuracy and loss against steps and training seconds, the steps each objective needs to
reach what MLM-only pretraining ends with, the accuracies at equal wall time, and the baselines (T's accuracy, the
most-frequent-token rate). Each curve is named by its file (<run>_curve.csv): kd, mlm, or a variant of
bort.pretrain.variants (e.g. kd_stacked, progressive stacking) beside them.

    python -m workflow_scripts.stages.bort_report --curves results/bort/pretrain/kd_curve.csv \
        results/bort/pretrain/mlm_curve.csv --selection results/bort/fptas/selection.json --teacher models/bort/teacher \
        --output results/bort/pretrain/comparison.md --output-html results/bort/pretrain/comparison.html \
        --metrics results/bort/pretrain/comparison_metrics.json \
        --plots results/bort/pretrain/curves.png results/bort/pretrain/curves.svg

The logic is workflow_scripts.reports.bort.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from workflow_scripts.core.io_utils import read_json
from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage
from workflow_scripts.reports.bort import pretraining_report, read_curve
from workflow_scripts.reports.render import write_outputs


@dataclass
class PretrainingReportPaths:
    """The curves kd_pretrain wrote, the selection, and the report's outputs."""
    curves: list[str] = field(metadata={"help": "curve CSVs written by kd_pretrain"})
    selection: str = field(metadata={"help": "selection.json of fptas_select (names the architecture)"})
    teacher: str = field(metadata={"help": "teacher_prep's folder (teacher.json: T's accuracy, the unigram rate)"})
    output: str = field(metadata={"help": "markdown report"})
    metrics: str = field(metadata={"help": "JSON summary (DVC metrics)"})
    output_html: str = field(metadata={"help": "the report as a page, with the curves"})
    plots: list[str] = field(metadata={"help": "the curves' figure, as .png and/or .svg"})


def main(argv=None) -> None:
    paths, execution = parse_stage_args(__doc__, [PretrainingReportPaths, Execution], argv)
    logger, _ = start_stage(execution, paths)
    curves = dict(read_curve(path) for path in paths.curves)
    outputs = pretraining_report(curves, read_json(paths.selection)["chosen"]["tag"], paths.output,
                                 paths.output_html, paths.metrics, paths.plots,
                                 read_json(os.path.join(paths.teacher, "teacher.json")))
    write_outputs(outputs)
    logger.info("%s", outputs[paths.metrics])


if __name__ == "__main__":
    main()
