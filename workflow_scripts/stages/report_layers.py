"""Stage report_layers: what a layer-by-layer pruning chain did, layer by layer.

Reads the chain's checkpoints (initial model, each layer's prune and fine-tune outputs in processing order, the
final fine-tune) and writes:
- dev_by_layer.csv: the dev score after each layer's fine-tune (step 0 = before pruning, last row = after the
  final fine-tune), with heads pruned so far; dvc.yaml declares it as a plot (AUBER's per-layer figure).
- layerwise_metrics.json: heads pruned per layer (original ids) and in total (the budget the competitors get),
  mini-dev scores before/after each layer's search, search time and reward-cache hit rate, parameters and
  encoder FLOPs before and after, dev scores before and after. Declared as DVC metrics.
The dev split is only reported here; nothing in the chain selects on it.
"""
from __future__ import annotations

import csv
import io
import os

from transformers import AutoTokenizer, DataCollatorWithPadding

from workflow_scripts.pipeline.cli import stage_parser, start_stage
from workflow_scripts.core.counters import count_flops, count_parameters
from workflow_scripts.stages.evaluate import evaluate_split
from workflow_scripts.core.io_utils import read_json, write_json, write_text
from workflow_scripts.core.models import load_for_classification
from workflow_scripts.core.surgery import model_structure
from workflow_scripts.stages.tokenize_task import load_tokenized

FLOPS_SEQ_LEN = 128


def describe_checkpoint(folder: str, dataset_dict, task: dict, batch_size: int, collate_fn, device: str) -> dict:
    model = load_for_classification(folder, task["num_labels"])
    dev = evaluate_split(model, dataset_dict[task["dev_split"]], task, batch_size, collate_fn, device, "dev")
    return {"dev": dev, "parameters": count_parameters(model)["total"],
            "encoder_flops": count_flops(model, batch_size=1, seq_len=FLOPS_SEQ_LEN)["encoder"],
            "heads_per_layer": model_structure(model)["heads_per_layer"]}


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--data", required=True, help="tokenized task folder")
    parser.add_argument("--initial", required=True, help="checkpoint the chain starts from")
    parser.add_argument("--pruned", nargs="+", required=True, help="prune_layer outputs, in processing order")
    parser.add_argument("--finetuned", nargs="+", required=True, help="finetune_layer outputs, same order")
    parser.add_argument("--final", required=True, help="the final fine-tune's checkpoint")
    parser.add_argument("--output-plot", required=True, help="dev_by_layer.csv to write")
    parser.add_argument("--output-metrics", required=True, help="layerwise_metrics.json to write")
    parser.add_argument("--batch-size", type=int, default=64, help="examples per forward pass")
    args = parser.parse_args(argv)
    if len(args.pruned) != len(args.finetuned):
        parser.error("--pruned and --finetuned must list the same layers")
    logger, device = start_stage(args)

    dataset_dict, task = load_tokenized(args.data)
    collate_fn = DataCollatorWithPadding(AutoTokenizer.from_pretrained(args.initial))
    metric = task["metrics"][0]

    def describe(folder):
        return describe_checkpoint(folder, dataset_dict, task, args.batch_size, collate_fn, device)

    initial, final = describe(args.initial), describe(args.final)
    rows = [{"step": 0, "layer": "", "heads_pruned_in_layer": 0, "heads_pruned_total": 0,
             "metric": metric, "dev_score": initial["dev"][metric]}]
    layers, total = [], 0
    for step, (pruned_folder, finetuned_folder) in enumerate(zip(args.pruned, args.finetuned), start=1):
        search = read_json(os.path.join(pruned_folder, "search_log.json"))
        after = describe(finetuned_folder)
        total += len(search["pruned_head_ids"])
        rows.append({"step": step, "layer": search["layer"], "heads_pruned_in_layer": len(search["pruned_head_ids"]),
                     "heads_pruned_total": total, "metric": metric, "dev_score": after["dev"][metric]})
        layers.append({"layer": search["layer"], "pruned_head_ids": search["pruned_head_ids"],
                       "mini_dev_score_before": search["mini_dev_score_before"],
                       "mini_dev_score_after": search["mini_dev_score_after"],
                       f"dev_{metric}_after_finetune": after["dev"][metric],
                       "search_seconds": search["seconds"], "reward_cache": search.get("reward_cache")})
        logger.info("step %d (layer %d): pruned %s, dev %s %.4f", step, search["layer"], search["pruned_head_ids"],
                    metric, after["dev"][metric])
    rows.append({"step": len(rows), "layer": "final", "heads_pruned_in_layer": 0, "heads_pruned_total": total,
                 "metric": metric, "dev_score": final["dev"][metric]})

    summary = {
        "task": task["name"], "method": search["method"], "seed": search["seed"], "metric": metric,
        "heads_pruned_total": total,
        "heads_pruned_by_layer": {str(entry["layer"]): entry["pruned_head_ids"] for entry in layers},
        "heads_per_layer_before": initial["heads_per_layer"], "heads_per_layer_after": final["heads_per_layer"],
        "dev_before": initial["dev"], "dev_after": final["dev"],
        "parameters_before": initial["parameters"], "parameters_after": final["parameters"],
        f"encoder_flops_seq{FLOPS_SEQ_LEN}_before": initial["encoder_flops"],
        f"encoder_flops_seq{FLOPS_SEQ_LEN}_after": final["encoder_flops"],
        "search_seconds_total": round(sum(entry["search_seconds"] for entry in layers), 1),
        "layers": layers,
    }
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(args.output_plot, table.getvalue())
    write_json(args.output_metrics, summary)
    logger.info("%s: %d heads pruned; dev %s %.4f -> %.4f", task["name"], total, metric,
                initial["dev"][metric], final["dev"][metric])


if __name__ == "__main__":
    main()
