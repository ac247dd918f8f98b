"""Stages finetune_magnitude, imp_finetune and imp_finetune_final: fine-tune a pruned checkpoint with its masks kept.

--model is a folder written by sparse_prune (or by this stage): a Hugging Face checkpoint whose pruned weights are
zeros, and its masks.safetensors. Training is the finetune stage's (core.training.train, the same recipe and
flags) with one callback, sparse.magnitude.KeepMasks: pruned weights get no gradient and are re-zeroed after every
optimizer step, so they are exactly zero in the output. The classifier is the checkpoint's (no new head).

Writes a Hugging Face folder, the same masks.safetensors (the next IMP round continues from them), sparsity.json
(measured on the fine-tuned weights) and training_log.json.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from workflow_scripts.core.io_utils import read_json
from workflow_scripts.core.training import TrainingConfig
from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage
from workflow_scripts.sparse.magnitude import KeepMasks, load_masks, measure_sparsity, save_sparse_checkpoint
from workflow_scripts.stages.finetune import FinetuneOptions, check_early_stopping, finetune_checkpoint

@dataclass
class SparseFinetunePaths:
    """What the stage reads and writes."""
    model: str = field(metadata={"help": "pruned checkpoint folder with its masks.safetensors"})
    data: str = field(metadata={"help": "tokenized task folder"})
    output: str = field(metadata={"help": "folder for the fine-tuned checkpoint, its masks and sparsity.json"})


def main(argv=None) -> None:
    paths, options, config, execution = parse_stage_args(
        __doc__, [SparseFinetunePaths, FinetuneOptions, TrainingConfig, Execution], argv, check=check_early_stopping)
    logger, device = start_stage(execution, paths, options, config)

    masks = load_masks(paths.model)  # first: a folder without masks fails before any work

    def keep_masks(model) -> list:
        logger.info("sparsity before fine-tuning %.4f", measure_sparsity(model, masks)["global"]["sparsity"])
        return [KeepMasks(model, masks)]

    result = finetune_checkpoint(paths.model, paths.data, None, options, config, device, logger, "sparse finetune",
                                 callbacks_for=keep_masks)
    measured = measure_sparsity(result.model, masks)
    pruned = os.path.join(paths.model, "sparsity.json")  # what sparse_prune aimed at, when it wrote the input
    target = read_json(pruned)["target_sparsity"] if os.path.isfile(pruned) else None
    save_sparse_checkpoint(result.model, result.tokenizer, paths.output, masks, {
        "sparsity.json": {"target_sparsity": target, "finetuned_from": paths.model, **measured},
        "training_log.json": result.training_log})
    logger.info("wrote %s (sparsity %.4f, final loss %.4f)", paths.output, measured["global"]["sparsity"],
                result.training_log["losses"][-1])


if __name__ == "__main__":
    main()
