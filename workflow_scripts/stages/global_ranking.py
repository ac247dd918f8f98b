"""Stage global_ranking: one ranking of every head of the chain's starting model, for competitors.budget =
global_ranking (head_pruning/ranking.py). Writes global_ranking.json: {layer: original head ids} to prune, and
every head's score."""
from __future__ import annotations

from dataclasses import dataclass, field

from workflow_scripts.core.io_utils import write_json
from workflow_scripts.head_pruning.competitors import COMPETITORS
from workflow_scripts.head_pruning.configs import CompetitorConfig, ScoringConfig
from workflow_scripts.head_pruning.ranking import auber_total, global_ranking
from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage


@dataclass
class Run:
    model: str = field(metadata={"help": "the chain's starting checkpoint"})
    data: str = field(metadata={"help": "tokenized task folder"})
    auber_searches: list[str] = field(metadata={"help": "AUBER's prune folders (every layer), same task and seed"})
    output: str = field(metadata={"help": "global_ranking.json to write"})
    method: str = field(metadata={"help": "how heads are scored", "choices": COMPETITORS})
    seed: int = field(metadata={"help": "run seed"})


def main(argv=None) -> None:
    run, scoring, competitors, execution = parse_stage_args(
        __doc__, [Run, ScoringConfig, CompetitorConfig, Execution], argv)
    logger, device = start_stage(execution, run, scoring, competitors)
    ranking = global_ranking(run.method, run.seed, run.model, run.data, auber_total(run.auber_searches), scoring,
                             competitors, device, logger)
    write_json(run.output, ranking)


if __name__ == "__main__":
    main()
