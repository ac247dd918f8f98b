"""Tokenized tasks (data/<task>/tokenized): every split tokenized once, as a datasets DatasetDict, with task.json.

Examples are truncated to max_length and left unpadded; batches are padded to their longest example.
"""
from __future__ import annotations

import os

from workflow_scripts.core.io_utils import atomic_output_dir, read_json, verify_checksums, write_json

MODEL_COLUMNS = ("input_ids", "token_type_ids", "attention_mask", "labels")


def load_tokenized(folder: str):
    """(DatasetDict, task spec dict) as written by this stage; a corrupt file raises, naming it (checksums.sha256)."""
    import datasets

    verify_checksums(folder)
    return datasets.load_from_disk(folder), read_json(os.path.join(folder, "task.json"))


def tokenize_task(raw_folder: str, tokenizer, max_length: int):
    import datasets

    verify_checksums(raw_folder)
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


def write_tokenized(tokenized, raw_folder: str, folder: str) -> None:
    """The DatasetDict, and the task's spec next to its tokens (later stages need its labels and metrics)."""
    with atomic_output_dir(folder) as staging:
        tokenized.save_to_disk(staging)
        write_json(os.path.join(staging, "task.json"), read_json(os.path.join(raw_folder, "task.json")))
