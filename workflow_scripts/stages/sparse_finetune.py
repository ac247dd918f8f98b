"""Stages finetune_magnitude, imp_finetune and imp_finetune_final: fine-tune a pruned checkpoint with its masks kept.

--model is a folder written by sparse_prune (or by this stage): a Hugging Face checkpoint whose pruned weights are
zeros, and its masks.safetensors. Training is the finetune stage's (core.training.train, the same recipe and
flags) with one callback, sparse.magnitude.KeepMasks: pruned weights get no gradient and are re-zeroed after every
optimizer step, so they are exactly zero in the output. The classifier is the checkpoint's (no new head).

Writes a Hugging Face folder, the same masks.safetensors (the next IMP round continues from them), sparsity.json
(measured on the fine-tuned weights) and training_log.json.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from transformers import AutoTokenizer, DataCollatorWithPadding

from workflow_scripts.core.io_utils import read_json
from workflow_scripts.core.models import load_for_classification
from workflow_scripts.core.training import TrainingConfig, headline_score, seed_everything, train, training_rows
from workflow_scripts.data.tasks import TRAIN
from workflow_scripts.data.tokenized import load_tokenized
from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage
from workflow_scripts.sparse.magnitude import KeepMasks, load_masks, measure_sparsity, save_sparse_checkpoint
from workflow_scripts.stages.finetune import FinetuneOptions


@dataclass
class SparseFinetunePaths:
    """What the stage reads and writes."""
    model: str = field(metadata={"help": "pruned checkpoint folder with its masks.safetensors"})
    data: str = field(metadata={"help": "tokenized task folder"})
    output: str = field(metadata={"help": "folder for the fine-tuned checkpoint, its masks and sparsity.json"})


def _check(paths, options: FinetuneOptions, config: TrainingConfig, execution) -> str | None:
    if config.evaluate_every_steps and not (0 < options.early_stopping_fraction < 1 and config.patience >= 1):
        return "early stopping needs 0 < --early-stopping-fraction < 1 and --patience >= 1"
    return None


def main(argv=None) -> None:
    paths, options, config, execution = parse_stage_args(
        __doc__, [SparseFinetunePaths, FinetuneOptions, TrainingConfig, Execution], argv, check=_check)
    logger, device = start_stage(execution, paths, options, config)

    masks = load_masks(paths.model)  # first: a folder without masks fails before any work
    dataset_dict, task = load_tokenized(paths.data)
    tokenizer = AutoTokenizer.from_pretrained(paths.model)
    seed_everything(config.seed)
    model = load_for_classification(paths.model, task["num_labels"], options.attn_implementation)
    train_rows, held_out_rows = training_rows(len(dataset_dict[TRAIN]), None,
                                              options.early_stopping_fraction if config.evaluate_every_steps else 0.0,
                                              config.seed)
    collate_fn = DataCollatorWithPadding(tokenizer)
    selection_score = headline_score(dataset_dict[TRAIN].select(held_out_rows), task, options.eval_batch_size,
                                     collate_fn, device) if held_out_rows else None
    model.to(device)
    keep_masks = KeepMasks(model, masks)
    logger.info("fine-tuning at sparsity %.4f on %d %s examples (%d held out for early stopping): %s",
                measure_sparsity(model, masks)["global"]["sparsity"], len(train_rows), task["name"],
                len(held_out_rows), config)
    history = train(model, dataset_dict[TRAIN].select(train_rows), config, collate_fn, device,
                    selection_score=selection_score, description=f"sparse finetune {task['name']}",
                    callbacks=[keep_masks])
    model.cpu()
    measured = measure_sparsity(model, masks)
    pruned = os.path.join(paths.model, "sparsity.json")  # what sparse_prune aimed at, when it wrote the input
    target = read_json(pruned)["target_sparsity"] if os.path.isfile(pruned) else None
    save_sparse_checkpoint(model, tokenizer, paths.output, masks, {
        "sparsity.json": {"target_sparsity": target, "finetuned_from": paths.model, **measured},
        "training_log.json": {"config": dataclasses.asdict(config), "train_rows": len(train_rows),
                              "held_out_rows": held_out_rows, "selection_metric": task["metrics"][0],
                              **history.to_json()}})
    logger.info("wrote %s (sparsity %.4f, final loss %.4f)", paths.output, measured["global"]["sparsity"],
                history.losses[-1])


if __name__ == "__main__":
    main()
