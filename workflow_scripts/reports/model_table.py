"""One table of every model the pipeline produces, side by side: the task's headline metric on dev (from the
evaluate stage's metrics JSON), parameters (total and encoder), FLOPs per sequence, and CPU latency at batch 1 and
batch 32, all measured one after the other in one process so that their latencies compare.

The method of a row comes from the metrics file's place in the layout: models/<task>/<method>/evaluate/... is
<method>, models/<task>/<method>/seed_<s>/evaluate/... is "<method> (seed s)". Its model is the checkpoint folder
the JSON names ("model", relative to the working directory unless absolute). A distilled Bort student
(kd_pretrain's folder) has no task yet: its metric is the held-out MLM accuracy on the pretraining corpus.
FLOPs follow workflow_scripts.core.counters (encoder and pooler matrix products, task head not counted).
"""
from __future__ import annotations

import gc
import html
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from workflow_scripts.core.io_utils import read_json
from workflow_scripts.reports.render import csv_text, html_page, html_table, markdown_table

DEV_SPLITS = ("validation_matched", "validation")  # MNLI reports validation_matched; every other task validation
LATENCY_BATCH_SIZES = (1, 32)
SEED_FOLDER = re.compile(r"^seed_(\d+)$")
CSV_COLUMNS = ["task", "method", "seed", "metric", "dev_value", "parameters", "encoder_parameters",
               "flops_per_sequence", "latency_b1_ms", "latency_b32_ms", "model_folder", "metrics_path"]
logger = logging.getLogger(__name__)


@dataclass
class CostConfig:
    """How models are measured (params.yaml: evaluate.cost)."""
    seq_len: int = field(metadata={"help": "tokens per sequence for FLOPs and latency"})
    latency_threads: int = field(metadata={"help": "torch threads while timing"})
    latency_warmup: int = field(metadata={"help": "untimed forward passes before timing"})
    latency_repeats: int = field(metadata={"help": "timed forward passes (median reported)"})


# ---- which models ------------------------------------------------------------------------------------------------

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
    """A distilled Bort student: its metric is the held-out MLM accuracy on the pretraining corpus; it is measured
    as the sequence classifier it becomes when fine-tuned."""
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


# ---- measuring ---------------------------------------------------------------------------------------------------

def measure_model(folder: str, cost: CostConfig) -> dict:
    """Parameters, FLOPs of one sequence and median CPU latency (ms) at batch 1 and 32 of a checkpoint folder;
    the model is freed before returning, so only one is in memory at a time."""
    from transformers import AutoConfig

    from workflow_scripts.core.counters import count_flops, count_parameters
    from workflow_scripts.core.latency import measure_latency
    from workflow_scripts.core.models import load_for_classification

    model = load_for_classification(folder, AutoConfig.from_pretrained(folder).num_labels).cpu()
    parameters = count_parameters(model)
    measured = {"parameters": parameters["total"], "encoder_parameters": parameters["encoder"],
                "flops_per_sequence": count_flops(model, batch_size=1, seq_len=cost.seq_len)["total"]}
    for batch_size in LATENCY_BATCH_SIZES:
        latency = measure_latency(model, batch_size, cost.seq_len, warmup=cost.latency_warmup,
                                  repeats=cost.latency_repeats, threads=cost.latency_threads)
        measured[f"latency_b{batch_size}_ms"] = 1000.0 * latency["median_s"]
        measured["threads"], measured["cpu_model"] = latency["threads"], latency["cpu_model"]
    del model
    gc.collect()
    return measured


def measure_all(rows: list[dict], cost: CostConfig, progress: bool = True) -> list[dict]:
    """Every row with its model's measurements, one model after the other on CPU."""
    from tqdm.auto import tqdm

    measured = []
    for row in tqdm(rows, desc="measure models", disable=not progress):
        measured.append({**row, **measure_model(row["model_folder"], cost)})
        logger.info("%s", metrics_json(measured[-1:]))
    return measured


# ---- the table ---------------------------------------------------------------------------------------------------

def model_table(rows: list[dict]) -> pd.DataFrame:
    """table.csv: one row per model (seed empty where the model has none)."""
    table = pd.DataFrame(rows, columns=CSV_COLUMNS)
    table["seed"] = table["seed"].astype("Int64")  # integers with a missing value, not floats
    return table


def display_table(rows: list[dict], seq_len: int) -> pd.DataFrame:
    return pd.DataFrame([{
        "task": row["task"], "method": row_label(row), "dev metric": f"{row['metric']} {row['dev_value']:.3f}",
        "params (M)": f"{row['parameters'] / 1e6:.2f}", "encoder params (M)": f"{row['encoder_parameters'] / 1e6:.2f}",
        f"GFLOPs/sequence at {seq_len}": f"{row['flops_per_sequence'] / 1e9:.3f}",
        "latency b=1 (ms)": f"{row['latency_b1_ms']:.2f}", "latency b=32 (ms)": f"{row['latency_b32_ms']:.2f}",
        "model folder": row["model_folder"]} for row in rows])


def measurement_note(rows: list[dict], cost: CostConfig) -> str:
    return (f"Models measured one after the other on {rows[0]['cpu_model']}, {rows[0]['threads']} torch thread(s); "
            f"sequence length {cost.seq_len}; latency = median of {cost.latency_repeats} forward passes after "
            f"{cost.latency_warmup} warm-up passes.")


def metrics_json(rows: list[dict]) -> dict:
    """DVC metrics: "<task>/<method>" -> dev metric, parameters, FLOPs per sequence, latencies in ms."""
    return {f"{row['task']}/{row_label(row)}": {
        f"dev_{row['metric']}": row["dev_value"], "parameters": row["parameters"],
        "flops": row["flops_per_sequence"], "latency_b1_ms": row["latency_b1_ms"],
        "latency_b32_ms": row["latency_b32_ms"]} for row in rows}


def model_table_report(rows: list[dict], cost: CostConfig, markdown_path: str | None = None,
                       csv_path: str | None = None, json_path: str | None = None,
                       html_path: str | None = None) -> dict[str, str | dict]:
    """{path: content} for each output asked for: the table as markdown, CSV and a page, and the DVC metrics."""
    note, display = measurement_note(rows, cost), display_table(rows, cost.seq_len)
    page = html_page("Every model, measured side by side", [f"<p>{html.escape(note)}</p>", html_table(display)])
    outputs = {markdown_path: f"{note}\n\n{markdown_table(display)}\n", csv_path: csv_text(model_table(rows)),
               json_path: metrics_json(rows), html_path: page}
    return {path: content for path, content in outputs.items() if path}
