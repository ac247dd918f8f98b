"""Kill-and-resume drills: hard-kill a run at a random moment, run the same command again, compare bit for bit.

    python -m workflow_scripts.tools.kill_drill [--trials 10] [--front-end snakemake|dvc] [--config FILE]
                                                [--target T ...] [--workdir DIR] [--seed 0] [--output FILE]

The workflow (the tests' tiny configuration by default) is copied into a sandbox repository (git + DVC). One
uninterrupted run of the command is the reference. Each trial starts the same command in a fresh copy, SIGKILLs it
at a moment drawn uniformly from 5-95% of the reference's duration, then reruns the command as it is, once, with no
--unlock or --rerun-incomplete, and compares every metrics file and checkpoint with the reference
(tools/compare_runs: exact, timings aside).

- snakemake: SIGKILL reaches the `snakemake` process only, as the kernel's OOM killer picks one process; its jobs
  notice that their Snakemake is gone and stop (pipeline/parent_watch).
- dvc: SIGKILL reaches `dvc repro` and every process under it (the Snakemake it runs for a stage, the stage), as a
  power loss or a container's OOM kill does. Killing `dvc` alone would leave its Snakemake running on.

A trial passes when the rerun succeeds and nothing differs. Prints a table and writes the trials as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from workflow_scripts.pipeline.processes import running_processes
from workflow_scripts.tools.compare_runs import compare_runs
from workflow_scripts.tools.sandbox import REPO_ROOT, command_env, make_workflow_repo

FRONT_ENDS = {"snakemake": [sys.executable, "-m", "snakemake", "--cores", "2"],
              "dvc": [sys.executable, "-m", "dvc", "repro"]}
KILL_WINDOW = (0.05, 0.95)  # share of the reference's duration a kill is drawn from
SETTLE_SECONDS = 30         # how long the killed run's jobs get to notice and stop


@dataclass
class Trial:
    trial: int
    killed_after_s: float
    finished_before_kill: bool
    rerun_returncode: int
    identical_files: int
    differences: int
    passed: bool


def front_end_command(front_end: str, targets: list[str]) -> list[str]:
    """The command a user would run: snakemake's targets are files or rules, dvc repro's are stage names."""
    return FRONT_ENDS[front_end] + targets


def processes_in(folder: Path) -> list[int]:
    """Pids of the processes whose working directory is inside `folder` (what a killed run left running)."""
    inside = str(folder.resolve())
    return [process.pid for process in running_processes() if process.cwd.startswith(inside)]


def wait_for_quiet(folder: Path, timeout: float) -> None:
    deadline = time.time() + timeout
    while processes_in(folder) and time.time() < deadline:
        time.sleep(0.5)
    left = processes_in(folder)
    if left:
        raise RuntimeError(f"processes {left} still ran in {folder} {timeout:.0f} s after the kill")


def run_to_end(command: list[str], repo: Path) -> tuple[int, float]:
    start = time.time()
    with open(repo / "drill.out", "a") as log:
        returncode = subprocess.run(command, cwd=repo, env=command_env(), stdout=log, stderr=subprocess.STDOUT).returncode
    return returncode, time.time() - start


def run_and_kill(command: list[str], repo: Path, after_s: float, whole_tree: bool) -> bool:
    """Start `command`, SIGKILL it after `after_s` seconds; True when it had already finished by then."""
    with open(repo / "drill.out", "a") as log:
        process = subprocess.Popen(command, cwd=repo, env=command_env(), stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=whole_tree)
        try:
            process.wait(timeout=after_s)
            return True
        except subprocess.TimeoutExpired:
            if whole_tree:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.send_signal(signal.SIGKILL)
            process.wait()
            return False


def run_trial(number: int, base: Path, reference: Path, command: list[str], front_end: str, after_s: float,
              workdir: Path) -> Trial:
    repo = Path(shutil.copytree(base, workdir / f"trial_{number:02d}", symlinks=True))
    finished = run_and_kill(command, repo, after_s, whole_tree=front_end == "dvc")
    wait_for_quiet(repo, SETTLE_SECONDS)
    returncode, _ = run_to_end(command, repo)
    comparison = compare_runs(reference, repo, ["models", "results"])
    for line in comparison.differences:
        print(f"trial {number}: {line}", file=sys.stderr)
    passed = returncode == 0 and not comparison.differences and comparison.identical > 0
    return Trial(number, round(after_s, 1), finished, returncode, comparison.identical,
                 len(comparison.differences), passed)


def to_markdown(trials: list[Trial], front_end: str) -> str:
    passed = sum(trial.passed for trial in trials)
    lines = [f"{front_end}: {passed} of {len(trials)} trials recovered with outputs identical to the reference", "",
             "| trial | killed after (s) | rerun exit | identical files | differences | passed |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {t.trial} | {t.killed_after_s}{' (had finished)' if t.finished_before_kill else ''} | "
              f"{t.rerun_returncode} | {t.identical_files} | {t.differences} | {'yes' if t.passed else 'NO'} |"
              for t in trials]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--front-end", choices=sorted(FRONT_ENDS), default="snakemake")
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "tests/configs/tiny.yaml",
                        help="params.yaml of the sandbox workflow")
    parser.add_argument("--target", nargs="*", default=[],
                        help="snakemake targets, or dvc stage names (default: snakemake's first rule, every DVC stage)")
    parser.add_argument("--workdir", type=Path, required=True, help="an empty folder for the sandboxes")
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    parser.add_argument("--output", type=Path, help="write the trials here as JSON (and .md beside it)")
    args = parser.parse_args(argv)
    if args.workdir.exists() and any(args.workdir.iterdir()):
        parser.error(f"--workdir {args.workdir} is not empty")

    command = front_end_command(args.front_end, args.target)
    base = make_workflow_repo(args.workdir / "base", args.config)
    reference = Path(shutil.copytree(base, args.workdir / "reference", symlinks=True))
    returncode, duration = run_to_end(command, reference)
    if returncode != 0:
        print(f"the uninterrupted reference run failed: see {reference / 'drill.out'}", file=sys.stderr)
        return 2
    print(f"reference: {' '.join(command[2:])} took {duration:.0f} s", flush=True)
    draw = random.Random(args.seed)
    trials = []
    for number in range(1, args.trials + 1):
        after_s = draw.uniform(*KILL_WINDOW) * duration
        trials.append(run_trial(number, base, reference, command, args.front_end, after_s, args.workdir))
        print(f"trial {number}: {asdict(trials[-1])}", flush=True)
        if trials[-1].passed:  # a failed trial's sandbox is kept to be looked at
            shutil.rmtree(args.workdir / f"trial_{number:02d}")
    table = to_markdown(trials, args.front_end)
    print(table, end="")
    if args.output:
        args.output.write_text(json.dumps({"front_end": args.front_end, "command": command[2:],
                                           "reference_seconds": round(duration, 1),
                                           "trials": [asdict(trial) for trial in trials]}, indent=2))
        args.output.with_suffix(".md").write_text(table)
    return 0 if all(trial.passed for trial in trials) else 1


if __name__ == "__main__":
    sys.exit(main())
