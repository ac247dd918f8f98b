"""Two runs of the workflow, compared bit for bit: every metrics file and every checkpoint's weights they share.

    python -m workflow_scripts.tools.compare_runs RUN_A RUN_B [--under models results]

RUN_A and RUN_B are workflow folders (a clone's, a rerun's). For each `*metrics.json` found in both, the values
are compared exactly (floats included) after dropping what measures the machine rather than the model: wall-clock
times and latencies (keys matching TIMING_KEY) and the file's own checksum. For each checkpoint folder found in
both, the sha256 of its `.safetensors` files (weights, masks) that checksums.sha256 lists are compared: equal hashes
are bit-identical tensors. (Training logs and optimizer states beside them hold timings.)

Prints one line per difference and a summary; exit status 1 when anything shared differs. Used for the
determinism check (the same jobs twice on one machine) and the kill-and-resume drills (an interrupted run against an
uninterrupted one). Files in one run only are counted, not failed: the two runs may have had different targets.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

TIMING_KEY = re.compile(r"latency|seconds|_ms$|_s$|elapsed|wall|time|step_cost", re.IGNORECASE)
IGNORED_KEYS = {"checksum"}
CHECKSUMS = "checksums.sha256"


@dataclass
class Comparison:
    identical: int = 0
    differences: list[str] = field(default_factory=list)
    only_in_one: int = 0


def without_timings(value):
    """`value` with every timing entry and the checksum removed, at any depth."""
    if isinstance(value, dict):
        return {key: without_timings(item) for key, item in value.items()
                if key not in IGNORED_KEYS and not TIMING_KEY.search(key)}
    if isinstance(value, list):
        return [without_timings(item) for item in value]
    return value


def differing_paths(a, b, prefix: str = "") -> list[str]:
    """Dotted paths where two JSON values differ (exact equality; floats too)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [path for key in sorted(set(a) | set(b))
                for path in differing_paths(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else key)]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [path for index, (x, y) in enumerate(zip(a, b)) for path in differing_paths(x, y, f"{prefix}[{index}]")]
    return [] if a == b else [f"{prefix}: {json.dumps(a)[:80]} != {json.dumps(b)[:80]}"]


def read_checksums(path: Path) -> dict[str, str]:
    entries = {}
    for line in path.read_text().splitlines():
        digest, _, name = line.partition("  ")
        entries[name] = digest
    return entries


def compare_files(run_a: Path, run_b: Path, pattern: str, under: list[str], compare, result: Comparison) -> None:
    for folder in under:
        files_a = {path.relative_to(run_a) for path in (run_a / folder).rglob(pattern)}
        files_b = {path.relative_to(run_b) for path in (run_b / folder).rglob(pattern)}
        result.only_in_one += len(files_a ^ files_b)
        for relative in sorted(files_a & files_b):
            found = compare(run_a / relative, run_b / relative)
            result.differences.extend(f"{relative}: {line}" for line in found)
            result.identical += not found


def compare_metrics(path_a: Path, path_b: Path) -> list[str]:
    return differing_paths(without_timings(json.loads(path_a.read_text())),
                           without_timings(json.loads(path_b.read_text())))


def compare_checkpoint(path_a: Path, path_b: Path) -> list[str]:
    a, b = read_checksums(path_a), read_checksums(path_b)
    return [f"{name} differs" for name in sorted(set(a) & set(b))  # weights and masks: logs beside them hold timings
            if a[name] != b[name] and name.endswith(".safetensors")]


def compare_runs(run_a: Path, run_b: Path, under: list[str]) -> Comparison:
    result = Comparison()
    compare_files(run_a, run_b, "*metrics.json", under, compare_metrics, result)
    compare_files(run_a, run_b, CHECKSUMS, under, compare_checkpoint, result)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--under", nargs="+", default=["models", "results"], help="folders compared")
    args = parser.parse_args(argv)
    result = compare_runs(args.run_a, args.run_b, args.under)
    for line in result.differences:
        print(line)
    print(f"{result.identical} shared files identical, {len(result.differences)} differences, "
          f"{result.only_in_one} files in one run only")
    return 1 if result.differences else 0


if __name__ == "__main__":
    sys.exit(main())
