"""The warm-start launcher (pipeline/warm_start.py): a job forked from the warm server behaves as `python -m` would,
passes exit statuses and signals, dies with its client, and anything the warm path cannot do runs cold.

Each test starts a real server in its own runtime folder (XDG_RUNTIME_DIR), and runs a probe stage from a
`workflow_scripts/stages/` package written into the test's working directory (a job imports the project's modules
from its working directory first, as `python -m` does there).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from workflow_scripts.pipeline.processes import running_processes
from workflow_scripts.pipeline import warm_start
from workflow_scripts.pipeline.warm_start import WARM_START_ENV, python_command

PROBE = textwrap.dedent('''
    """A stage that reports what it sees, then does what its first argument says."""
    import json, os, random, signal, sys, time

    import numpy
    import torch

    action = sys.argv[1]
    print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "path0": sys.path[0], "name": __name__,
                      "pid": os.getpid(), "marker": os.environ.get("PROBE_MARKER"), "random": random.random(),
                      "numpy_random": float(numpy.random.random()), "torch_seed": torch.initial_seed(), "threads": os.environ.get("OMP_NUM_THREADS")}), flush=True)
    if action == "exit":
        sys.exit(int(sys.argv[2]))
    if action == "raise":
        raise RuntimeError("probe failed on purpose")
    if action == "kill_self":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "wait_for_term":
        def cleanup(signum, frame):
            open("cleaned_up", "w").write("yes")
            sys.exit(143)
        signal.signal(signal.SIGTERM, cleanup)
        open("ready", "w").write("yes")
        time.sleep(60)
    if action == "sleep":
        open("ready", "w").write("yes")
        time.sleep(60)
''')


@pytest.fixture
def probe_dir(tmp_path) -> Path:
    work = tmp_path / "work"
    stages = work / "workflow_scripts" / "stages"
    stages.mkdir(parents=True)
    (work / "workflow_scripts" / "__init__.py").write_text("")
    (stages / "__init__.py").write_text("")
    (stages / "probe.py").write_text(PROBE)
    return work


def client_environment(runtime: Path) -> dict:
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime), PROBE_MARKER="from the client", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    """One server for the module's tests (its start, the imports, is most of a test's time)."""
    runtime = Path(tempfile.mkdtemp(prefix="warm-"))  # short: pytest's folders can be too deep for a socket
    yield client_environment(runtime)
    for socket_file in runtime.glob("*.sock"):  # stops the server
        socket_file.unlink()
    shutil.rmtree(runtime, ignore_errors=True)


def launcher(*args) -> list[str]:
    return [sys.executable, "-m", "workflow_scripts.pipeline.warm_start", "-m", *args]


def start(args, probe_dir, environment) -> subprocess.Popen:
    return subprocess.Popen(launcher(*args), cwd=probe_dir, env=environment, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def run(args, probe_dir, environment) -> subprocess.CompletedProcess:
    return subprocess.run(launcher(*args), cwd=probe_dir, env=environment, capture_output=True, text=True,
                          timeout=180)


def report(result) -> dict:
    return json.loads(result.stdout.splitlines()[0])


def wait_for(path: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_python_command_switches_on_the_environment_variable():
    assert python_command("/venv/bin/python", {}) == "/venv/bin/python"
    assert python_command("/venv/bin/python", {WARM_START_ENV: "0"}) == "/venv/bin/python"
    assert python_command("/venv/bin/python", {WARM_START_ENV: "1"}) == \
        "/venv/bin/python -m workflow_scripts.pipeline.warm_start"


def test_a_warm_job_sees_what_a_fresh_python_would(probe_dir, environment):
    cold = subprocess.run([sys.executable, "-m", "workflow_scripts.stages.probe", "exit", "0", "x y"],
                          cwd=probe_dir, env=environment, capture_output=True, text=True)
    first, second = (run(["workflow_scripts.stages.probe", "exit", "0", "x y"], probe_dir, environment)
                     for _ in range(2))
    assert cold.returncode == first.returncode == second.returncode == 0, first.stderr
    cold, first, second = report(cold), report(first), report(second)
    for key in ("argv", "cwd", "path0", "name", "marker", "threads"):
        assert first[key] == second[key] == cold[key], key
    for key in ("random", "numpy_random", "torch_seed"):  # seeded afresh, as in a new process
        assert first[key] != second[key], key
    assert first["pid"] != second["pid"]


def test_exit_statuses_pass_through(probe_dir, environment):
    assert run(["workflow_scripts.stages.probe", "exit", "3"], probe_dir, environment).returncode == 3
    failed = run(["workflow_scripts.stages.probe", "raise"], probe_dir, environment)
    assert failed.returncode == 1
    assert "RuntimeError: probe failed on purpose" in failed.stderr
    killed = run(["workflow_scripts.stages.probe", "kill_self"], probe_dir, environment)
    assert killed.returncode == -signal.SIGKILL  # the client dies by the job's signal


def test_sigterm_reaches_the_job_and_its_cleanup_runs(probe_dir, environment):
    client = start(["workflow_scripts.stages.probe", "wait_for_term"], probe_dir, environment)
    wait_for(probe_dir / "ready")
    client.send_signal(signal.SIGTERM)
    assert client.wait(timeout=30) == 143
    assert (probe_dir / "cleaned_up").read_text() == "yes"


def test_a_job_dies_with_its_killed_client(probe_dir, environment):
    client = start(["workflow_scripts.stages.probe", "sleep"], probe_dir, environment)
    wait_for(probe_dir / "ready")
    job = json.loads(client.stdout.readline())["pid"]
    assert job != client.pid and pid_alive(job)
    client.kill()
    client.wait()
    deadline = time.monotonic() + 5
    while pid_alive(job):
        assert time.monotonic() < deadline, "the job outlived its killed client"
        time.sleep(0.05)


def test_other_modules_run_cold_in_the_client_process(probe_dir, environment):
    (probe_dir / "cold_probe.py").write_text("import os; print(os.getpid())")
    client = start(["cold_probe"], probe_dir, environment)
    out, _ = client.communicate(timeout=60)
    assert client.returncode == 0 and int(out) == client.pid  # exec'd in place: no server involved


def test_without_a_server_the_job_runs_cold(probe_dir, environment):
    # A socket path longer than the kernel takes: the server cannot bind and exits, and the client runs the job
    # itself, exec'd in place (the job's pid is the client's)
    too_long = "/tmp/" + "r" * 120 + ".sock"
    client = subprocess.Popen(
        [sys.executable, "-c", "import sys; from workflow_scripts.pipeline import warm_start; "
         f"warm_start.server_address = lambda: {too_long!r}; warm_start.client_main(sys.argv[1:])",
         "-m", "workflow_scripts.stages.probe", "exit", "0"],
        cwd=probe_dir, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = client.communicate(timeout=120)
    assert client.returncode == 0, err
    assert json.loads(out.splitlines()[0])["pid"] == client.pid


def test_a_runtime_folder_too_deep_for_a_socket_falls_back_to_tmp(tmp_path):
    deep, short = tmp_path / ("d" * 100), Path(tempfile.mkdtemp(prefix="warm-"))
    deep.mkdir()
    assert Path(warm_start.server_address({"XDG_RUNTIME_DIR": str(deep)})).parent == Path("/tmp")
    assert Path(warm_start.server_address({"XDG_RUNTIME_DIR": str(short)})).parent == short


def test_the_server_stops_when_its_socket_is_removed(probe_dir):
    runtime = Path(tempfile.mkdtemp(prefix="warm-"))  # short: pytest's folders can be too deep for a socket
    assert run(["workflow_scripts.stages.probe", "exit", "0"], probe_dir, client_environment(runtime)).returncode == 0
    (socket_file,) = runtime.glob("*.sock")
    servers = [process.pid for process in running_processes() if process.argv[-2:] == ["--serve", str(socket_file)]]
    assert len(servers) == 1
    socket_file.unlink()
    deadline = time.monotonic() + 10
    while pid_alive(servers[0]):
        assert time.monotonic() < deadline, "the server did not stop"
        time.sleep(0.1)
