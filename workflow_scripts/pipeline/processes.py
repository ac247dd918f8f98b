"""The processes of this machine as /proc shows them: the one scan behind the stale-lock check (which Snakemake runs
work in a directory), the kill drills (what a killed run left running) and the tests' process checks."""
from __future__ import annotations

import os
from typing import Iterator, NamedTuple


class Process(NamedTuple):
    pid: int
    argv: list[str]
    cwd: str  # as the kernel resolves it (symlinks resolved)


def running_processes() -> Iterator[Process]:
    """Every process whose command line and working directory can be read (another user's cannot; a process that
    ends during the scan is skipped)."""
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = [part.decode(errors="replace") for part in handle.read().split(b"\0") if part]
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if argv:
            yield Process(int(entry), argv, cwd)
