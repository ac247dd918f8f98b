"""Declared memory against measured peaks: each rule's `mem_mb` beside the largest peak its jobs reached.

    python -m workflow_scripts.tools.memory_check [--markdown FILE] [--loose 4]

Every rule has a Snakemake `benchmark:` file, logs/benchmarks/<rule>/<job>.tsv (max_rss, in MB, sampled by
Snakemake: every 0.5 s for the first 30 s of a job, then every 30 s, so a short peak of a long job can be missed),
and every stage logs the kernel's exact high-water mark when it exits ("peak resident memory N MB", the larger of
the stage's own and its finished children's). A job's peak is the larger of the two. The check reads what the last
runs left in logs/, whatever their target was.

Exit status 1 when a rule's peak exceeds its mem_mb: on a cluster such a job is killed, or shares a node it does
not fit on. Rules declared at more than --loose times their peak are marked loose (they block cluster slots) but
do not fail the check.
"""
from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from workflow_scripts.pipeline.cli import PEAK_MEMORY_MESSAGE

BENCHMARK_DIR = Path("logs/benchmarks")
LOGGED_PEAK = re.compile(re.escape(PEAK_MEMORY_MESSAGE).replace("%d", r"(\d+)"))


@dataclass
class RuleMemory:
    rule: str
    declared_mb: float | None
    jobs: int
    peak_mb: float
    peak_job: str

    def verdict(self, loose: float) -> str:
        if self.declared_mb is None:
            return "no mem_mb"
        if self.peak_mb > self.declared_mb:
            return "UNDER-DECLARED"
        return "loose" if self.declared_mb > loose * self.peak_mb else "ok"


def benchmark_peak_mb(path: Path) -> float:
    """The largest max_rss of a benchmark file's rows (one per repeat); 0 when Snakemake collected none (NA)."""
    with open(path, newline="") as handle:
        values = [row.get("max_rss", "") for row in csv.DictReader(handle, delimiter="\t")]
    numbers = [float(value) for value in values if re.fullmatch(r"[0-9.]+", value or "")]
    return max(numbers, default=0.0)


def logged_peak_mb(log_file: Path) -> float:
    """The peak the stage logged at exit (0 when the log has none: a job that is not a stage, or an old log)."""
    if not log_file.is_file():
        return 0.0
    return max((float(match.group(1)) for match in LOGGED_PEAK.finditer(log_file.read_text(errors="replace"))),
               default=0.0)


def declared_memory(jobs) -> dict[str, float]:
    """mem_mb of every rule in the DAG (the first job's: the rules declare one value, not a function of input)."""
    declared = {}
    for job in jobs:
        if job.rule.name not in declared and "mem_mb" in job.resources.keys():
            declared[job.rule.name] = float(job.resources["mem_mb"])
    return declared


def measured_memory(benchmark_dir: Path, jobs) -> dict[str, tuple[int, float, str]]:
    """Per rule: (jobs measured, peak MB, the job that reached it), from benchmark files and their jobs' logs."""
    log_of = {str(job.benchmark): Path(str(job.log[0])) for job in jobs if job.benchmark and job.log}
    measured: dict[str, tuple[int, float, str]] = {}
    for path in sorted(benchmark_dir.glob("*/*.tsv")):
        rule = path.parent.name
        log_file = log_of.get(str(path), Path("logs") / rule / f"{path.stem}.log")
        peak = max(benchmark_peak_mb(path), logged_peak_mb(log_file))
        count, best, best_job = measured.get(rule, (0, -math.inf, ""))
        measured[rule] = (count + 1, max(best, peak), path.stem if peak > best else best_job)
    return measured


def memory_table(declared: dict[str, float], measured: dict[str, tuple[int, float, str]]) -> list[RuleMemory]:
    return [RuleMemory(rule, declared.get(rule), count, peak, job)
            for rule, (count, peak, job) in sorted(measured.items())]


def to_markdown(rows: list[RuleMemory], loose: float) -> str:
    lines = ["| rule | jobs measured | mem_mb declared | peak MB | peak / declared | job at the peak | verdict |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        share = f"{row.peak_mb / row.declared_mb:.2f}" if row.declared_mb else "-"
        declared = f"{row.declared_mb:.0f}" if row.declared_mb is not None else "-"
        lines.append(f"| {row.rule} | {row.jobs} | {declared} | {row.peak_mb:.0f} | {share} | {row.peak_job} "
                     f"| {row.verdict(loose)} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmarks", default=str(BENCHMARK_DIR), help="folder of the benchmark files")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--loose", type=float, default=4.0, help="mem_mb above this multiple of the peak is loose")
    parser.add_argument("--configfile", action="append", default=[], help="config the DAG is read with")
    args = parser.parse_args(argv)
    from workflow_scripts.pipeline.dag import read_snakemake_jobs

    jobs = read_snakemake_jobs(configfiles=args.configfile)
    rows = memory_table(declared_memory(jobs), measured_memory(Path(args.benchmarks), jobs))
    if not rows:
        print(f"no benchmark files under {args.benchmarks}: run the workflow first", file=sys.stderr)
        return 2
    table = to_markdown(rows, args.loose)
    print(table, end="")
    if args.markdown:
        Path(args.markdown).write_text(table)
    under = [row.rule for row in rows if row.verdict(args.loose) == "UNDER-DECLARED"]
    if under:
        print(f"mem_mb below the measured peak: {', '.join(under)}", file=sys.stderr)
    return 1 if under else 0


if __name__ == "__main__":
    sys.exit(main())
