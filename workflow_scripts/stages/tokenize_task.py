"""Stage tokenize_task: tokenize every split of a task once (data/<task>/tokenized, a datasets DatasetDict).

Examples are truncated to --max-length and left unpadded; batches are padded to their longest example.
"""
from __future__ import annotations

import os

from workflow_scripts.pipeline.cli import stage_parser, start_stage
from workflow_scripts.core.io_utils import atomic_output_dir, read_json, write_json

MODEL_COLUMNS = ("input_ids", "token_type_ids", "attention_mask", "labels")


def load_tokenized(folder: str):
    """(DatasetDict, task spec dict) as written by this stage."""
    import datasets

    return datasets.load_from_disk(folder), read_json(os.path.join(folder, "task.json"))


def tokenize_task(raw_folder: str, tokenizer, max_length: int):
    import datasets

    spec = read_json(os.path.join(raw_folder, "task.json"))
    text_columns = spec["text_columns"]
    data_files = {split: os.path.join(raw_folder, f"{split}.jsonl") for split in spec["split_sizes"]}
    dataset_dict = datasets.load_dataset("json", data_files=data_files)

    def encode(batch):
        encoded = tokenizer(*[batch[column] for column in text_columns], truncation=True, max_length=max_length)
        encoded["labels"] = batch["label"]
        return encoded

    tokenized = dataset_dict.map(encode, batched=True, desc="tokenize")
    keep = [column for column in MODEL_COLUMNS if column in tokenized["train"].column_names]
    return tokenized.select_columns(keep)


def main(argv=None) -> None:
    from transformers import AutoTokenizer

    parser = stage_parser(__doc__)
    parser.add_argument("--raw", required=True, help="folder written by prepare_task")
    parser.add_argument("--tokenizer", required=True, help="model folder whose tokenizer to use")
    parser.add_argument("--output", required=True, help="folder for the tokenized DatasetDict")
    parser.add_argument("--max-length", type=int, required=True, help="truncation length (from params.yaml)")
    args = parser.parse_args(argv)
    logger, _ = start_stage(args)

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    tokenized = tokenize_task(args.raw, tokenizer, args.max_length)
    with atomic_output_dir(args.output) as staging:
        tokenized.save_to_disk(staging)
        # Later stages need the task's labels and metrics next to its tokens.
        write_json(os.path.join(staging, "task.json"), read_json(os.path.join(args.raw, "task.json")))
    logger.info("wrote %s: %s", args.output, {split: len(ds) for split, ds in tokenized.items()})


if __name__ == "__main__":
    main()
