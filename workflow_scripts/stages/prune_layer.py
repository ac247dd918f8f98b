"""Stage prune_layer: choose heads of one encoder layer to prune, prune them physically, write the checkpoint.

Writes a Hugging Face folder with the pruned model plus search_log.json (decision, mini-dev score before and after,
per-episode return / loss / epsilon, reward-cache hit rate) and mini_split.json (the indices of both parts;
finetune_layer trains on mini-train). The logic is head_pruning/prune.py. AUBER reads the agent's flags
(auber.*), a competitor reads competitors.* and --budget.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from workflow_scripts.head_pruning.auber import AuberConfig
from workflow_scripts.head_pruning.configs import CompetitorConfig, ScoringConfig
from workflow_scripts.head_pruning.dqn import DQNConfig
from workflow_scripts.head_pruning.prune import METHODS, LayerJob, prune_layer
from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage


@dataclass
class Run:
    model: str = field(metadata={"help": "checkpoint to prune (the previous layer's, fine-tuned)"})
    data: str = field(metadata={"help": "tokenized task folder"})
    output: str = field(metadata={"help": "folder for the pruned checkpoint and the search log"})
    layer: int = field(metadata={"help": "encoder layer to prune (0 = bottom)"})
    method: str = field(metadata={"help": "how heads are chosen", "choices": METHODS})
    method_name: str = field(metadata={"help": "the method's name in the pipeline (an ablation's name)"})
    seed: int = field(metadata={"help": "run seed; the layer's split and agent derive from it"})
    layer_order: str = field(metadata={"help": "the chain's layer order (recorded in the log)"})
    budget: str | None = field(default=None, metadata={
        "help": "competitors: AUBER's prune folder of this layer or a global_ranking.json"})
    search_cache: bool = field(default=True, metadata={
        "help": "false scores every candidate from scratch (same decisions, slower; for benchmarks)"})


def method_of(argv) -> str:
    """--method alone, to know which settings the rest of the command line carries."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--method", choices=METHODS, required=True)
    return parser.parse_known_args(argv)[0].method


def main(argv=None) -> None:
    settings = [AuberConfig, DQNConfig] if method_of(argv) == "auber" else [CompetitorConfig]
    run, scoring, *method_settings, execution = parse_stage_args(
        __doc__, [Run, ScoringConfig, *settings, Execution], argv,
        check=lambda run, *_: None if run.method == "auber" or run.budget else
        f"--method {run.method} needs --budget (how many heads to prune in this layer)")
    logger, device = start_stage(execution, run, scoring, *method_settings)
    job = LayerJob(layer=run.layer, method=run.method, method_name=run.method_name, seed=run.seed,
                   layer_order=run.layer_order, scoring=scoring, budget=run.budget, search_cache=run.search_cache,
                   auber=method_settings[0] if run.method == "auber" else None,
                   competitors=method_settings[0] if run.method != "auber" else None)

    from transformers import AutoTokenizer, DataCollatorWithPadding

    from workflow_scripts.core.models import load_for_classification, save_checkpoint
    from workflow_scripts.data.tokenized import load_tokenized

    dataset_dict, task = load_tokenized(run.data)
    tokenizer = AutoTokenizer.from_pretrained(run.model)
    model = load_for_classification(run.model, task["num_labels"], scoring.attn_implementation)
    log, mini_split = prune_layer(job, model, dataset_dict, task, DataCollatorWithPadding(tokenizer), device, logger)
    save_checkpoint(model.cpu(), tokenizer, run.output,
                    extra_json={"search_log.json": log, "mini_split.json": mini_split})
    logger.info("wrote %s", run.output)


if __name__ == "__main__":
    main()
