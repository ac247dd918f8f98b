"""model_table on two tiny saved classifiers laid out as models/<task>/<method>/...: rows, counts against the real
tensors, FLOPs ordering, latencies, the DVC metrics JSON, and the error for a missing checkpoint folder."""
import csv
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from workflow_scripts.stages import model_table
from workflow_scripts.stages.model_table import main, table_rows
from workflow_scripts.core.models import minilm_folder

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
    main(["--metrics", *metrics, "--seq-len", "16", "--latency-repeats", "2", "--latency-warmup", "1",
          "--output-md", "results/table.md", "--output-csv", "results/table.csv",
          "--output-json", "results/table.json"])

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
        main(["--metrics", *metrics, missing, "--output-json", "results/table.json"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert missing in error and f"models/{TASK}/voita/seed_1/finetune_final" in error
    assert "does not exist" in error
    assert not (root / "results").exists()
