"""model_table on two tiny saved classifiers laid out as models/<task>/<method>/...: rows, counts against the real
tensors, FLOPs ordering, latencies, the DVC metrics JSON, the tables against hand-written ones, and the error for a
missing checkpoint folder."""
import csv
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from workflow_scripts.core.models import minilm_folder
from workflow_scripts.reports import model_table
from workflow_scripts.reports.model_table import CostConfig, model_table_report, table_rows
from workflow_scripts.stages.model_table import main

TASK = "gen_mrpc"


def save_classifier(root: Path, folder: str, layers: int, num_labels: int = 2) -> int:
    """Save a tiny BERT classifier (hidden 32) with MiniLM's tokenizer under root/folder; its tensor sizes."""
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder())
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                        num_labels=num_labels)
    model = BertForSequenceClassification(config)
    model.save_pretrained(root / folder)
    tokenizer.save_pretrained(root / folder)
    return sum(p.numel() for p in model.parameters())


def write_evaluation(root: Path, metrics_path: str, model_folder: str, accuracy: float) -> str:
    """An evaluate-stage metrics JSON (input data with a known dev value), written by hand: evaluating for real
    needs a tokenized task."""
    evaluation = {"task": TASK, "model": model_folder, "headline_metric": "accuracy",
                  "validation": {"num_examples": 10, "accuracy": accuracy, "f1": 0.5},
                  "test": {"num_examples": 10, "accuracy": 0.1, "f1": 0.1}}
    (root / metrics_path).parent.mkdir(parents=True, exist_ok=True)
    (root / metrics_path).write_text(json.dumps(evaluation))
    return metrics_path


@pytest.fixture()
def workspace(tmp_path, monkeypatch):
    """A working directory with models/gen_mrpc/base (2 layers) and models/gen_mrpc/auber/seed_0 (1 layer)."""
    monkeypatch.chdir(tmp_path)
    base_folder, pruned_folder = f"models/{TASK}/base/finetune_initial", f"models/{TASK}/auber/seed_0/finetune_final"
    sizes = {"base": save_classifier(tmp_path, base_folder, layers=2),
             "auber (seed 0)": save_classifier(tmp_path, pruned_folder, layers=1, num_labels=3)}
    metrics = [write_evaluation(tmp_path, f"models/{TASK}/auber/seed_0/evaluate/metrics.json", pruned_folder, 0.625),
               write_evaluation(tmp_path, f"models/{TASK}/base/evaluate/metrics.json", base_folder, 0.75)]
    return tmp_path, metrics, sizes


def test_table_of_two_models(workspace):
    root, metrics, sizes = workspace
    main(["--metrics", *metrics, "--seq-len", "16", "--latency-threads", "1", "--latency-repeats", "2",
          "--latency-warmup", "1", "--output-md", "results/table.md", "--output-csv", "results/table.csv",
          "--output-json", "results/table.json", "--output-html", "results/table.html"])

    table = json.loads((root / "results/table.json").read_text())
    assert list(table) == [f"{TASK}/auber (seed 0)", f"{TASK}/base"]  # sorted by method
    for key, entry in table.items():
        assert set(entry) == {"dev_accuracy", "parameters", "flops", "latency_b1_ms", "latency_b32_ms"}
        assert entry["parameters"] == sizes[key.split("/")[1]]
        assert entry["latency_b1_ms"] > 0 and entry["latency_b32_ms"] > 0
    assert table[f"{TASK}/base"]["dev_accuracy"] == 0.75
    assert table[f"{TASK}/auber (seed 0)"]["dev_accuracy"] == 0.625
    assert 0 < table[f"{TASK}/auber (seed 0)"]["flops"] < table[f"{TASK}/base"]["flops"]

    with open(root / "results/table.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["method"], row["seed"]) for row in rows] == [("auber", "0"), ("base", "")]
    assert int(rows[1]["encoder_parameters"]) < int(rows[1]["parameters"])

    markdown = (root / "results/table.md").read_text()
    assert "1 torch thread(s)" in markdown and "GFLOPs/sequence at 16" in markdown
    assert f"| {TASK} | base | accuracy 0.750 |" in markdown
    assert f"| {TASK} | auber (seed 0) | accuracy 0.625 |" in markdown
    page = (root / "results/table.html").read_text()
    assert "<table" in page and "auber (seed 0)" in page and "accuracy 0.750" in page


ROWS = [{"task": TASK, "method": "auber", "seed": 0, "metric": "accuracy", "dev_value": 0.625, "parameters": 1500000,
         "encoder_parameters": 1000000, "flops_per_sequence": 2500000000, "latency_b1_ms": 1.234,
         "latency_b32_ms": 20.5, "model_folder": "models/a", "metrics_path": "models/a.json", "threads": 1,
         "cpu_model": "a CPU"},
        {"task": TASK, "method": "base", "seed": None, "metric": "accuracy", "dev_value": 0.75, "parameters": 2000000,
         "encoder_parameters": 1500000, "flops_per_sequence": 5000000000, "latency_b1_ms": 2.5,
         "latency_b32_ms": 41.0, "model_folder": "models/b", "metrics_path": "models/b.json", "threads": 1,
         "cpu_model": "a CPU"}]


def test_tables_of_measured_rows_equal_hand_written_ones():
    cost = CostConfig(seq_len=16, latency_threads=1, latency_warmup=1, latency_repeats=2)
    outputs = model_table_report(ROWS, cost, markdown_path="t.md", csv_path="t.csv", json_path="t.json")
    assert set(outputs) == {"t.md", "t.csv", "t.json"}                      # only what was asked for
    assert outputs["t.csv"] == (
        "task,method,seed,metric,dev_value,parameters,encoder_parameters,flops_per_sequence,latency_b1_ms,"
        "latency_b32_ms,model_folder,metrics_path\n"
        f"{TASK},auber,0,accuracy,0.625,1500000,1000000,2500000000,1.234,20.5,models/a,models/a.json\n"
        f"{TASK},base,,accuracy,0.75,2000000,1500000,5000000000,2.5,41.0,models/b,models/b.json\n")
    assert outputs["t.md"].splitlines()[4:] == [
        f"| {TASK} | auber (seed 0) | accuracy 0.625 | 1.50 | 1.00 | 2.500 | 1.23 | 20.50 | models/a |",
        f"| {TASK} | base | accuracy 0.750 | 2.00 | 1.50 | 5.000 | 2.50 | 41.00 | models/b |"]
    assert outputs["t.md"].startswith("Models measured one after the other on a CPU, 1 torch thread(s); sequence "
                                      "length 16; latency = median of 2 forward passes after 1 warm-up passes.")
    assert outputs["t.json"][f"{TASK}/base"] == {"dev_accuracy": 0.75, "parameters": 2000000, "flops": 5000000000,
                                                  "latency_b1_ms": 2.5, "latency_b32_ms": 41.0}


def test_mnli_style_dev_split_is_read(workspace):
    root, metrics, _ = workspace
    evaluation = json.loads((root / metrics[1]).read_text())
    evaluation["validation_matched"] = evaluation.pop("validation") | {"accuracy": 0.5}
    (root / metrics[1]).write_text(json.dumps(evaluation))
    assert [row["dev_value"] for row in table_rows(metrics)] == [0.625, 0.5]


def test_missing_model_folder_is_one_clear_error(workspace, capsys, monkeypatch):
    root, metrics, _ = workspace

    def measure_nothing(*args, **kwargs):
        raise AssertionError("a model was measured before the missing folder was reported")

    monkeypatch.setattr(model_table, "measure_model", measure_nothing)
    missing = write_evaluation(root, f"models/{TASK}/voita/seed_1/evaluate/metrics.json",
                               f"models/{TASK}/voita/seed_1/finetune_final", 0.5)
    with pytest.raises(SystemExit) as exit_info:
        main(["--metrics", *metrics, missing, "--output-json", "results/table.json", "--seq-len", "16",
              "--latency-threads", "1", "--latency-warmup", "1", "--latency-repeats", "2"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert missing in error and f"models/{TASK}/voita/seed_1/finetune_final" in error
    assert "does not exist" in error
    assert not (root / "results").exists()
