"""Stages finetune_initial, finetune_layer and finetune_final: fine-tune a checkpoint on a task's training data.

- finetune_initial: the pretrained model on the whole training split (the AUBER paper's recipe).
- finetune_layer: a just-pruned checkpoint on the mini-train part of its layer's split (--train-indices points
  at the mini_split.json that prune_layer wrote), at a small learning rate.
- finetune_final: the last layer's checkpoint on the training split with early stopping: a seeded share of the
  training split (--early-stopping-fraction) is held out, scored every --evaluate-every-steps steps with the
  task's headline metric, and training stops after --patience evaluations without a gain, keeping the best.
  The dev split is never looked at.

Writes a Hugging Face folder with the fine-tuned classifier and training_log.json (loss per step, selection
scores).
"""
from __future__ import annotations

import numpy as np
from transformers import DataCollatorWithPadding, AutoTokenizer

from workflow_scripts.pipeline.cli import add_training_args, start_stage, stage_parser
from workflow_scripts.core.io_utils import read_json
from workflow_scripts.core.metrics import compute_metrics
from workflow_scripts.core.models import load_for_classification, save_checkpoint
from workflow_scripts.data.tasks import TRAIN
from workflow_scripts.stages.tokenize_task import load_tokenized
from workflow_scripts.core.training import TrainingConfig, predict_logits, seed_everything, train


def training_config_from_args(args) -> TrainingConfig:
    return TrainingConfig(epochs=args.epochs, learning_rate=args.learning_rate, batch_size=args.batch_size,
                          weight_decay=args.weight_decay, warmup_ratio=args.warmup_ratio,
                          max_grad_norm=args.max_grad_norm, adam_epsilon=args.adam_epsilon, seed=args.seed,
                          evaluate_every_steps=args.evaluate_every_steps, patience=args.patience)


def training_rows(num_train: int, train_indices_file: str | None, early_stopping_fraction: float,
                  seed: int) -> tuple[list[int], list[int]]:
    """(rows to train on, rows held out for early stopping), as indices of the training split."""
    rows = read_json(train_indices_file)["mini_train"] if train_indices_file else list(range(num_train))
    if early_stopping_fraction == 0:
        return rows, []
    shuffled = np.random.default_rng(seed).permutation(rows).tolist()
    held_out = max(1, round(early_stopping_fraction * len(rows)))
    if held_out >= len(rows):
        raise ValueError(f"--early-stopping-fraction {early_stopping_fraction} leaves no training rows")
    return sorted(shuffled[held_out:]), sorted(shuffled[:held_out])


def headline_score(dataset, task: dict, batch_size: int, collate_fn, device: str):
    """A selection_score callback: the task's headline metric (accuracy, MCC, ...) on `dataset`."""
    labels = np.asarray(dataset["labels"])

    def score(model) -> float:
        logits = predict_logits(model, dataset, batch_size, collate_fn, device, description="early-stopping split")
        return compute_metrics(task["metrics"][:1], logits, labels)[task["metrics"][0]]
    return score


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, help="checkpoint folder to start from")
    parser.add_argument("--data", required=True, help="tokenized task folder")
    parser.add_argument("--output", required=True, help="folder for the fine-tuned checkpoint")
    parser.add_argument("--attn-implementation", default="sdpa", choices=["sdpa", "eager"], help="attention kernel")
    parser.add_argument("--train-indices", default=None,
                        help="mini_split.json of a prune_layer output: train on its mini_train rows only")
    add_training_args(parser)
    stopping = parser.add_argument_group("early stopping (finetune_final; off with --evaluate-every-steps 0)")
    stopping.add_argument("--early-stopping-fraction", type=float, default=0.0,
                          help="share of the training rows held out to select on")
    stopping.add_argument("--evaluate-every-steps", type=int, default=0, help="optimizer steps between evaluations")
    stopping.add_argument("--patience", type=int, default=0, help="evaluations without a gain before stopping")
    stopping.add_argument("--eval-batch-size", type=int, default=64, help="examples per forward pass when scoring")
    args = parser.parse_args(argv)
    if args.evaluate_every_steps and not (0 < args.early_stopping_fraction < 1 and args.patience >= 1):
        parser.error("early stopping needs 0 < --early-stopping-fraction < 1 and --patience >= 1")
    logger, device = start_stage(args)

    dataset_dict, task = load_tokenized(args.data)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    seed_everything(args.seed)  # the new classifier head is initialized from this seed
    model = load_for_classification(args.model, task["num_labels"], args.attn_implementation)
    config = training_config_from_args(args)
    train_rows, held_out_rows = training_rows(len(dataset_dict[TRAIN]), args.train_indices,
                                              args.early_stopping_fraction if args.evaluate_every_steps else 0.0,
                                              args.seed)
    collate_fn = DataCollatorWithPadding(tokenizer)
    selection_score = headline_score(dataset_dict[TRAIN].select(held_out_rows), task, args.eval_batch_size,
                                     collate_fn, device) if held_out_rows else None
    logger.info("fine-tuning on %d %s examples (%d held out for early stopping): %s", len(train_rows), task["name"],
                len(held_out_rows), config)
    history = train(model, dataset_dict[TRAIN].select(train_rows), config, collate_fn, device,
                    selection_score=selection_score, description=f"finetune {task['name']}")
    if history.selection_scores:
        logger.info("early stopping: best %s %.4f at step %s of %d%s", task["metrics"][0],
                    max(s for _, s in history.selection_scores), history.best_step, len(history.losses),
                    " (stopped early)" if history.stopped_early else "")
    save_checkpoint(model.cpu(), tokenizer, args.output, extra_json={"training_log.json": {
        "config": vars(config), "train_rows": len(train_rows), "held_out_rows": held_out_rows,
        "selection_metric": task["metrics"][0], **history.to_json()}})
    logger.info("wrote %s (final loss %.4f)", args.output, history.losses[-1])


if __name__ == "__main__":
    main()
