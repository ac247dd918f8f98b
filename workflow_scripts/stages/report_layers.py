"""Stage report_layers: what a layer-by-layer pruning chain did, layer by layer.

Reads the chain's checkpoints (initial model, each layer's prune and fine-tune outputs in processing order, the
final fine-tune) and writes:
- dev_by_layer.csv: the dev score after each layer's fine-tune (step 0 = before pruning, last row = after the
  final fine-tune), with heads pruned so far; dvc.yaml declares it as a plot (AUBER's per-layer figure).
- layerwise_metrics.json: heads pruned per layer (original ids) and in total (the budget the competitors get),
  mini-dev scores before/after each layer's search, search time and reward-cache hit rate, parameters and
  encoder FLOPs before and after, dev scores before and after. Declared as DVC metrics.
The logic is workflow_scripts.reports.layers. The dev split is only reported here; nothing in the chain selects on
it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage
from workflow_scripts.reports.layers import layer_report
from workflow_scripts.reports.render import csv_text, write_outputs


@dataclass
class LayerReportPaths:
    """The chain's checkpoints and the two outputs."""
    data: str = field(metadata={"help": "tokenized task folder"})
    initial: str = field(metadata={"help": "checkpoint the chain starts from"})
    pruned: list[str] = field(metadata={"help": "prune_layer outputs, in processing order"})
    finetuned: list[str] = field(metadata={"help": "finetune_layer outputs, same order"})
    final: str = field(metadata={"help": "the final fine-tune's checkpoint"})
    output_plot: str = field(metadata={"help": "dev_by_layer.csv to write"})
    output_metrics: str = field(metadata={"help": "layerwise_metrics.json to write"})


@dataclass
class DevScoring:
    """How the dev split is scored (params.yaml: evaluate)."""
    batch_size: int = field(metadata={"help": "examples per forward pass (evaluate.batch_size)"})


def check(paths: LayerReportPaths, scoring: DevScoring, execution: Execution) -> str | None:
    if not paths.pruned or len(paths.pruned) != len(paths.finetuned):
        return "--pruned and --finetuned must list the same layers (at least one)"
    return None


def main(argv=None) -> None:
    paths, scoring, execution = parse_stage_args(__doc__, [LayerReportPaths, DevScoring, Execution], argv,
                                                 check=check)
    _, device = start_stage(execution, paths, scoring)
    table, summary = layer_report(paths.data, paths.initial, paths.pruned, paths.finetuned, paths.final,
                                  scoring.batch_size, device)
    write_outputs({paths.output_plot: csv_text(table), paths.output_metrics: summary})


if __name__ == "__main__":
    main()
