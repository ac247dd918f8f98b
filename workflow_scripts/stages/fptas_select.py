"""Stage fptas_select: the FPTAS's choice among the trained candidates, its table and its plot.

Reads the metrics of T and of every trained candidate and reference architecture, computes each one's
W-coefficient against T (inference cost: measured latency, or FLOPs, by --inference-cost) and writes, under
--output-dir:
  selection.json             the chosen architecture (largest W among the candidates; references never win)
  table.md, table.csv        the seed's Table 1: top three by W, T and the references (W, parameters, latency)
  table.html                 the same table and the candidates' plot on one page
  candidates_scatter.csv     every candidate and reference (DVC plot: parameters against surrogate error)
  candidates.{png,svg}       surrogate error against parameters and against the inference cost, the chosen one marked
The logic is workflow_scripts.reports.bort.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from workflow_scripts.core.io_utils import read_json
from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage
from workflow_scripts.reports.bort import SelectionConfig, select, selection_report
from workflow_scripts.reports.render import write_outputs


@dataclass
class SelectionPaths:
    """The measured architectures and where the selection goes."""
    teacher: str = field(metadata={"help": "metrics.json of T (fptas_candidate --teacher-only)"})
    candidates: list[str] = field(metadata={"help": "metrics.json of each trained candidate"})
    output_dir: str = field(metadata={"help": "folder for selection.json, the tables and the plot"})
    references: list[str] = field(default_factory=list,
                                  metadata={"help": "metrics.json of each reference architecture"})


def check(paths: SelectionPaths, config: SelectionConfig, execution: Execution) -> str | None:
    return None if paths.candidates else "--candidates: at least one trained candidate"


def main(argv=None) -> None:
    paths, config, execution = parse_stage_args(__doc__, [SelectionPaths, SelectionConfig, Execution], argv,
                                                check=check)
    logger, _ = start_stage(execution, paths, config)
    selection = select(read_json(paths.teacher), [read_json(path) for path in paths.candidates],
                       [{**read_json(path), "role": "reference"} for path in paths.references], config.inference_cost)
    write_outputs(selection_report(selection, config, paths.output_dir))
    chosen = selection["chosen"]
    logger.info("chosen %s (W %.4f) among %d trained candidates", chosen["tag"], chosen["w_coefficient"],
                len(selection["ranked"]))


if __name__ == "__main__":
    main()
