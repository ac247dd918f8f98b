"""Stale Snakemake locks, cleared by the workflow itself.

A run that is killed hard (SIGKILL, the OOM killer, a power loss) leaves `.snakemake/locks/` behind, and the next
run stops with "Directory cannot be locked". rules/common.smk calls `clear_stale_locks` while the Snakefile is
parsed, before Snakemake takes its lock, so that a plain rerun (`make run`, `snakemake --cores all main`) recovers.

The lock is left alone, and the rerun stops as Snakemake would, while it may belong to a live run:
- a Snakemake process on this machine, other than the caller, works in this directory (its working directory,
  or the folder it was given with --directory / -d), or
- the run that took the lock recorded another machine (two login nodes sharing the filesystem: processes there
  cannot be seen from here) or another user (whose processes' working directories cannot be read).
  `snakemake --unlock` removes such a lock once that run is known to be gone.

Every run records its machine, user and process in `.snakemake/locks/owner.json`; Snakemake removes the whole folder
when a run ends (or on --unlock), so the record goes with the lock files.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
from pathlib import Path

from workflow_scripts.pipeline.processes import running_processes

LOCKS = Path(".snakemake") / "locks"
OWNER_FILE = "owner.json"


def is_snakemake(argv: list[str]) -> bool:
    """`snakemake ...` (its entry script runs as `python /path/snakemake ...`) or `python -m snakemake ...`."""
    head = argv[:3]
    return any(os.path.basename(part) == "snakemake" for part in head) or any(
        first == "-m" and second == "snakemake" for first, second in zip(head, head[1:]))


def _working_directory(cwd: str, argv: list[str]) -> str:
    """The directory a Snakemake process works in: its --directory, or where it was started."""
    for position, part in enumerate(argv[:-1]):
        if part in ("--directory", "-d"):
            return os.path.realpath(os.path.join(cwd, argv[position + 1]))
        if part.startswith("--directory="):
            return os.path.realpath(os.path.join(cwd, part.split("=", 1)[1]))
    return os.path.realpath(cwd)


def snakemake_processes(directory: str, exclude=()) -> list[tuple[int, str]]:
    """(pid, command line) of every Snakemake process on this machine working in `directory`."""
    directory = os.path.realpath(directory)
    return [(process.pid, " ".join(process.argv)) for process in running_processes()
            if process.pid not in exclude and is_snakemake(process.argv)
            and _working_directory(process.cwd, process.argv) == directory]


def lock_files(directory: str) -> list[Path]:
    """Snakemake's lock files (<n>.input.lock, <n>.output.lock) in the directory."""
    locks = Path(directory) / LOCKS
    return sorted(locks.glob("*.lock")) if locks.is_dir() else []


def _read_owner(directory: str) -> dict:
    try:
        return json.loads((Path(directory) / LOCKS / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _write_owner(directory: str) -> None:
    """The record of who is about to lock; skipped where the directory cannot be written (Snakemake then reports
    that itself, if it needs to write)."""
    locks = Path(directory) / LOCKS
    with contextlib.suppress(OSError):
        locks.mkdir(parents=True, exist_ok=True)
        (locks / OWNER_FILE).write_text(json.dumps({"host": socket.gethostname(), "uid": os.getuid(),
                                                    "pid": os.getpid()}) + "\n")


def clear_stale_locks(directory: str = ".") -> str | None:
    """Remove the directory's Snakemake lock if no run can still own it (see the module docstring) and record this
    process as the owner of the lock it is about to take. Returns what was found, for the log, or None when there
    was no lock."""
    locks = lock_files(directory)
    if not locks:
        _write_owner(directory)
        return None
    owner = _read_owner(directory)
    if owner.get("host") not in (None, socket.gethostname()):
        return (f"the lock in {directory}/{LOCKS} was taken by a run on {owner['host']} (pid {owner.get('pid')}), "
                "which cannot be checked from here: if that run is gone, `snakemake --unlock` removes the lock")
    if owner.get("uid") not in (None, os.getuid()):
        return (f"the lock in {directory}/{LOCKS} was taken by another user (uid {owner['uid']}, pid "
                f"{owner.get('pid')}), whose processes cannot be checked: if that run is gone, `snakemake --unlock` "
                "removes the lock")
    live = snakemake_processes(directory, exclude={os.getpid()})
    if live:
        pid, command = live[0]
        return (f"a running Snakemake (pid {pid}: {command}) works in this directory: its lock in "
                f"{directory}/{LOCKS} is kept (if this run needs the same files, Snakemake stops: wait for that run, "
                f"or stop it with `kill {pid}`)")
    shutil.rmtree(Path(directory) / LOCKS)
    _write_owner(directory)
    return (f"removed a stale lock in {directory}/{LOCKS} ({len(locks)} lock files): no Snakemake process works in "
            "this directory any more (a killed run left it)")
