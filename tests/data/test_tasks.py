"""Task data: the GLUE path on a local copy in the hub's layout, generated tasks, and their tokenization."""
import json

import pytest
from transformers import AutoTokenizer

from workflow_scripts.stages import prepare_task
from workflow_scripts.stages import tokenize_task
from workflow_scripts.data.tokenized import load_tokenized
from workflow_scripts.core.evaluation import splits_to_report
from workflow_scripts.data.sources import glue_split_files, load_glue_task
from workflow_scripts.data.tasks import TASKS, get_task


def test_glue_task_reads_the_hub_layout(glue_folder):
    rows = load_glue_task(get_task("mrpc"), str(glue_folder))
    assert set(rows) == {"train", "validation", "test"}
    assert set(rows["train"][0]) == {"sentence1", "sentence2", "label", "idx"}
    assert {row["label"] for row in rows["test"]} == {-1}   # GLUE hides test labels
    assert [row["idx"] for row in rows["validation"]] == list(range(16))
    assert set(load_glue_task(get_task("cola"), str(glue_folder))["train"][0]) == {"sentence", "label", "idx"}


def test_missing_glue_task_names_the_expected_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="wnli"):
        glue_split_files(str(tmp_path), "wnli")


def test_unknown_task_lists_known_ones():
    with pytest.raises(KeyError, match="gen_mrpc"):
        get_task("gen_qqp")


def test_glue_hub_offline_fails_with_an_actionable_message():
    with pytest.raises(RuntimeError, match="data.glue_source"):
        load_glue_task(get_task("rte"), "nyu-mll/glue-not-cached")


def test_prepare_and_tokenize_glue_task(glue_folder, tiny_model_folder, tmp_path):
    prepare_task.main(["--task", "rte", "--output", str(tmp_path / "raw"), "--glue-source", str(glue_folder)])
    task = json.loads((tmp_path / "raw" / "task.json").read_text())
    assert task["split_sizes"] == {"train": 48, "validation": 16, "test": 16} and task["num_labels"] == 2
    tokenize_task.main(["--raw", str(tmp_path / "raw"), "--tokenizer", str(tiny_model_folder),
                        "--output", str(tmp_path / "tok"), "--max-length", "12"])
    dataset_dict, spec = load_tokenized(str(tmp_path / "tok"))
    assert spec["name"] == "rte"
    assert set(dataset_dict["train"].column_names) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    assert max(len(ids) for ids in dataset_dict["train"]["input_ids"]) <= 12
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_folder)
    first = json.loads((tmp_path / "raw" / "train.jsonl").read_text().splitlines()[0])
    expected = tokenizer(first["sentence1"], first["sentence2"], truncation=True, max_length=12)["input_ids"]
    assert dataset_dict["train"][0]["input_ids"] == expected
    assert splits_to_report(dataset_dict, spec) == ["validation"]   # hidden test labels are never scored


@pytest.mark.parametrize("task", [name for name, spec in TASKS.items() if spec.source == "generated"])
def test_generated_tasks_prepare_in_glue_schema(task, tmp_path):
    spec = get_task(task)
    prepare_task.main(["--task", task, "--output", str(tmp_path / "raw"), "--seed", "0",
                       "--train", "40", "--validation", "12", "--test", "12"])
    rows = [json.loads(line) for line in (tmp_path / "raw" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 40 and set(rows[0]) == {*spec.text_columns, "label", "idx"}
    assert {row["label"] for row in rows} == {0, 1}
