"""Stages finetune_initial, finetune_layer and finetune_final: fine-tune a checkpoint on a task's training data.

- finetune_initial: the pretrained model on the whole training split (the AUBER paper's recipe).
- finetune_layer: a just-pruned checkpoint on the mini-train part of its layer's split (--train-indices points
  at the mini_split.json that prune_layer wrote), at a small learning rate.
- finetune_final: the last layer's checkpoint on the training split with early stopping: a seeded share of the
  training split (--early-stopping-fraction) is held out, scored every --evaluate-every-steps steps with the
  task's headline metric, and training stops after --patience evaluations without a gain, keeping the best.
  The dev split is never looked at. (--evaluate-every-steps 0 turns early stopping off.)

Writes a Hugging Face folder with the fine-tuned classifier and training_log.json (loss per step, selection
scores).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

from transformers import AutoTokenizer, DataCollatorWithPadding

from workflow_scripts.core.models import load_for_classification, save_checkpoint
from workflow_scripts.core.training import TrainingConfig, headline_score, seed_everything, train, training_rows
from workflow_scripts.data.tasks import TRAIN
from workflow_scripts.data.tokenized import load_tokenized
from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage


@dataclass
class FinetunePaths:
    """What the stage reads and writes."""
    model: str = field(metadata={"help": "checkpoint folder to start from"})
    data: str = field(metadata={"help": "tokenized task folder"})
    output: str = field(metadata={"help": "folder for the fine-tuned checkpoint"})
    train_indices: str | None = field(default=None, metadata={
        "help": "mini_split.json of a prune_layer output: train on its mini_train rows only"})


@dataclass
class FinetuneOptions:
    """The model's attention kernel and the early-stopping split (params.yaml finetune_*, model, evaluate)."""
    attn_implementation: str = field(metadata={"choices": ["sdpa", "eager"], "help": "attention kernel"})
    early_stopping_fraction: float = field(metadata={"help": "share of the training rows held out to select on"})
    eval_batch_size: int = field(metadata={"help": "examples per forward pass when scoring the held-out rows"})


def check_early_stopping(paths, options: FinetuneOptions, config: TrainingConfig, execution) -> str | None:
    if config.evaluate_every_steps and not (0 < options.early_stopping_fraction < 1 and config.patience >= 1):
        return "early stopping needs 0 < --early-stopping-fraction < 1 and --patience >= 1"
    return None


@dataclass
class FinetuneResult:
    """A fine-tuned model (on the CPU) and what its training_log.json records."""
    model: object
    tokenizer: object
    task: dict
    training_log: dict


def finetune_checkpoint(model_dir: str, data_dir: str, train_indices: str | None, options: FinetuneOptions,
                        config: TrainingConfig, device: str, logger, description: str,
                        callbacks_for: Callable[[object], list] = lambda model: []) -> FinetuneResult:
    """The body of every fine-tuning stage: load the checkpoint (a new classifier head only where it has none) and
    the task, hold out the early-stopping rows, train. `callbacks_for(model)` gives the training callbacks of the
    loaded model (sparse_finetune: the masks that keep pruned weights at zero)."""
    dataset_dict, task = load_tokenized(data_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    seed_everything(config.seed)  # a new classifier head is initialized from this seed
    model = load_for_classification(model_dir, task["num_labels"], options.attn_implementation)
    train_rows, held_out_rows = training_rows(len(dataset_dict[TRAIN]), train_indices,
                                              options.early_stopping_fraction if config.evaluate_every_steps else 0.0,
                                              config.seed)
    collate_fn = DataCollatorWithPadding(tokenizer)
    selection_score = headline_score(dataset_dict[TRAIN].select(held_out_rows), task, options.eval_batch_size,
                                     collate_fn, device) if held_out_rows else None
    callbacks = callbacks_for(model.to(device))
    logger.info("fine-tuning on %d %s examples (%d held out for early stopping): %s", len(train_rows), task["name"],
                len(held_out_rows), config)
    history = train(model, dataset_dict[TRAIN].select(train_rows), config, collate_fn, device,
                    selection_score=selection_score, description=f"{description} {task['name']}",
                    callbacks=callbacks)
    if history.selection_scores:
        logger.info("early stopping: best %s %.4f at step %s of %d%s", task["metrics"][0],
                    max(s for _, s in history.selection_scores), history.best_step, len(history.losses),
                    " (stopped early)" if history.stopped_early else "")
    return FinetuneResult(model.cpu(), tokenizer, task, {
        "config": dataclasses.asdict(config), "train_rows": len(train_rows), "held_out_rows": held_out_rows,
        "selection_metric": task["metrics"][0], **history.to_json()})


def main(argv=None) -> None:
    paths, options, config, execution = parse_stage_args(
        __doc__, [FinetunePaths, FinetuneOptions, TrainingConfig, Execution], argv, check=check_early_stopping)
    logger, device = start_stage(execution, paths, options, config)
    result = finetune_checkpoint(paths.model, paths.data, paths.train_indices, options, config, device, logger,
                                 "finetune")
    save_checkpoint(result.model, result.tokenizer, paths.output, extra_json={"training_log.json": result.training_log})
    logger.info("wrote %s (final loss %.4f)", paths.output, result.training_log["losses"][-1])


if __name__ == "__main__":
    main()
