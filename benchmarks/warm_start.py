"""Warm against cold job starts (pipeline/warm_start.py), side by side on one Snakemake target of the tiny workflow.

    python -m benchmarks.warm_start                                   # AUBER's chain on gen_mrpc (10 jobs)
    python -m benchmarks.warm_start --target models/gen_mrpc/base/evaluate/metrics.json --rounds 2

Each round builds the target twice from scratch in fresh copies of the tiny workflow (tests/configs/tiny.yaml), with
WORKFLOW_WARM_START=0 and =1, in alternating order, and times the `snakemake --cores 2` call (the warm server's own
start, about 5 s, is inside the first warm round; it stays up between rounds). The ratio is cold / warm. Then every
output file of the two builds is compared byte for byte; files that also differ between two cold builds (the
`datasets` library's random fingerprints, measured seconds in logs and search logs) are listed apart, and any other
difference fails the benchmark.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from workflow_scripts.pipeline.warm_start import WARM_START_ENV
from workflow_scripts.tools.sandbox import REPO_ROOT, command_env, make_workflow_repo

DEFAULT_TARGET = "models/gen_mrpc/auber/seed_0/evaluate/metrics.json"
OUTPUT_FOLDERS = ("data", "models", "results")
# What differs between any two builds, cold or warm: the datasets library's random fingerprints (and the checksum
# files listing them), and measured durations.
NONDETERMINISTIC = ("state.json", "checksums.sha256", "search_log.json")


def build(folder: Path, target: str, warm: bool) -> tuple[float, dict[str, str]]:
    repo = make_workflow_repo(folder, REPO_ROOT / "tests/configs/tiny.yaml")
    env = dict(command_env(), **{WARM_START_ENV: "1" if warm else "0"})
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", target], cwd=repo, env=env, check=True,
                   capture_output=True)
    seconds = time.perf_counter() - started
    digests = {str(path.relative_to(repo)): hashlib.sha256(path.read_bytes()).hexdigest()
               for name in OUTPUT_FOLDERS for path in sorted((repo / name).rglob("*")) if path.is_file()}
    return seconds, digests


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default=DEFAULT_TARGET)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    seconds = {False: [], True: []}
    differing: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="warm-bench-") as root:
        for number in range(args.rounds):
            order = (False, True) if number % 2 == 0 else (True, False)
            digests = {}
            for warm in order:
                took, digests[warm] = build(Path(root, f"round{number}-{'warm' if warm else 'cold'}"), args.target,
                                            warm)
                seconds[warm].append(took)
                print(f"round {number}: {'warm' if warm else 'cold'} {took:.1f} s", flush=True)
            differing |= {name for name in digests[False].keys() | digests[True].keys()
                          if digests[False].get(name) != digests[True].get(name)}
    cold, warm = statistics.median(seconds[False]), statistics.median(seconds[True])
    print(f"target {args.target}: cold {cold:.1f} s, warm {warm:.1f} s (medians of {args.rounds}): "
          f"cold / warm {cold / warm:.2f}; load average {os.getloadavg()[0]:.2f}")
    unexpected = sorted(name for name in differing if not name.endswith(NONDETERMINISTIC))
    expected = sorted(differing - set(unexpected))
    print(f"outputs differing as between any two builds: {len(expected)} {expected}")
    print(f"other differences: {len(unexpected)} {unexpected}")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
