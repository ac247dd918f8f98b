"""Stage model_table: one table of every model the pipeline produces, side by side: the task's headline metric
on dev (from the evaluate stage's metrics JSON), parameters (total and encoder), FLOPs per sequence, and CPU
latency at batch 1 and batch 32.

    python -m workflow_scripts.stages.model_table \
        --metrics models/*/*/evaluate/metrics.json models/*/*/seed_*/evaluate/metrics.json \
        --output-md results/model_table.md --output-csv results/model_table.csv \
        --output-json results/model_table_metrics.json

The method of a row comes from the metrics file's place in the layout: models/<task>/<method>/evaluate/... is
<method>, models/<task>/<method>/seed_<s>/evaluate/... is "<method> (seed s)". Its model is the checkpoint folder
the JSON names ("model", relative to the working directory unless absolute). All models are measured one after
the other in this one process, on CPU whatever --device says, so that their latencies compare side by side.
FLOPs follow workflow_scripts.core.counters (encoder and pooler matrix products, task head not counted).
"""
from __future__ import annotations

import csv
import gc
import io
import os
import re
from pathlib import Path

from workflow_scripts.core.io_utils import read_json, write_json, write_text

DEV_SPLITS = ("validation_matched", "validation")  # MNLI reports validation_matched; every other task validation
LATENCY_BATCH_SIZES = (1, 32)
SEED_FOLDER = re.compile(r"^seed_(\d+)$")
CSV_COLUMNS = ("task", "method", "seed", "metric", "dev_value", "parameters", "encoder_parameters",
               "flops_per_sequence", "latency_b1_ms", "latency_b32_ms", "model_folder", "metrics_path")


def dev_split(evaluation: dict, metrics_path: str) -> str:
    for split in DEV_SPLITS:
        if split in evaluation:
            return split
    raise ValueError(f"{metrics_path} has no dev split (looked for {', '.join(DEV_SPLITS)})")


def method_and_seed(metrics_path: str, task: str) -> tuple[str, int | None]:
    """(method, seed) from models/<task>/<method>[/seed_<s>]/evaluate/metrics.json (seed None when absent)."""
    parts = Path(metrics_path).parts
    positions = [i for i, part in enumerate(parts[:-2]) if part == task]
    if not positions:
        raise ValueError(f"{metrics_path} is not laid out as models/{task}/<method>/.../metrics.json, "
                         f"so its method is unknown")
    after_task = parts[positions[-1] + 1:]
    seed = SEED_FOLDER.match(after_task[1]) if len(after_task) > 2 else None
    return after_task[0], int(seed.group(1)) if seed else None


def describe_run(metrics_path: str) -> dict:
    """What one evaluate metrics JSON says about its model: task, method, seed, folder, dev headline metric."""
    evaluation = read_json(metrics_path)
    task, metric = evaluation["task"], evaluation["headline_metric"]
    method, seed = method_and_seed(metrics_path, task)
    split = dev_split(evaluation, metrics_path)
    return {"task": task, "method": method, "seed": seed, "metric": metric, "dev_value": evaluation[split][metric],
            "model_folder": evaluation["model"], "metrics_path": metrics_path}


def describe_pretrained(folder: str) -> dict:
    """A distilled Bort student (kd_pretrain's folder): no task yet, so its metric is the held-out MLM accuracy on
    the pretraining corpus; it is measured as the sequence classifier it becomes when fine-tuned."""
    metrics_path = os.path.join(folder, "metrics.json")
    pretraining = read_json(metrics_path)
    return {"task": "corpus (held-out MLM)", "method": f"bort_{pretraining['objective']}", "seed": None,
            "metric": "mlm_accuracy", "dev_value": pretraining["heldout_mlm_accuracy"], "model_folder": folder,
            "metrics_path": metrics_path}


def row_label(row: dict) -> str:
    """The method column of the table: "<method>" or "<method> (seed s)"."""
    return row["method"] if row["seed"] is None else f"{row['method']} (seed {row['seed']})"


def table_rows(metrics_paths: list[str], pretrained_folders: list[str] = ()) -> list[dict]:
    """One row per metrics file (and per pretrained student), sorted by task then method, before anything is
    measured. Raises FileNotFoundError naming every metrics file whose checkpoint folder is missing, ValueError on
    a duplicate."""
    rows = [describe_run(path) for path in metrics_paths] + [describe_pretrained(f) for f in pretrained_folders]
    missing = [f"{row['metrics_path']} names model folder {row['model_folder']}, which does not exist "
               f"(or has no config.json)" for row in rows
               if not os.path.isfile(os.path.join(row["model_folder"], "config.json"))]
    if missing:
        raise FileNotFoundError("; ".join(missing) + ". Run the stages that write these folders first "
                                "(or `dvc pull` them).")
    rows.sort(key=lambda row: (row["task"], row["method"], -1 if row["seed"] is None else row["seed"]))
    keys = [f"{row['task']}/{row_label(row)}" for row in rows]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"more than one metrics file for {', '.join(duplicates)}")
    return rows


def measure_model(folder: str, seq_len: int, threads: int, warmup: int, repeats: int) -> dict:
    """Parameters, FLOPs of one sequence and median CPU latency (ms) at batch 1 and 32 of a checkpoint folder;
    the model is freed before returning, so only one is in memory at a time."""
    from transformers import AutoConfig

    from workflow_scripts.core.counters import count_flops, count_parameters
    from workflow_scripts.core.latency import measure_latency
    from workflow_scripts.core.models import load_for_classification

    model = load_for_classification(folder, AutoConfig.from_pretrained(folder).num_labels).cpu()
    parameters = count_parameters(model)
    measured = {"parameters": parameters["total"], "encoder_parameters": parameters["encoder"],
                "flops_per_sequence": count_flops(model, batch_size=1, seq_len=seq_len)["total"]}
    for batch_size in LATENCY_BATCH_SIZES:
        latency = measure_latency(model, batch_size, seq_len, warmup=warmup, repeats=repeats, threads=threads)
        measured[f"latency_b{batch_size}_ms"] = 1000.0 * latency["median_s"]
        measured["threads"], measured["cpu_model"] = latency["threads"], latency["cpu_model"]
    del model
    gc.collect()
    return measured


def render_markdown(rows: list[dict], seq_len: int, warmup: int, repeats: int) -> str:
    cpu_model, threads = rows[0]["cpu_model"], rows[0]["threads"]
    lines = [f"Models measured one after the other on {cpu_model}, {threads} torch thread(s); sequence length "
             f"{seq_len}; latency = median of {repeats} forward passes after {warmup} warm-up passes.", "",
             f"| task | method | dev metric | params (M) | encoder params (M) | GFLOPs/sequence at {seq_len} | "
             "latency b=1 (ms) | latency b=32 (ms) | model folder |", "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['task']} | {row_label(row)} | {row['metric']} {row['dev_value']:.3f} | "
                     f"{row['parameters'] / 1e6:.2f} | {row['encoder_parameters'] / 1e6:.2f} | "
                     f"{row['flops_per_sequence'] / 1e9:.3f} | {row['latency_b1_ms']:.2f} | "
                     f"{row['latency_b32_ms']:.2f} | {row['model_folder']} |")
    return "\n".join(lines) + "\n"


def render_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def metrics_json(rows: list[dict]) -> dict:
    """DVC metrics: "<task>/<method>" -> dev metric, parameters, FLOPs per sequence, latencies in ms."""
    return {f"{row['task']}/{row_label(row)}": {
        f"dev_{row['metric']}": row["dev_value"], "parameters": row["parameters"],
        "flops": row["flops_per_sequence"], "latency_b1_ms": row["latency_b1_ms"],
        "latency_b32_ms": row["latency_b32_ms"]} for row in rows}


def main(argv=None) -> None:
    from tqdm.auto import tqdm

    from workflow_scripts.pipeline.cli import stage_parser, start_stage

    parser = stage_parser(__doc__)
    parser.add_argument("--metrics", nargs="+", required=True, help="metrics JSONs written by the evaluate stage")
    parser.add_argument("--pretrained", nargs="*", default=[],
                        help="distilled Bort student folders (kd_pretrain outputs with their metrics.json)")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per sequence for FLOPs and latency")
    parser.add_argument("--latency-threads", type=int, default=1, help="torch threads while timing")
    parser.add_argument("--latency-warmup", type=int, default=2, help="untimed forward passes before timing")
    parser.add_argument("--latency-repeats", type=int, default=5, help="timed forward passes (median reported)")
    parser.add_argument("--output-md", default=None, help="markdown table to write")
    parser.add_argument("--output-csv", default=None, help="CSV table to write")
    parser.add_argument("--output-json", default=None, help="DVC metrics JSON to write")
    args = parser.parse_args(argv)
    if not (args.output_md or args.output_csv or args.output_json):
        parser.error("nothing to write: give at least one of --output-md, --output-csv, --output-json")
    logger, _ = start_stage(args)
    try:
        rows = table_rows(args.metrics, args.pretrained)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    for row in tqdm(rows, desc="measure models"):
        row.update(measure_model(row["model_folder"], args.seq_len, args.latency_threads, args.latency_warmup,
                                 args.latency_repeats))
        logger.info("%s", metrics_json([row]))
    if args.output_md:
        write_text(args.output_md, render_markdown(rows, args.seq_len, args.latency_warmup, args.latency_repeats))
    if args.output_csv:
        write_text(args.output_csv, render_csv(rows))
    if args.output_json:
        write_json(args.output_json, metrics_json(rows))


if __name__ == "__main__":
    main()
