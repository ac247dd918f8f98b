"""Stage dap_search: differentiable architecture pruning of a fine-tuned classifier to a FLOPs ratio (seed 004).

The student starts as a copy of the fine-tuned model (the teacher); alpha (one per head and FFN unit) and the weights
train together on the task's training rows with prediction self-distillation (MSE to the teacher's logits) plus the
FLOPs cost loss, the target ratio moving from 1 to --target-ratio (workflow_scripts/dap/search.py). The discrete
architecture that meets the ratio within the tolerance is physically pruned and written as a Hugging Face folder
(uneven heads and FFN sizes per layer in config.json's compression record), with search.json: the kept units, the
FLOPs, the trajectory of the target and the soft ratio, and the number of alpha updates taken.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

from transformers import AutoTokenizer, DataCollatorWithPadding

from workflow_scripts.core.models import load_for_classification, save_checkpoint
from workflow_scripts.dap.search import SearchConfig, search_architecture
from workflow_scripts.data.tasks import TRAIN
from workflow_scripts.data.tokenized import load_tokenized
from workflow_scripts.core.training import OptimizationConfig
from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage


@dataclass
class Paths:
    teacher: str = field(metadata={"help": "the fine-tuned classifier to prune (also the distillation teacher)"})
    data: str = field(metadata={"help": "tokenized task folder (its training split is searched on)"})
    output: str = field(metadata={"help": "folder for the pruned checkpoint and search.json"})


@dataclass
class Options:
    attn_implementation: str = field(metadata={"choices": ["sdpa", "eager"], "help": "attention kernel"})


def _check(paths, options, training, config, execution) -> str | None:
    if not 0 < config.target_ratio < 1:
        return f"--target-ratio must be in (0, 1), got {config.target_ratio}"
    if not 0 < config.update_fraction <= 1:
        return f"--update-fraction must be in (0, 1], got {config.update_fraction}"
    if not 0.5 <= config.keep_threshold < 1:
        return f"--keep-threshold must be in [0.5, 1), got {config.keep_threshold}"
    return None


def main(argv=None) -> None:
    paths, options, training, config, execution = parse_stage_args(
        __doc__, [Paths, Options, OptimizationConfig, SearchConfig, Execution], argv, check=_check)
    logger, device = start_stage(execution, paths, options, training, config)
    dataset_dict, task = load_tokenized(paths.data)
    teacher = load_for_classification(paths.teacher, task["num_labels"], options.attn_implementation)
    student = copy.deepcopy(teacher)
    tokenizer = AutoTokenizer.from_pretrained(paths.teacher)
    record = search_architecture(student, teacher, dataset_dict[TRAIN], DataCollatorWithPadding(tokenizer), training,
                                 config, device)
    architecture = record["architecture"]
    logger.info("searched %d steps, %d alpha entries updated; soft ratio %.4f at the end; discrete architecture: "
                "%.4f of the FLOPs (target %g), heads per layer %s, FFN units per layer %s", record["steps"],
                record["alpha_entries_updated"], record["final_soft_ratio"], architecture["ratio"],
                config.target_ratio, [len(h) for h in architecture["heads_kept"]],
                [len(f) for f in architecture["ffn_kept"]])
    save_checkpoint(student, tokenizer, paths.output, extra_json={"search.json": {
        "task": task["name"], "teacher": paths.teacher, "config": dataclasses.asdict(config),
        "training": dataclasses.asdict(training), "rows": len(dataset_dict[TRAIN]), **record}})


if __name__ == "__main__":
    main()
