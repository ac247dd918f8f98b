"""compare_runs: exact comparison of two runs' metrics (timings and checksums aside) and checkpoint hashes."""
import json
from pathlib import Path

from workflow_scripts.tools.compare_runs import compare_runs, main


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def make_run(root: Path, score: float, latency: float, weights_digest: str) -> Path:
    write(root / "models/t/m/evaluate/metrics.json", json.dumps(
        {"checksum": f"sha256:{latency}", "validation": {"accuracy": score, "num_examples": 30},
         "cost": {"latency_b1_ms": latency, "search_seconds": latency * 2}}))
    write(root / "models/t/m/finetune/checksums.sha256",
          f"{weights_digest}  model.safetensors\n{latency}  training_log.json\n")
    return root


def test_runs_that_differ_only_in_timings_are_identical(tmp_path):
    a = make_run(tmp_path / "a", 0.75, 12.0, "abc")
    b = make_run(tmp_path / "b", 0.75, 15.5, "abc")
    result = compare_runs(a, b, ["models"])
    assert (result.identical, result.differences, result.only_in_one) == (2, [], 0)
    assert main([str(a), str(b), "--under", "models"]) == 0


def test_a_metric_off_in_the_last_bit_and_different_weights_are_reported(tmp_path, capsys):
    a = make_run(tmp_path / "a", 0.75, 12.0, "abc")
    b = make_run(tmp_path / "b", 0.7500000000000001, 12.0, "abd")
    write(b / "models/t/extra/metrics.json", "{}")
    result = compare_runs(a, b, ["models"])
    assert result.identical == 0 and result.only_in_one == 1
    assert result.differences == [
        "models/t/m/evaluate/metrics.json: validation.accuracy: 0.75 != 0.7500000000000001",
        "models/t/m/finetune/checksums.sha256: model.safetensors differs"]
    assert main([str(a), str(b), "--under", "models"]) == 1
    assert "2 differences" in capsys.readouterr().out
