"""Stage compare_methods: the comparison of AUBER, its competitors and its ablations, as the paper's Table 2/3.

Reads the unpruned model's evaluation per task and, per (task, method, seed), the chain's evaluation and
layerwise_metrics.json. Writes to --output-dir:
- table.csv: one row per (task, method, split): seeds, mean and standard deviation (ddof 1) of the task's metric,
  heads pruned, parameters after pruning.
- table.md: rows = the unpruned model, the competitors, AUBER, the ablations; columns = tasks; cells = metric
  in points, mean +- std over seeds (heads pruned); one table for dev (what the paper reports), one for test;
  then AUBER minus each other method, paired by seed (same splits), so a gain can be told from seed noise.
- comparison_metrics.json: the same numbers nested as task -> method -> value (DVC metrics: `dvc metrics diff`).
- plots/dev_by_layer_<task>_<method>.csv: dev score after each layer's fine-tune, mean over seeds (DVC plots).
- plots/heads_<task>_<method>_heatmap.csv: one row per pruned (layer, head) and seed (DVC's confusion template
  turns it into a layer x head heatmap of how often each head was pruned).
- plots/dev_by_layer_<task>.{png,svg}: every method's curve; plots/heads_<task>.{png,svg}: a heatmap per method.
- report.html: all of the above on one self-contained page (inline SVG, no scripts, no network).
The logic is workflow_scripts.reports.comparison. Nothing here selects anything: dev and test are only reported.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage
from workflow_scripts.reports.comparison import comparison_report, read_runs
from workflow_scripts.reports.render import write_outputs


@dataclass
class ComparisonPaths:
    """What the comparison reads and where it writes."""
    base: list[str] = field(metadata={"help": "evaluate metrics of the unpruned model, per task"})
    evaluations: list[str] = field(metadata={"help": "evaluate metrics of every chain"})
    layerwise: list[str] = field(metadata={"help": "layerwise_metrics.json of every chain, in the same order"})
    output_dir: str = field(metadata={"help": "folder for the tables, plots and page"})


def check(paths: ComparisonPaths, execution: Execution) -> str | None:
    if len(paths.evaluations) != len(paths.layerwise):
        return "--evaluations and --layerwise must list the same chains, in the same order"
    return None


def main(argv=None) -> None:
    paths, execution = parse_stage_args(__doc__, [ComparisonPaths, Execution], argv, check=check)
    logger, _ = start_stage(execution, paths)
    runs = read_runs(paths.base, paths.evaluations, paths.layerwise)
    write_outputs(comparison_report(runs, paths.output_dir))
    logger.info("wrote the comparison of %d runs to %s", len(runs), paths.output_dir)


if __name__ == "__main__":
    main()
