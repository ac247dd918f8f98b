"""Declared memory against measured peaks: each rule's `mem_mb` beside the largest peak its jobs reached.

    python -m workflow_scripts.tools.memory_check [--markdown FILE] [--loose 4]

Every stage logs the kernel's exact high-water mark of its resident memory when it exits ("peak resident memory N
MB": getrusage, the larger of the stage's own and its finished children's, such as torchrun's workers). The check
reads the logs the last runs left (logs/<rule>/<job>.log, whatever their target was), takes each rule's largest
peak and sets it beside the rule's `mem_mb`.

Snakemake's `benchmark:` directive is not used: it samples a job's memory with psutil's full memory info (a read
of /proc/<pid>/smaps) every 0.5 s for the job's first 30 s, and that slowed the short jobs of make run by a quarter
or more (a layer fine-tune: 23-30 s sampled against 16-18 s not, side by side); after 30 s it samples every 30 s
and misses short peaks. The logged high-water mark costs nothing and misses nothing.

Exit status 1 when a rule's peak exceeds its mem_mb: on a cluster such a job is killed, or shares a node it does not
fit on. Rules declared at more than --loose times their peak are marked loose (they hold cluster memory they do not
use) but do not fail the check.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from workflow_scripts.pipeline.cli import PEAK_MEMORY_MESSAGE

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


def logged_peak_mb(log_file: Path) -> float | None:
    """The peak the stage logged at exit; None when the log has none (not run, killed, or not a stage)."""
    if not log_file.is_file():
        return None
    peaks = [float(match.group(1)) for match in LOGGED_PEAK.finditer(log_file.read_text(errors="replace"))]
    return max(peaks) if peaks else None


def declared_memory(jobs) -> dict[str, float]:
    """mem_mb of every rule in the DAG (the first job's: the rules declare one value, not a function of input)."""
    declared = {}
    for job in jobs:
        if job.rule.name not in declared and "mem_mb" in job.resources.keys():
            declared[job.rule.name] = float(job.resources["mem_mb"])
    return declared


def measured_memory(jobs, root: Path = Path(".")) -> dict[str, tuple[int, float, str]]:
    """Per rule: (jobs with a logged peak, the largest peak in MB, the job's log that has it)."""
    measured: dict[str, tuple[int, float, str]] = {}
    for job in jobs:
        for log in job.log:
            peak = logged_peak_mb(root / str(log))
            if peak is None:
                continue
            count, best, best_log = measured.get(job.rule.name, (0, -math.inf, ""))
            measured[job.rule.name] = (count + 1, max(best, peak), Path(str(log)).stem if peak > best else best_log)
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
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--loose", type=float, default=4.0, help="mem_mb above this multiple of the peak is loose")
    parser.add_argument("--configfile", action="append", default=[], help="config the DAG is read with")
    args = parser.parse_args(argv)
    from workflow_scripts.pipeline.dag import read_snakemake_jobs

    jobs = read_snakemake_jobs(configfiles=args.configfile)
    rows = memory_table(declared_memory(jobs), measured_memory(jobs))
    if not rows:
        print("no stage log under logs/ records a peak: run the workflow first", file=sys.stderr)
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
