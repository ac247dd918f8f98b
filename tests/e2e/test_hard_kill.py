"""A hard kill of Snakemake in the middle of a job, on the tiny configuration in a temporary repository: the job
stops with it, and the plain rerun of the same command recovers (stale lock removed, the incomplete output rebuilt)
and ends with the outputs of an uninterrupted run. A live run's lock is never taken away.
"""
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT
from workflow_repo import command_env, make_workflow_repo, run
from workflow_scripts.core.io_utils import read_json
from workflow_scripts.pipeline.locks import lock_files
from workflow_scripts.pipeline.processes import running_processes
from workflow_scripts.pipeline.warm_start import MODULE as WARM_START_MODULE, WARM_START_ENV

pytestmark = pytest.mark.e2e
TARGET = "models/gen_mrpc/base/evaluate/metrics.json"
CHECKPOINT = "models/gen_mrpc/base/finetune_initial"
# What a user runs, and runs again as it is after the kill (make run is `snakemake --cores all main`)
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--cores", "2", TARGET]
STAGE = "workflow_scripts.stages.finetune"
FINETUNE_INPUTS = ["models/base", "data/gen_mrpc/tokenized"]


def start_snakemake(repo: Path) -> subprocess.Popen:
    log = open(repo / "snakemake.out", "w")
    return subprocess.Popen(SNAKEMAKE, cwd=repo, env=command_env(), stdout=log, stderr=subprocess.STDOUT)


def stage_processes(repo: Path) -> list[int]:
    """Pids of the fine-tuning stage running in repo: its command, and under a warm start (command_env's default)
    the job forked by the warm server, which shows the server's command line (pipeline/warm_start.py)."""
    return [process.pid for process in running_processes()
            if (STAGE in process.argv or WARM_START_MODULE in process.argv) and process.cwd == str(repo.resolve())]


def wait_for_training(repo: Path, process: subprocess.Popen, timeout: float = 600) -> list[int]:
    """Wait until the fine-tuning job is training (past its imports, its parent watched); return its pids."""
    log = repo / "logs/finetune_initial/gen_mrpc.log"
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert process.poll() is None, (repo / "snakemake.out").read_text()
        if log.exists() and "fine-tuning on" in log.read_text():
            pids = stage_processes(repo)
            if pids:
                return pids
        time.sleep(0.2)
    raise AssertionError("the fine-tuning job never started training")


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def wait_until_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.time() + timeout
    while any(alive(pid) for pid in pids):
        if time.time() > deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.fixture(scope="module")
def workflow(tmp_path_factory) -> Path:
    """The tiny workflow with a fine-tune long enough to be killed in the middle of (15 epochs of 96 rows, ~30 s)."""
    repo = make_workflow_repo(tmp_path_factory.mktemp("workflow"), REPO_ROOT / "tests/configs/tiny.yaml")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["finetune_initial"]["per_task"]["gen_mrpc"] = {"epochs": 15}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(SNAKEMAKE[:-1] + [*FINETUNE_INPUTS], repo)  # the data and the model, once for the copies below
    return repo


@pytest.fixture(scope="module")
def uninterrupted(workflow, tmp_path_factory) -> Path:
    """The same command run once to the end, undisturbed: the outputs a recovered run must equal."""
    repo = Path(shutil.copytree(workflow, tmp_path_factory.mktemp("uninterrupted") / "workflow"))
    run(SNAKEMAKE, repo)
    return repo


def test_a_second_run_beside_a_live_one_stops_and_leaves_its_lock(workflow, tmp_path):
    repo = Path(shutil.copytree(workflow, tmp_path / "workflow"))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    # long enough to outlast the second run's start-up on any machine; this run is killed below, not waited for
    params["finetune_initial"]["per_task"]["gen_mrpc"] = {"epochs": 100_000}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    first = start_snakemake(repo)
    job = []
    try:
        job = wait_for_training(repo, first)
        second = run(SNAKEMAKE, repo, check=False)
        assert first.poll() is None, "the first run ended before the second one was checked"
        assert lock_files(str(repo))
    finally:
        first.kill()  # its job notices within a second and stops (Ctrl-C's graceful stop took up to 2 min here)
        first.wait()
        wait_until_gone(job, timeout=30)
    output = second.stdout + second.stderr
    assert second.returncode != 0 and "Directory cannot be locked" in output
    assert f"a running Snakemake (pid {first.pid}" in output


def test_the_plain_rerun_recovers_after_snakemake_is_killed_mid_job(workflow, uninterrupted):
    repo = workflow
    process = start_snakemake(repo)
    job = wait_for_training(repo, process)
    warm = command_env()[WARM_START_ENV] == "1"
    assert len(job) == (2 if warm else 1)  # under a warm start, the launcher and the job the server forked
    process.send_signal(signal.SIGKILL)  # as the OOM killer does: nothing reaches the job
    process.wait()
    assert lock_files(str(repo)) and not (repo / CHECKPOINT).exists()
    assert any((repo / ".snakemake/incomplete").iterdir())  # the job's output is marked incomplete

    # the orphaned job notices within a second, stops, and removes its unfinished output folder
    assert wait_until_gone(job, timeout=30), "the job ran on after its Snakemake was killed"
    assert "which started this job, is gone" in (repo / "logs/finetune_initial/gen_mrpc.log").read_text()
    assert not list(repo.glob("models/**/.*partial*"))

    rerun = run(SNAKEMAKE, repo)  # no --unlock, no --rerun-incomplete
    assert "removed a stale lock" in rerun.stderr
    assert not lock_files(str(repo))
    expected = uninterrupted
    assert read_json(str(repo / TARGET)) == read_json(str(expected / TARGET))
    assert (repo / CHECKPOINT / "model.safetensors").read_bytes() == \
        (expected / CHECKPOINT / "model.safetensors").read_bytes()
    assert "Nothing to be done" in run(SNAKEMAKE + ["--dry-run"], repo).stdout


def test_snakemake_unlock_works_as_its_message_prints_it(workflow, tmp_path):
    repo = Path(shutil.copytree(workflow, tmp_path / "workflow"))
    (repo / ".snakemake/locks").mkdir(parents=True, exist_ok=True)
    (repo / ".snakemake/locks/0.input.lock").write_text("data/gen_mrpc/tokenized\n")
    result = run([sys.executable, "-m", "snakemake", "--unlock"], repo)  # no --cores
    assert "Unlocked working directory" in result.stdout + result.stderr and not lock_files(str(repo))
