"""Warm start of stage jobs: torch and transformers imported once, each job a fork of that warm process.

Every stage job used to start a fresh interpreter and import torch and transformers again: about 4.5 s of each
job's start on the 2-core machines (transformers' BERT modules alone pull in torch.distributed.tensor, torch._dynamo
and sympy), some 500 core-seconds over `make run`'s 110 jobs. With `WORKFLOW_WARM_START=1` in the environment
(`make run` sets it) the rules run their stage commands through this launcher:

    python -m workflow_scripts.pipeline.warm_start -m workflow_scripts.stages.finetune --task ... --log-file ...

The launcher (the client) connects to a server for this interpreter and environment, starting one when there is
none. The server has imported the third-party libraries the stages use, never the project's own modules (an edit
of the code is seen by the next job) and never runs a tensor operation (a forked child of a process whose thread
pools have started can hang). Per job it forks a supervisor, which forks the job and reports its exit status:

    snakemake -> shell -> client ............ server -> supervisor -> job
                           |  argv, cwd, environment, stdin/stdout/stderr (passed as descriptors) -> |
                           |  <- the job's pid, then its exit status                                 |

What a job sees is what a fresh `python -m` would give it: its own argv, working directory, environment, standard
streams, `sys.path[0]`, fresh project modules, the global random generators (Python's, numpy's, torch's) seeded from the OS,
atexit handlers run at the end. Its exit status is the client's (a job killed by a signal kills the client by the
same signal). Process control goes through the client, the process Snakemake (or DVC) started:
  - SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to the client are passed to the job (Snakemake's Ctrl-C, `scancel`);
  - when the client dies, even by SIGKILL, its connection closes and the supervisor kills the job at once: a hard
    kill of Snakemake and everything under it leaves no job running (pipeline/parent_watch.py, which each job runs
    too, only notices within a second);
  - whatever fails before the job has started (no server, a server that will not start) runs the command the cold
    way, in this process: the warm start is only ever a speed-up.
Only `workflow_scripts.stages.*` modules start warm; anything else (`torch.distributed.run` for DDP) runs cold.
The server exits after IDLE_SECONDS without jobs. The job's command line shows the server's, not the stage's.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import struct
import sys
import time

MODULE = "workflow_scripts.pipeline.warm_start"  # this file, also when it runs as __main__
WARM_START_ENV = "WORKFLOW_WARM_START"
WARM_MODULE_PREFIX = "workflow_scripts.stages."
IDLE_SECONDS = 60.0
MAX_SOCKET_PATH = 107
START_TIMEOUT_SECONDS = 120.0
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
# Read by libraries when they are imported (libgomp's default thread count, the hub's offline switch): a server
# is started without the thread counts (each stage sets its own from OMP_NUM_THREADS) and is keyed by the rest.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
IMPORT_TIME_PREFIXES = ("HF_", "HUGGINGFACE_", "TRANSFORMERS_", "TORCH", "PYTORCH_", "CUDA_", "PYTHON")


def python_command(executable: str = sys.executable, environ=os.environ) -> str:
    """What the rules run stage modules with: the interpreter, through this launcher when warm starts are on."""
    if environ.get(WARM_START_ENV, "").lower() in ("1", "true", "yes"):
        return f"{executable} -m {MODULE}"
    return executable


# ---------------------------------------------------------------------------------------------------------------
# client


def server_address(environ=os.environ) -> str:
    """The server's socket: one per user, interpreter, installed packages and import-time environment."""
    import sysconfig

    purelib = sysconfig.get_path("purelib")
    key = {"executable": os.path.realpath(sys.executable), "purelib": purelib,
           "installed": os.stat(purelib).st_mtime_ns if os.path.isdir(purelib) else 0,
           "environment": sorted((name, value) for name, value in environ.items()
                                 if name.startswith(IMPORT_TIME_PREFIXES) and name not in THREAD_VARIABLES)}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    name = f"workflow-warm-{os.getuid()}-{digest}.sock"
    runtime = environ.get("XDG_RUNTIME_DIR", "")
    address = os.path.join(runtime, name)
    # A socket's path has at most 107 bytes (Linux): a deep runtime folder falls back to /tmp
    return address if os.path.isdir(runtime) and len(address.encode()) <= MAX_SOCKET_PATH else os.path.join("/tmp", name)


def _connect(address: str) -> socket.socket | None:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(address)
        return connection
    except OSError:
        connection.close()
        return None


def _start_server(address: str):
    import subprocess

    environment = {name: value for name, value in os.environ.items()
                   if name not in THREAD_VARIABLES and name != WARM_START_ENV}
    with open(address + ".log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", MODULE, "--serve", address], cwd="/", env=environment,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                close_fds=True)


def connect_or_start(address: str) -> socket.socket | None:
    """A connection to the server, started if needed (one starter at a time); None if none came up (the server
    exited, or did not answer within START_TIMEOUT_SECONDS: its log is <address>.log)."""
    connection = _connect(address)
    if connection is not None:
        return connection
    import fcntl

    with open(address + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        connection = _connect(address)
        if connection is None:
            server = _start_server(address)
            deadline = time.monotonic() + START_TIMEOUT_SECONDS
            while connection is None and server.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
                connection = _connect(address)
    return connection


def _send_message(connection: socket.socket, message: dict, descriptors: list[int] = ()) -> None:
    payload = json.dumps(message).encode()
    data = struct.pack("!I", len(payload)) + payload
    sent = socket.send_fds(connection, [data], list(descriptors)) if descriptors else connection.send(data)
    connection.sendall(data[sent:])


def _receive_message(connection: socket.socket, descriptor_count: int = 0) -> tuple[dict | None, list[int]]:
    """(message, descriptors), or (None, []) when the other end closed first."""
    buffer, descriptors = b"", []
    while len(buffer) < 4 or len(buffer) < 4 + struct.unpack("!I", buffer[:4])[0]:
        if descriptor_count and not descriptors:
            chunk, descriptors, _, _ = socket.recv_fds(connection, 1 << 16, descriptor_count)
        else:
            chunk = connection.recv(1 << 16)
        if not chunk:
            return None, descriptors
        buffer += chunk
    return json.loads(buffer[4:4 + struct.unpack("!I", buffer[:4])[0]]), descriptors


def _run_cold(argv: list[str]) -> None:
    os.execv(sys.executable, [sys.executable, *argv])


def client_main(argv: list[str]) -> None:
    """Run `python <argv>` (argv: -m module args...) warm when it is a stage module, else cold."""
    if len(argv) < 2 or argv[0] != "-m" or not argv[1].startswith(WARM_MODULE_PREFIX):
        _run_cold(argv)
    try:
        connection = connect_or_start(server_address())
    except OSError as error:
        print(f"warm start: {error}; starting cold", file=sys.stderr)
        connection = None
    if connection is None:
        _run_cold(argv)
    with connection:
        _send_message(connection, {"module": argv[1], "args": argv[2:], "cwd": os.getcwd(),
                                   "environment": dict(os.environ)}, [0, 1, 2])
        started, _ = _receive_message(connection)
        if started is None:  # the server went away before forking the job: nothing ran
            _run_cold(argv)
        pid = started["pid"]
        for signum in FORWARDED_SIGNALS:
            signal.signal(signum, lambda signum, frame: _forward(pid, signum))
        finished, _ = _receive_message(connection)
    if finished is None:
        print(f"warm start: the supervisor of job {pid} exited without its status", file=sys.stderr)
        sys.exit(1)
    _exit_like(finished["status"])


def _forward(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _exit_like(status: int) -> None:
    """Exit with the job's status: its exit code, or death by the signal that ended it."""
    if status < 0:
        if -status not in (signal.SIGKILL, signal.SIGSTOP):  # the two whose handling cannot be changed
            signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
        time.sleep(1)
        sys.exit(128 - status)
    sys.exit(status)


# ---------------------------------------------------------------------------------------------------------------
# server


def preload() -> None:
    """Import what the stages import that is slow to import; nothing of the project, no tensor operation."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import safetensors.torch  # noqa: F401
    import torch  # noqa: F401
    import transformers
    import yaml  # noqa: F401
    from transformers.models.bert import modeling_bert  # noqa: F401

    for name in ("AutoConfig", "AutoTokenizer", "AutoModel", "AutoModelForMaskedLM",
                 "AutoModelForSequenceClassification", "BertTokenizerFast"):
        getattr(transformers, name)
    import matplotlib.pyplot  # noqa: F401


def forget_project_modules() -> None:
    """The project's modules are imported afresh by each job, from its working directory's sys.path."""
    for name in [name for name in sys.modules if name == "workflow_scripts" or name.startswith("workflow_scripts.")]:
        del sys.modules[name]


def serve(address: str) -> None:
    """Accept jobs until IDLE_SECONDS pass without one running, or until the socket is taken over or removed."""
    import select

    preload()
    forget_project_modules()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(address):
        os.unlink(address)  # a dead server's (the starter holds the lock, and nothing answered there)
    listener.bind(address)
    listener.listen(64)
    inode = os.stat(address).st_ino
    supervisors: set[int] = set()
    last_activity = time.monotonic()
    while True:
        readable, _, _ = select.select([listener], [], [], 1.0)
        if readable:
            connection, _ = listener.accept()
            pid = os.fork()
            if pid == 0:
                listener.close()
                supervise(connection)  # never returns
            connection.close()
            supervisors.add(pid)
        supervisors -= {pid for pid in supervisors if os.waitpid(pid, os.WNOHANG)[0] == pid}
        if supervisors or readable:
            last_activity = time.monotonic()
        try:
            taken_over = os.stat(address).st_ino != inode
        except FileNotFoundError:
            taken_over = True
        if taken_over or time.monotonic() - last_activity > IDLE_SECONDS:
            if not taken_over:
                os.unlink(address)
            return


def supervise(connection: socket.socket) -> None:
    """In a fork of the server: start the job, report its pid and its exit status; kill it if the client goes."""
    import threading

    try:
        request, descriptors = _receive_message(connection, descriptor_count=3)
        if request is None or len(descriptors) != 3:
            os._exit(1)
        job = os.fork()
        if job == 0:
            connection.close()
            run_job(request, descriptors)  # never returns
        for descriptor in descriptors:
            os.close(descriptor)
        _send_message(connection, {"pid": job})

        exited = threading.Event()

        def kill_when_client_gone():
            try:
                while connection.recv(1 << 12):
                    pass
            except OSError:
                pass
            if not exited.is_set():  # the job is not reaped yet (see below): its pid is still its own
                _forward(job, signal.SIGKILL)

        threading.Thread(target=kill_when_client_gone, daemon=True).start()
        os.waitid(os.P_PID, job, os.WEXITED | os.WNOWAIT)  # exited, left a zombie: the pid cannot be reused yet
        exited.set()
        status = os.waitstatus_to_exitcode(os.waitpid(job, 0)[1])
        _send_message(connection, {"status": status})
    except OSError:
        pass
    os._exit(0)


def run_job(request: dict, descriptors: list[int]) -> None:
    """In a fork of the supervisor: become `python -m <module> <args>` as started by the client, run it, exit."""
    import atexit
    import random
    import runpy
    import traceback

    for target, descriptor in enumerate(descriptors):
        os.dup2(descriptor, target)
        os.close(descriptor)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["environment"])
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.path[0] = request["cwd"]  # as `python -m` puts it
    forget_project_modules()
    random.seed()  # the global generators are seeded from the OS in a fresh process: so here, not copied
    import numpy
    import torch

    numpy.random.seed()
    torch.seed()
    sys.argv = [request["module"], *request["args"]]
    code = 0
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as exit_request:
        code = _exit_code(exit_request.code)
    except KeyboardInterrupt:
        traceback.print_exc()
        code = -signal.SIGINT
    except BaseException:  # noqa: BLE001 - reported as an uncaught exception would be
        traceback.print_exc()
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if code < 0:  # as Python does after an uncaught KeyboardInterrupt: die by SIGINT
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code)


def _exit_code(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2])
    else:
        client_main(sys.argv[1:])
