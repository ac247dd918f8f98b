"""Corrupt artifacts: a truncated or byte-flipped model.safetensors, metrics.json or tokenized dataset gives one
error naming the file, never a silent wrong number; folders and metrics written before checksums still load."""
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from workflow_scripts.core.io_utils import CHECKSUM_FILE, CorruptArtifactError, read_json, verify_checksums, write_json
from workflow_scripts.core.models import load_for_classification, save_checkpoint
from workflow_scripts.core.surgery import load_pruned, prune_heads, save_pruned
from workflow_repo import command_env


def truncate(path: Path, keep: float = 0.5) -> None:
    path.write_bytes(path.read_bytes()[:int(path.stat().st_size * keep)])


def flip_byte(path: Path, position: int) -> None:
    """XOR one bit of the byte at position (negative: from the end): the file keeps its length and structure."""
    content = bytearray(path.read_bytes())
    content[position] ^= 0x01
    path.write_bytes(bytes(content))


def safetensors_data_start(path: Path) -> int:
    return 8 + int.from_bytes(path.read_bytes()[:8], "little")


@pytest.fixture
def checkpoint(tiny_model_folder, tmp_path) -> Path:
    """A pruned sequence classifier (two heads of layer 0 gone) written by save_pruned, and its state dict."""
    from transformers import AutoTokenizer

    model = load_for_classification(str(tiny_model_folder), num_labels=2)
    prune_heads(model, {0: [1, 2]})
    folder = tmp_path / "pruned"
    save_pruned(model, folder, AutoTokenizer.from_pretrained(tiny_model_folder))
    return folder


@pytest.fixture
def unpruned_checkpoint(tiny_model_folder, tmp_path) -> Path:
    """A plain sequence classifier written by save_checkpoint: it loads through from_pretrained."""
    from transformers import AutoTokenizer

    folder = tmp_path / "plain"
    save_checkpoint(load_for_classification(str(tiny_model_folder), num_labels=2),
                    AutoTokenizer.from_pretrained(tiny_model_folder), str(folder))
    return folder


def test_a_written_folder_lists_every_file_in_sha256sum_format(checkpoint):
    listed = {line.split("  ")[1] for line in (checkpoint / CHECKSUM_FILE).read_text().splitlines()}
    assert listed == {path.name for path in checkpoint.iterdir()} - {CHECKSUM_FILE}
    # the format of coreutils: `sha256sum -c checksums.sha256` in the folder checks it by hand
    result = subprocess.run(["sha256sum", "--check", "--quiet", CHECKSUM_FILE], cwd=checkpoint, capture_output=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("fixture", ["checkpoint", "unpruned_checkpoint"])
@pytest.mark.parametrize("damage", ["truncated", "tensor byte flipped", "header byte flipped"])
def test_a_damaged_model_safetensors_is_one_error_naming_it(request, fixture, damage):
    folder = request.getfixturevalue(fixture)
    weights = folder / "model.safetensors"
    before = load_pruned(folder)
    if damage == "truncated":
        truncate(weights)
    elif damage == "tensor byte flipped":
        flip_byte(weights, (safetensors_data_start(weights) + weights.stat().st_size) // 2)
    else:
        flip_byte(weights, 20)  # inside the JSON header: a key or an offset
    with pytest.raises(CorruptArtifactError) as error:
        load_pruned(folder)
    assert str(weights) in str(error.value) and "corrupt" in str(error.value)
    with pytest.raises(CorruptArtifactError, match="model.safetensors"):
        load_for_classification(str(folder), num_labels=2)  # what evaluate and the reports call
    assert before is not None


def test_without_checksums_a_flipped_tensor_would_load_silently(checkpoint):
    """Why the checksum: safetensors itself accepts a changed byte inside a tensor."""
    weights = checkpoint / "model.safetensors"
    before = {name: tensor.clone() for name, tensor in load_pruned(checkpoint).state_dict().items()}
    flip_byte(weights, (safetensors_data_start(weights) + weights.stat().st_size) // 2)
    (checkpoint / CHECKSUM_FILE).unlink()
    after = load_pruned(checkpoint).state_dict()
    assert any(not torch.equal(before[name], after[name]) for name in before)


def test_a_folder_written_before_checksums_loads_with_a_warning_and_is_still_checked_for_truncation(
        checkpoint, caplog):
    (checkpoint / CHECKSUM_FILE).unlink()
    with caplog.at_level(logging.WARNING, logger="workflow_scripts"):
        load_pruned(checkpoint)
    assert f"{checkpoint}: no {CHECKSUM_FILE}" in caplog.text
    truncate(checkpoint / "model.safetensors", keep=0.9)
    with pytest.raises(CorruptArtifactError, match="safetensors header describes"):
        load_pruned(checkpoint)


def test_a_file_listed_but_missing_and_a_damaged_checksum_file_are_errors(checkpoint):
    (checkpoint / "tokenizer.json").unlink()
    with pytest.raises(CorruptArtifactError, match="tokenizer.json: missing"):
        verify_checksums(checkpoint)
    (checkpoint / CHECKSUM_FILE).write_text("not a checksum line\n")
    with pytest.raises(CorruptArtifactError, match=f"{CHECKSUM_FILE}: line 1"):
        verify_checksums(checkpoint)


# ---- metrics.json -----------------------------------------------------------------------------------------------
METRICS = {"task": "gen_cola", "headline_metric": "matthews_correlation",
           "validation": {"matthews_correlation": 0.3291, "accuracy": 0.7567, "num_examples": 300}}


def test_metrics_json_round_trips_and_carries_its_checksum(tmp_path):
    path = tmp_path / "evaluate" / "metrics.json"
    write_json(str(path), METRICS)
    assert json.loads(path.read_text())["checksum"].startswith("sha256:")
    assert read_json(str(path)) == METRICS  # the checksum is removed from what readers get
    write_json(str(path), read_json(str(path)) | {"extra": 1})  # rewriting what was read re-seals it
    assert read_json(str(path)) == METRICS | {"extra": 1}


@pytest.mark.parametrize("damage", ["truncated", "digit changed", "key changed"])
def test_a_damaged_metrics_json_is_one_error_naming_it(tmp_path, damage):
    path = tmp_path / "metrics.json"
    write_json(str(path), METRICS)
    text = path.read_text()
    if damage == "truncated":
        truncate(path)
    elif damage == "digit changed":  # still valid JSON: 0.3291 -> 0.3293, a silent wrong number without the checksum
        path.write_text(text.replace("0.3291", "0.3293"))
    else:
        path.write_text(text.replace('"accuracy"', '"accuracz"'))
    with pytest.raises(CorruptArtifactError) as error:
        read_json(str(path))
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_the_reports_read_metrics_through_the_check(tmp_path):
    from workflow_scripts.reports.comparison import read_runs
    from workflow_scripts.reports.model_table import table_rows

    path = tmp_path / "models/gen_cola/base/evaluate/metrics.json"
    write_json(str(path), {**METRICS, "model": "models/gen_cola/base/finetune_initial"})
    assert read_runs([str(path)], [], [])[0].task == "gen_cola"
    path.write_text(path.read_text().replace("0.3291", "0.9291"))
    for read in (lambda: read_runs([str(path)], [], []), lambda: table_rows([str(path)])):
        with pytest.raises(CorruptArtifactError, match=str(path)):
            read()


def test_metrics_written_before_checksums_load_with_a_warning(tmp_path, caplog):
    path = tmp_path / "old_metrics.json"
    path.write_text(json.dumps(METRICS))
    with caplog.at_level(logging.WARNING, logger="workflow_scripts"):
        assert read_json(str(path)) == METRICS
    assert "no checksum" in caplog.text


# ---- the tokenized dataset --------------------------------------------------------------------------------------
@pytest.fixture
def tokenized(tiny_model_folder, tmp_path) -> Path:
    from workflow_scripts.stages import prepare_task, tokenize_task

    prepare_task.main(["--task", "gen_cola", "--output", str(tmp_path / "raw"), "--seed", "0",
                       "--train", "40", "--validation", "12", "--test", "12"])
    tokenize_task.main(["--raw", str(tmp_path / "raw"), "--tokenizer", str(tiny_model_folder),
                        "--output", str(tmp_path / "tokenized"), "--max-length", "16"])
    return tmp_path / "tokenized"


@pytest.mark.parametrize("damage", ["truncated", "byte flipped"])
def test_a_damaged_tokenized_dataset_is_one_error_naming_the_file(tokenized, damage):
    from workflow_scripts.data.tokenized import load_tokenized

    arrow = sorted((tokenized / "train").glob("*.arrow"))[0]
    dataset_dict, _ = load_tokenized(str(tokenized))
    original = dataset_dict["train"]["input_ids"]
    del dataset_dict
    truncate(arrow, 0.7) if damage == "truncated" else flip_byte(arrow, -200)
    with pytest.raises(CorruptArtifactError) as error:
        load_tokenized(str(tokenized))
    assert str(arrow) in str(error.value)
    assert original


def test_the_bort_corpus_is_checked_too(tiny_model_folder, tmp_path):
    from workflow_scripts.data.corpus import load_corpus
    from workflow_scripts.stages import prepare_corpus

    output = tmp_path / "corpus"
    prepare_corpus.main(["--tokenizer", str(tiny_model_folder), "--output", str(output), "--source", "generated",
                         "--text-column", "text", "--hub-config", "null", "--max-documents", "null",
                         "--generated-sentences", "100", "--max-length", "16", "--heldout-fraction", "0.1",
                         "--seed", "0"])
    flip_byte(output / "train.safetensors", -3)
    with pytest.raises(CorruptArtifactError, match="train.safetensors"):
        load_corpus(str(output))


# ---- a stage: one line naming the file, no traceback ------------------------------------------------------------
def test_a_stage_reading_a_corrupt_checkpoint_fails_with_one_line_naming_it(unpruned_checkpoint, tokenized, tmp_path):
    weights = unpruned_checkpoint / "model.safetensors"
    flip_byte(weights, -5)
    log = tmp_path / "evaluate.log"
    result = subprocess.run([sys.executable, "-m", "workflow_scripts.stages.evaluate", "--model",
                             str(unpruned_checkpoint), "--data", str(tokenized), "--output",
                             str(tmp_path / "metrics.json"), "--batch-size", "8", "--threads", "1",
                             "--log-file", str(log)], env=command_env(), capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode != 0
    failure = [line for line in log.read_text().splitlines() if "stage failed" in line]
    assert len(failure) == 1 and str(weights) in failure[0] and "corrupt" in failure[0]
    assert "Traceback" not in result.stderr and not (tmp_path / "metrics.json").exists()
