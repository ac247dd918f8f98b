"""The reports that score checkpoints on dev, on a tiny saved classifier and a tokenized fixture task: a chain's
per-layer report (report_layers) and Agora's rounds (agora_rounds), through their stage command lines."""
import json

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from workflow_scripts.core.models import minilm_folder
from workflow_scripts.core.surgery import prune_heads, save_pruned
from workflow_scripts.stages import agora_report, report_layers

TASK = {"name": "gen_mrpc", "num_labels": 2, "metrics": ["accuracy", "f1"], "dev_split": "validation"}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """data/ (a tokenized task: 16 dev examples), start/ (a 2-layer classifier, 2 heads per layer) and pruned/ (the
    same with head 1 of layer 0 removed)."""
    import datasets

    root = tmp_path_factory.mktemp("reports")
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder())
    texts = [f"example number {index} is {'good' if index % 2 else 'bad'}" for index in range(16)]
    encoded = tokenizer(texts, truncation=True, max_length=16)
    split = datasets.Dataset.from_dict({**encoded, "labels": [index % 2 for index in range(16)]})
    datasets.DatasetDict({"train": split, "validation": split}).save_to_disk(root / "data")
    (root / "data" / "task.json").write_text(json.dumps(TASK))
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, num_labels=2))
    model.save_pretrained(root / "start")
    tokenizer.save_pretrained(root / "start")
    prune_heads(model, {0: [1]})
    save_pruned(model, root / "pruned", tokenizer)
    return root


def test_a_chains_report_has_a_row_per_step_and_the_heads_pruned(workspace, tmp_path):
    pruned = []
    for layer, heads in ((0, [1]), (1, [])):
        folder = tmp_path / f"layer_{layer}" / "prune"
        folder.mkdir(parents=True)
        (folder / "search_log.json").write_text(json.dumps({
            "layer": layer, "pruned_head_ids": heads, "mini_dev_score_before": 0.5, "mini_dev_score_after": 0.5,
            "seconds": 1.25, "method": "auber", "seed": 0}))
        pruned.append(str(folder))
    finetuned = [str(workspace / "pruned")] * 2
    report_layers.main(["--data", str(workspace / "data"), "--initial", str(workspace / "start"),
                        "--pruned", *pruned, "--finetuned", *finetuned, "--final", str(workspace / "pruned"),
                        "--output-plot", str(tmp_path / "dev_by_layer.csv"),
                        "--output-metrics", str(tmp_path / "layerwise_metrics.json"), "--batch-size", "8"])
    rows = (tmp_path / "dev_by_layer.csv").read_text().splitlines()
    assert rows[0] == "step,layer,heads_pruned_in_layer,heads_pruned_total,metric,dev_score"
    assert [row.split(",")[:5] for row in rows[1:]] == [
        ["0", "", "0", "0", "accuracy"], ["1", "0", "1", "1", "accuracy"], ["2", "1", "0", "1", "accuracy"],
        ["3", "final", "0", "1", "accuracy"]]
    summary = json.loads((tmp_path / "layerwise_metrics.json").read_text())
    assert summary["heads_pruned_total"] == 1 and summary["heads_pruned_by_layer"] == {"0": [1], "1": []}
    assert summary["heads_per_layer_before"] == [2, 2] and summary["heads_per_layer_after"] == [1, 2]
    assert summary["parameters_after"] < summary["parameters_before"]
    assert summary["dev_after"]["num_examples"] == 16 and summary["search_seconds_total"] == 2.5
    assert float(rows[-1].split(",")[-1]) == summary["dev_after"]["accuracy"]
    with pytest.raises(SystemExit):                                            # one fine-tune for two layers
        report_layers.main(["--data", "d", "--initial", "i", "--pruned", *pruned, "--finetuned", finetuned[0],
                            "--final", "f", "--output-plot", "p", "--output-metrics", "m", "--batch-size", "8"])


def test_agoras_rounds_are_scored_on_dev_and_plotted(workspace, tmp_path):
    agora = tmp_path / "agora"
    for index in range(2):
        (agora / "rounds" / f"round_{index:02d}").mkdir(parents=True)
        (agora / "rounds" / f"round_{index:02d}" / "model").symlink_to(workspace / "start")
    (agora / "agora.json").write_text(json.dumps({"rounds": [
        {"index": 0, "replay_round": 0, "train_size": 16, "added": 4, "scores": {"a": 0.5, "b": 0.25},
         "best_set": "a", "pick_score": 0.4},
        {"index": 1, "replay_round": 0, "train_size": 20, "added": 0, "scores": {"a": 0.75}, "best_set": "a",
         "pick_score": 0.45}]}))
    plots = [str(tmp_path / "rounds.png"), str(tmp_path / "rounds.svg")]
    agora_report.main(["rounds", "--agora", str(agora), "--data", str(workspace / "data"),
                       "--dev-output", str(tmp_path / "dev.csv"), "--size-output", str(tmp_path / "size.csv"),
                       "--plots", *plots, "--batch-size", "8"])
    dev = (tmp_path / "dev.csv").read_text().splitlines()
    assert dev[0] == "round,replay_round,train_size,sets,best_set,selection_score,pick_score,dev_score"
    assert [line.split(",")[:7] for line in dev[1:]] == [["0", "0", "16", "2", "a", "0.5", "0.4"],
                                                         ["1", "0", "20", "1", "a", "0.75", "0.45"]]
    assert dev[1].split(",")[7] == dev[2].split(",")[7]                        # the same model each round
    assert (tmp_path / "size.csv").read_text() == "round,train_size,added\n0,16,4\n1,20,0\n"
    assert all((tmp_path / name).stat().st_size > 0 for name in ("rounds.png", "rounds.svg"))
