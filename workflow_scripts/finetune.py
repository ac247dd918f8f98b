"""Stage finetune_initial: fine-tune a checkpoint on a task's training split (the AUBER paper's recipe).

Writes a Hugging Face folder with the fine-tuned classifier and training_log.json (loss per step).
"""
from __future__ import annotations

from transformers import DataCollatorWithPadding, AutoTokenizer

from .cli import add_training_args, start_stage, stage_parser
from .models import load_for_classification, save_checkpoint
from .tasks import TRAIN
from .tokenize_task import load_tokenized
from .training import TrainingConfig, seed_everything, train


def training_config_from_args(args) -> TrainingConfig:
    return TrainingConfig(epochs=args.epochs, learning_rate=args.learning_rate, batch_size=args.batch_size,
                          weight_decay=args.weight_decay, warmup_ratio=args.warmup_ratio,
                          max_grad_norm=args.max_grad_norm, adam_epsilon=args.adam_epsilon, seed=args.seed)


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, help="checkpoint folder to start from")
    parser.add_argument("--data", required=True, help="tokenized task folder")
    parser.add_argument("--output", required=True, help="folder for the fine-tuned checkpoint")
    parser.add_argument("--attn-implementation", default="sdpa", choices=["sdpa", "eager"], help="attention kernel")
    add_training_args(parser)
    args = parser.parse_args(argv)
    logger, device = start_stage(args)

    dataset_dict, task = load_tokenized(args.data)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    seed_everything(args.seed)  # the new classifier head is initialized from this seed
    model = load_for_classification(args.model, task["num_labels"], args.attn_implementation)
    config = training_config_from_args(args)
    logger.info("fine-tuning on %d %s examples: %s", len(dataset_dict[TRAIN]), task["name"], config)
    history = train(model, dataset_dict[TRAIN], config, DataCollatorWithPadding(tokenizer), device,
                    description=f"finetune {task['name']}")
    save_checkpoint(model.cpu(), tokenizer, args.output,
                    extra_json={"training_log.json": {"config": vars(config), **history.to_json()}})
    logger.info("wrote %s (final loss %.4f)", args.output, history.losses[-1])


if __name__ == "__main__":
    main()
