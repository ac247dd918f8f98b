"""Stage tinybert_report: TinyBERT's ablation tables (seed 001, Tables 5-7) for the task distillation of the Bort
student, on dev and test, with the majority-class rates and what each run did (workflow_scripts/reports/tinybert.py).

    python -m workflow_scripts.stages.tinybert_report --metrics models/gen_cola/tinybert/evaluate/metrics.json \
        --stages models/gen_cola/tinybert/distill_intermediate models/gen_cola/tinybert/distill_prediction \
        --data data/gen_cola/tokenized --runs '{"tinybert": {"label": "TinyBERT", ...}}' \
        --output-md results/tinybert/main/report.md --output-csv results/tinybert/main/report.csv
"""
from __future__ import annotations

from dataclasses import dataclass, field

from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage
from workflow_scripts.reports.render import write_outputs
from workflow_scripts.reports.tinybert import majority_rates, tinybert_report


@dataclass
class Paths:
    metrics: list[str] = field(metadata={"help": "evaluate metrics of each run and task "
                                                 "(models/<task>/<method>/evaluate/metrics.json)"})
    stages: list[str] = field(metadata={"help": "the runs' distill_intermediate and distill_prediction folders"})
    data: list[str] = field(metadata={"help": "tokenized folder of each task (its majority-class rates)"})
    output_md: str = field(metadata={"help": "the report (markdown)"})
    output_csv: str = field(metadata={"help": "the table (CSV): one row per run and task"})


@dataclass
class Runs:
    runs: dict = field(metadata={"help": "every run's label, table and settings (pipeline.params."
                                         "tinybert_run_descriptions)"})


def main(argv=None) -> None:
    paths, runs, execution = parse_stage_args(__doc__, [Paths, Runs, Execution], argv)
    start_stage(execution, paths, runs)
    from workflow_scripts.data.tokenized import load_tokenized

    majority_by_task = {}
    for folder in paths.data:
        dataset_dict, task = load_tokenized(folder)
        majority_by_task[task["name"]] = majority_rates(dataset_dict, task)
    write_outputs(tinybert_report(runs.runs, paths.metrics, paths.stages, majority_by_task, paths.output_md,
                                  paths.output_csv))


if __name__ == "__main__":
    main()
