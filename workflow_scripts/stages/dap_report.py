"""Stage dap_report: seed 004's table for one task and ratio (workflow_scripts/reports/dap.py): FLOPs, measured CPU
speed-up, dev metric and % change of every pruned model against the unpruned one, what each search did, and a
figure of each search's target and soft FLOPs ratio."""
from __future__ import annotations

from dataclasses import dataclass, field

from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage
from workflow_scripts.reports.dap import dap_report
from workflow_scripts.reports.model_table import CostConfig
from workflow_scripts.reports.render import write_outputs


@dataclass
class Paths:
    base: str = field(metadata={"help": "evaluate metrics of the unpruned fine-tuned model"})
    metrics: list[str] = field(metadata={"help": "evaluate metrics of the pruned models"})
    searches: list[str] = field(metadata={"help": "dap_search output folders (search.json)"})
    output_md: str = field(metadata={"help": "the report (markdown)"})
    output_csv: str = field(metadata={"help": "the table (CSV)"})
    plots: list[str] = field(metadata={"help": "the searches' figure, as .png and/or .svg"})


def main(argv=None) -> None:
    paths, cost, execution = parse_stage_args(__doc__, [Paths, CostConfig, Execution], argv)
    start_stage(execution, paths, cost)
    write_outputs(dap_report(paths.base, paths.metrics, paths.searches, cost, paths.output_md, paths.output_csv,
                             paths.plots))


if __name__ == "__main__":
    main()
