"""The kill-and-resume drill, short: one trial of `dvc repro` killed with every process under it, on the tiny
workflow's first evaluation (data, the initial fine-tune, its evaluation). A SIGKILLed `snakemake` and its plain
rerun are test_hard_kill.py's (the drill's snakemake front end kills the same way). The full drill (10 trials of
each front end) is `python -m workflow_scripts.tools.kill_drill`; its counts are in docs/recovery.md."""
import json

import pytest

from conftest import REPO_ROOT
from workflow_scripts.tools.kill_drill import main as kill_drill

pytestmark = pytest.mark.e2e
TARGET = "evaluate-gen_mrpc-base"


def test_a_dvc_repro_killed_at_a_random_moment_recovers_by_rerunning_to_the_reference_outputs(tmp_path, capsys):
    output = tmp_path / "drill.json"
    status = kill_drill(["--trials", "1", "--front-end", "dvc", "--target", TARGET,
                         "--config", str(REPO_ROOT / "tests/configs/tiny.yaml"), "--workdir", str(tmp_path / "work"),
                         "--seed", "3", "--output", str(output)])
    printed = capsys.readouterr()
    assert status == 0, printed.out + printed.err
    drill = json.loads(output.read_text())
    [trial] = drill["trials"]
    assert trial["passed"] and trial["rerun_returncode"] == 0 and trial["differences"] == 0
    assert trial["identical_files"] >= 2  # the evaluation's metrics and the fine-tuned weights
    assert 0 < trial["killed_after_s"] < drill["reference_seconds"]
    assert "1 of 1 trials recovered" in output.with_suffix(".md").read_text()
