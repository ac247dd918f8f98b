"""Stage model_table: one table of every model the pipeline produces, side by side: the task's headline metric
on dev (from the evaluate stage's metrics JSON), parameters (total and encoder), FLOPs per sequence, and CPU
latency at batch 1 and batch 32.

    python -m workflow_scripts.stages.model_table \
        --metrics models/*/*/evaluate/metrics.json models/*/*/seed_*/evaluate/metrics.json \
        --seq-len 128 --latency-threads 1 --latency-warmup 2 --latency-repeats 5 \
        --output-md results/model_table.md --output-csv results/model_table.csv \
        --output-json results/model_table_metrics.json --output-html results/model_table.html

All models are measured one after the other in this one process, on CPU whatever --device says, so that their
latencies compare side by side. The logic (which models, how they are measured, the table) is
workflow_scripts.reports.model_table.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage
from workflow_scripts.reports.model_table import CostConfig, measure_all, model_table_report, table_rows
from workflow_scripts.reports.render import write_outputs


@dataclass
class ModelTablePaths:
    """The models to measure and the outputs to write (at least one)."""
    metrics: list[str] = field(metadata={"help": "metrics JSONs written by the evaluate stage"})
    pretrained: list[str] = field(default_factory=list, metadata={
        "help": "distilled Bort student folders (kd_pretrain outputs with their metrics.json)"})
    output_md: str | None = field(default=None, metadata={"help": "markdown table to write"})
    output_csv: str | None = field(default=None, metadata={"help": "CSV table to write"})
    output_json: str | None = field(default=None, metadata={"help": "DVC metrics JSON to write"})
    output_html: str | None = field(default=None, metadata={"help": "the table as a page"})


def check(paths: ModelTablePaths, cost: CostConfig, execution: Execution) -> str | None:
    if not (paths.output_md or paths.output_csv or paths.output_json or paths.output_html):
        return "nothing to write: give at least one of --output-md, --output-csv, --output-json, --output-html"
    try:
        table_rows(paths.metrics, paths.pretrained)  # every checkpoint folder exists, before anything is measured
    except (FileNotFoundError, ValueError) as error:
        return str(error)
    return None


def main(argv=None) -> None:
    paths, cost, execution = parse_stage_args(__doc__, [ModelTablePaths, CostConfig, Execution], argv, check=check)
    start_stage(execution, paths, cost)
    rows = measure_all(table_rows(paths.metrics, paths.pretrained), cost)
    write_outputs(model_table_report(rows, cost, markdown_path=paths.output_md, csv_path=paths.output_csv,
                                     json_path=paths.output_json, html_path=paths.output_html))


if __name__ == "__main__":
    main()
