"""The real command lines on the tiny configuration, in a temporary git + DVC repository:
snakemake builds everything, dvc repro then has nothing to do (and vice versa), a changed parameter reruns
exactly the stages that read it, whichever front end runs it."""
import json
import sys

import pytest
import yaml

from conftest import REPO_ROOT
from workflow_repo import jobs_run_by_snakemake, make_workflow_repo, run, stages_run_by_dvc

pytestmark = pytest.mark.e2e
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--cores", "2"]
DVC = [sys.executable, "-m", "dvc"]


def set_param(repo, dotted_key, value):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    *parents, leaf = dotted_key.split(".")
    node = params
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def assert_snakemake_has_nothing_to_do(repo):
    assert "Nothing to be done" in run(SNAKEMAKE + ["--dry-run"], repo).stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_workflow_repo(tmp_path_factory.mktemp("workflow"), REPO_ROOT / "tests/configs/tiny.yaml")


def test_snakemake_builds_every_stage_with_checkpoints_metrics_and_logs(repo):
    run(SNAKEMAKE, repo)
    for task in ("gen_mrpc", "gen_cola"):
        checkpoint = repo / "models" / task / "base" / "finetune_initial"
        assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "config.json").is_file()
        metrics = json.loads((repo / "models" / task / "base" / "evaluate" / "metrics.json").read_text())
        assert metrics["validation"]["num_examples"] == 32 and "accuracy" in metrics["validation"]
        assert (repo / "logs" / "finetune_initial" / f"{task}.log").stat().st_size > 0
    assert "matthews_correlation" in json.loads(
        (repo / "models/gen_cola/base/evaluate/metrics.json").read_text())["validation"]
    assert not list(repo.glob("models/**/.*partial*"))


def test_after_snakemake_dvc_has_nothing_to_do_and_shows_metrics(repo):
    assert stages_run_by_dvc(run(DVC + ["repro"], repo).stdout) == set()
    assert "up to date" in run(DVC + ["status"], repo).stdout
    assert "gen_cola/base/evaluate/metrics.json" in run(DVC + ["metrics", "show"], repo).stdout
    assert_snakemake_has_nothing_to_do(repo)


def test_dvc_repro_reruns_only_the_task_whose_parameter_changed(repo):
    set_param(repo, "finetune_initial.per_task.gen_cola.learning_rate", 2.0e-3)  # a key DVC never saw
    ran = stages_run_by_dvc(run(DVC + ["repro"], repo).stdout)
    assert ran == {"finetune_initial-gen_cola", "evaluate-gen_cola-base"}
    assert_snakemake_has_nothing_to_do(repo)
    assert stages_run_by_dvc(run(DVC + ["repro"], repo).stdout) == set()


def test_snakemake_reruns_only_the_task_whose_parameter_changed(repo):
    set_param(repo, "finetune_initial.per_task.gen_mrpc", {"learning_rate": 5.0e-4})  # a new override
    run([sys.executable, "-m", "workflow_scripts.dvc_sync", "--check"], repo)  # dvc.yaml stays current
    result = run(SNAKEMAKE, repo)
    assert jobs_run_by_snakemake(result.stdout + result.stderr) == ["evaluate", "finetune_initial"]
    assert "up to date" in run(DVC + ["status"], repo).stdout
    assert stages_run_by_dvc(run(DVC + ["repro"], repo).stdout) == set()
