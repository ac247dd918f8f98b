"""Stage finetune_plain: Agora's baseline at equal compute. The same student, with the same classification head,
fine-tuned plainly on the original training rows with the best single set of the grid (the best of Agora's
first round, where every set trained on the same data), for as many training examples as Agora's models saw
in all its rounds together. It is scored on the selection split after every epoch and keeps its best epoch,
so both sides select on the same rows and neither ever looks at dev.

Writes a Hugging Face folder and plain.json (the set, epochs, training examples, wall time, scores).
"""
from __future__ import annotations

import math
import os
import time

from transformers import AutoTokenizer, DataCollatorWithPadding

from workflow_scripts.agora.loop import build_classifier, encode_rows, load_task_rows, score_on
from workflow_scripts.stages.agora_finetune import add_classifier_args
from workflow_scripts.pipeline.cli import stage_parser, start_stage
from workflow_scripts.core.io_utils import read_json
from workflow_scripts.core.models import save_checkpoint
from workflow_scripts.core.training import TrainingConfig, seed_everything, train


def equal_compute_epochs(agora_summary: dict, train_size: int) -> int:
    """Epochs over `train_size` rows that process at least as many examples as all of Agora's models did."""
    return max(1, math.ceil(agora_summary["training_examples"] / train_size))


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    add_classifier_args(parser)
    parser.add_argument("--agora", required=True, help="agora_finetune output folder (its agora.json)")
    parser.add_argument("--output", required=True, help="folder for the fine-tuned checkpoint")
    args = parser.parse_args(argv)
    logger, device = start_stage(args)

    summary = read_json(os.path.join(args.agora, "agora.json"))
    hyperparameters = summary["sets"][summary["first_round_best_set"]]
    spec, train_rows, selection_rows = load_task_rows(args.raw, args.selection_fraction, args.seed)
    if len(train_rows) != summary["train_size"]["initial"]:
        raise SystemExit(f"{args.agora} was run on {summary['train_size']['initial']} training rows, this task has "
                         f"{len(train_rows)}: the selection fraction or seed differ")
    tokenizer = AutoTokenizer.from_pretrained(args.student)
    collate_fn = DataCollatorWithPadding(tokenizer)
    text_columns = tuple(spec["text_columns"])
    train_set = encode_rows(train_rows, tokenizer, text_columns, args.max_length)
    selection = encode_rows(selection_rows, tokenizer, text_columns, args.max_length)
    epochs = equal_compute_epochs(summary, len(train_rows))
    steps_per_epoch = math.ceil(len(train_rows) / hyperparameters["batch_size"])

    started = time.perf_counter()
    seed_everything(hyperparameters["seed"])
    model = build_classifier(args.student, spec["num_labels"], extra_layer=args.extra_layer,
                             init_range=args.init_range, dropout=args.dropout)
    config = TrainingConfig(epochs=epochs, max_grad_norm=args.max_grad_norm, adam_epsilon=args.adam_epsilon,
                            evaluate_every_steps=steps_per_epoch, patience=epochs, **hyperparameters)
    logger.info("plain fine-tune with %s for %d epochs (%d examples; Agora: %d)", summary["first_round_best_set"],
                epochs, epochs * len(train_rows), summary["training_examples"])
    history = train(model, train_set, config, collate_fn, device, description=f"plain {spec['name']}",
                    selection_score=lambda m: score_on(m, selection, spec, args.eval_batch_size, collate_fn,
                                                       device)[0])
    seconds = time.perf_counter() - started
    best_score = max(score for _, score in history.selection_scores)
    save_checkpoint(model.cpu(), tokenizer, args.output, extra_json={"plain.json": {
        "task": spec["name"], "student": args.student, "set": summary["first_round_best_set"],
        "hyperparameters": hyperparameters, "epochs": epochs, "training_examples": epochs * len(train_rows),
        "agora_training_examples": summary["training_examples"], "selection_metric": spec["metrics"][0],
        "best_selection_score": best_score, "best_step": history.best_step,
        "selection_scores": history.selection_scores, "seconds": round(seconds, 2)}})
    logger.info("wrote %s: selection %s %.4f at step %s, %.0f s", args.output, spec["metrics"][0], best_score,
                history.best_step, seconds)


if __name__ == "__main__":
    main()
