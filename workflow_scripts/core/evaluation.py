"""Scoring a classifier on a task's splits: the metrics evaluate reports (dev, and test when labelled)."""
from __future__ import annotations

import os

import numpy as np

from workflow_scripts.core.metrics import compute_metrics
from workflow_scripts.core.inference import predict_logits
from workflow_scripts.data.tasks import TEST


def evaluate_split(model, dataset, task: dict, batch_size: int, collate_fn, device: str, split: str) -> dict:
    logits = predict_logits(model, dataset, batch_size, collate_fn, device, description=f"evaluate {split}")
    labels = np.asarray(dataset["labels"])
    return {"num_examples": len(labels), **compute_metrics(task["metrics"], logits, labels)}


def splits_to_report(dataset_dict, task: dict) -> list[str]:
    """Dev always; test only when its labels are real (GLUE's hidden test labels are -1)."""
    splits = [task["dev_split"]]
    if TEST in dataset_dict and min(dataset_dict[TEST]["labels"]) >= 0:
        splits.append(TEST)
    return splits


def evaluate_checkpoint(model_folder: str, data_folder: str, batch_size: int, device: str, logger) -> dict:
    """Metrics of a checkpoint on every reported split of its task, as evaluate's metrics.json holds them."""
    from transformers import AutoTokenizer, DataCollatorWithPadding

    from workflow_scripts.core.models import load_for_classification
    from workflow_scripts.data.tokenized import load_tokenized

    dataset_dict, task = load_tokenized(data_folder)
    model = load_for_classification(model_folder, task["num_labels"])
    collate_fn = DataCollatorWithPadding(AutoTokenizer.from_pretrained(model_folder))
    metrics = {"task": task["name"], "model": os.path.normpath(model_folder), "headline_metric": task["metrics"][0]}
    for split in splits_to_report(dataset_dict, task):
        metrics[split] = evaluate_split(model, dataset_dict[split], task, batch_size, collate_fn, device, split)
        logger.info("%s %s: %s", task["name"], split, metrics[split])
    return metrics
