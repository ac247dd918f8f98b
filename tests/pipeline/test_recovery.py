"""After a hard kill: a stale Snakemake lock is removed only when no Snakemake process works in the directory, and a
job whose Snakemake is gone stops instead of running on as an orphan (the real command lines:
tests/e2e/test_hard_kill.py)."""
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from workflow_scripts.core.io_utils import atomic_output_dir
from workflow_scripts.pipeline.locks import LOCKS, OWNER_FILE, clear_stale_locks, is_snakemake, lock_files
from workflow_scripts.pipeline.parent_watch import SNAKEMAKE_PROCESS_ENV, process_identity

REPO_ROOT = Path(__file__).resolve().parents[2]


def leave_lock(directory: Path, owner: dict | None = None) -> None:
    """What a killed run leaves: Snakemake's lock files (and the owner record of this workflow)."""
    locks = directory / LOCKS
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("data/gen_mrpc/tokenized\n")
    (locks / "0.output.lock").write_text("models/gen_mrpc/base/finetune_initial\n")
    if owner is not None:
        (locks / OWNER_FILE).write_text(json.dumps(owner))


@pytest.fixture
def fake_snakemake(tmp_path):
    """Start a process whose command line is `python .../snakemake [args]` (as the entry script runs), in cwd."""
    script = tmp_path / "bin" / "snakemake"
    script.parent.mkdir()
    script.write_text("import time\ntime.sleep(60)\n")
    started = []

    def start(cwd: Path, *args: str) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, str(script), *args], cwd=cwd)
        started.append(process)
        return process
    yield start
    for process in started:
        process.kill()
        process.wait()


@pytest.mark.parametrize("argv, expected", [
    (["/venv/bin/python3", "/venv/bin/snakemake", "--cores", "all", "main"], True),
    (["python", "-m", "snakemake", "-n"], True),
    (["snakemake", "--unlock"], True),
    (["python", "-m", "workflow_scripts.stages.finetune", "--model", "snakemake"], False),
    (["bash", "-c", "snakemake --cores 2"], False),  # the shell that started it is not Snakemake
])
def test_snakemake_processes_are_recognised_by_their_command_line(argv, expected):
    assert is_snakemake(argv) == expected


def test_a_lock_no_process_owns_is_removed_and_the_caller_recorded(tmp_path):
    leave_lock(tmp_path, {"host": socket.gethostname(), "pid": 999999})
    report = clear_stale_locks(str(tmp_path))
    assert "removed a stale lock" in report and not lock_files(str(tmp_path))
    assert json.loads((tmp_path / LOCKS / OWNER_FILE).read_text()) == {"host": socket.gethostname(),
                                                                       "uid": os.getuid(), "pid": os.getpid()}
    assert clear_stale_locks(str(tmp_path)) is None  # no lock: nothing to report


def test_the_lock_of_a_live_snakemake_in_the_directory_is_kept(tmp_path, fake_snakemake):
    workdir = tmp_path / "workflow"
    workdir.mkdir()
    leave_lock(workdir)
    process = fake_snakemake(workdir, "--cores", "2")
    time.sleep(0.3)
    report = clear_stale_locks(str(workdir))
    assert f"a running Snakemake (pid {process.pid}" in report and "is kept" in report
    assert len(lock_files(str(workdir))) == 2


def test_a_live_snakemake_given_the_directory_with_directory_counts_too(tmp_path, fake_snakemake):
    workdir = tmp_path / "workflow"
    workdir.mkdir()
    leave_lock(workdir)
    fake_snakemake(tmp_path, "--directory", "workflow", "--cores", "2")
    time.sleep(0.3)
    assert "is kept" in clear_stale_locks(str(workdir))


def test_a_snakemake_working_elsewhere_does_not_keep_the_lock(tmp_path, fake_snakemake):
    workdir, elsewhere = tmp_path / "workflow", tmp_path / "other"
    workdir.mkdir()
    elsewhere.mkdir()
    leave_lock(workdir)
    fake_snakemake(elsewhere, "--cores", "2")
    time.sleep(0.3)
    assert "removed a stale lock" in clear_stale_locks(str(workdir))


def test_a_lock_taken_on_another_machine_or_by_another_user_is_kept(tmp_path):
    leave_lock(tmp_path, {"host": "login-node-2", "uid": os.getuid(), "pid": 4242})
    report = clear_stale_locks(str(tmp_path))
    assert "run on login-node-2 (pid 4242)" in report and "snakemake --unlock" in report
    assert len(lock_files(str(tmp_path))) == 2
    (tmp_path / LOCKS / OWNER_FILE).write_text(json.dumps({"host": socket.gethostname(), "uid": os.getuid() + 1,
                                                           "pid": 4242}))
    assert f"another user (uid {os.getuid() + 1}" in clear_stale_locks(str(tmp_path))
    assert len(lock_files(str(tmp_path))) == 2


def test_an_owner_record_that_cannot_be_written_is_no_error(tmp_path):
    (tmp_path / ".snakemake").write_text("")  # a file where the folder belongs: mkdir fails, even for root
    assert clear_stale_locks(str(tmp_path)) is None


# ---- a job stops when its Snakemake is gone --------------------------------------------------------------------
JOB = textwrap.dedent("""
    import logging, sys, time
    from pathlib import Path
    from workflow_scripts.pipeline.parent_watch import watch_snakemake

    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    done = Path(sys.argv[1])
    watch_snakemake(logging.getLogger("job"))
    Path(sys.argv[2]).write_text("started")
    try:
        time.sleep(60)
    finally:
        done.write_text("cleanup ran")  # as atomic_output_dir removes its staging folder
""")


def start_job(tmp_path: Path, recorded: str) -> subprocess.Popen:
    env = dict(os.environ, **{SNAKEMAKE_PROCESS_ENV: recorded})
    return subprocess.Popen([sys.executable, "-c", JOB, str(tmp_path / "done"), str(tmp_path / "started")],
                            cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE, text=True)


def test_a_job_stops_and_cleans_up_when_its_snakemake_is_killed(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    job = start_job(tmp_path, process_identity(parent.pid))
    deadline = time.time() + 30
    while not (tmp_path / "started").exists() and time.time() < deadline:
        time.sleep(0.1)
    assert job.poll() is None
    parent.kill()
    parent.wait()
    stderr = job.communicate(timeout=20)[1]
    assert job.returncode != 0 and (tmp_path / "done").read_text() == "cleanup ran"
    assert f"Snakemake (pid {parent.pid}), which started this job, is gone" in stderr


def test_a_job_whose_snakemake_is_already_gone_does_not_start(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", "pass"])
    recorded = process_identity(parent.pid)
    parent.wait()
    job = start_job(tmp_path, recorded)
    assert "is gone: not starting" in job.communicate(timeout=60)[1] and job.returncode == 1
    assert not (tmp_path / "started").exists()


def test_a_recycled_process_id_does_not_pass_for_the_same_snakemake(tmp_path):
    pid, start = process_identity(os.getpid()).split(":")
    job = start_job(tmp_path, f"{pid}:{int(start) + 1}")  # this test's own pid, another start time
    assert "is gone: not starting" in job.communicate(timeout=60)[1]


# ---- what a killed writer leaves ---------------------------------------------------------------------------
def test_a_new_write_removes_the_staging_folders_a_killed_writer_left(tmp_path):
    final = tmp_path / "out"
    leftover = tmp_path / ".out.partial-abc123"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"half")
    other = tmp_path / ".other.partial-abc123"  # another output's staging folder is not touched
    other.mkdir()
    with atomic_output_dir(str(final)) as staging:
        (Path(staging) / "weights").write_text("new")
    assert sorted(os.listdir(tmp_path)) == [".other.partial-abc123", "out"]
