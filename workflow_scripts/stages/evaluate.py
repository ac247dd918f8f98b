"""Stage evaluate: metrics of a fine-tuned checkpoint on the task's dev split (and test, when it has labels).

Writes a metrics JSON that dvc.yaml declares as DVC metrics. Dev is the split the AUBER paper reports; no stage
ever selects anything on it.
"""
from __future__ import annotations

import os

import numpy as np
from transformers import AutoTokenizer, DataCollatorWithPadding

from workflow_scripts.pipeline.cli import stage_parser, start_stage
from workflow_scripts.core.io_utils import write_json
from workflow_scripts.core.metrics import compute_metrics
from workflow_scripts.core.models import load_for_classification
from workflow_scripts.data.tasks import TEST
from workflow_scripts.stages.tokenize_task import load_tokenized
from workflow_scripts.core.training import predict_logits


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


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, help="fine-tuned checkpoint folder")
    parser.add_argument("--data", required=True, help="tokenized task folder")
    parser.add_argument("--output", required=True, help="metrics JSON to write")
    parser.add_argument("--batch-size", type=int, default=64, help="examples per forward pass (params.yaml)")
    args = parser.parse_args(argv)
    logger, device = start_stage(args)

    dataset_dict, task = load_tokenized(args.data)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = load_for_classification(args.model, task["num_labels"])
    collate_fn = DataCollatorWithPadding(tokenizer)
    metrics = {"task": task["name"], "model": os.path.normpath(args.model), "headline_metric": task["metrics"][0]}
    for split in splits_to_report(dataset_dict, task):
        metrics[split] = evaluate_split(model, dataset_dict[split], task, args.batch_size, collate_fn, device, split)
        logger.info("%s %s: %s", task["name"], split, metrics[split])
    write_json(args.output, metrics)


if __name__ == "__main__":
    main()
