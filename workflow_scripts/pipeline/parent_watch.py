"""A job stops when the Snakemake process that started it is gone.

When Snakemake itself is killed hard (SIGKILL, the OOM killer), nothing tells its running jobs: each keeps
computing, as an orphan, an output the next run deletes and rebuilds, on cores that run needs. So the Snakefile
records its own process in the environment its jobs inherit (`mark_snakemake_process`), and every stage CLI
(`pipeline.cli.start_stage`) watches that process from a background thread: once it is gone the stage logs why
and stops through SIGTERM, which runs its cleanup (an unfinished output folder is removed), and exits at the
latest `GRACE_SECONDS` later.

A process is its id and its start time (Linux /proc), so a recycled id does not pass for the same Snakemake. On a
cluster each job runs under a Snakemake of its own on the node, which it watches: the main process on the login node
may stop and restart while jobs keep running, as they do under any cluster executor. Without /proc (macOS), or
when a stage runs outside Snakemake (tests, by hand), nothing is watched.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

SNAKEMAKE_PROCESS_ENV = "WORKFLOW_SNAKEMAKE_PROCESS"  # "<pid>:<start time>" of the Snakemake that runs the job
POLL_SECONDS = 1.0
GRACE_SECONDS = 30.0


def process_start_time(pid: int) -> int | None:
    """When the process started (clock ticks since boot), or None if it has exited (a zombie waiting for its parent
    counts as exited) or there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:
        return None
    # the second field (the command name, in parentheses) may contain spaces; state is field 3, starttime field 22
    fields = stat[stat.rindex(")") + 2:].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def process_identity(pid: int) -> str | None:
    start = process_start_time(pid)
    return None if start is None else f"{pid}:{start}"


def mark_snakemake_process(environ=os.environ) -> None:
    """Called by the Snakefile: the jobs this process starts inherit its identity."""
    identity = process_identity(os.getpid())
    if identity is not None:
        environ[SNAKEMAKE_PROCESS_ENV] = identity


def _stop(logger, reason: str) -> None:
    logger.error("%s: stopping this job (its output would be discarded; rerun snakemake to rebuild it)", reason)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(GRACE_SECONDS)  # the main thread may be inside a long C call: SIGTERM's handler runs after it
    logger.error("still running %.0f s after SIGTERM: exiting", GRACE_SECONDS)
    os._exit(1)


def _raise_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def watch_snakemake(logger, environ=os.environ) -> threading.Thread | None:
    """Stop this process when the Snakemake recorded in the environment is gone (see the module docstring). Call
    from the main thread: it makes SIGTERM raise SystemExit, so that `finally` blocks and context managers run."""
    recorded = environ.get(SNAKEMAKE_PROCESS_ENV)
    if not recorded or process_start_time(os.getpid()) is None:
        return None
    pid = int(recorded.split(":")[0])
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    if process_identity(pid) != recorded:
        logger.error("Snakemake (pid %d), which started this job, is gone: not starting", pid)
        sys.exit(1)

    def watch():
        while process_identity(pid) == recorded:
            time.sleep(POLL_SECONDS)
        _stop(logger, f"Snakemake (pid {pid}), which started this job, is gone (killed?)")

    thread = threading.Thread(target=watch, name="watch-snakemake", daemon=True)
    thread.start()
    return thread
