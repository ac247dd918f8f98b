"""The memory check: a job's peak is the larger of Snakemake's sampled max_rss and the stage's logged exact peak;
a rule whose peak exceeds its mem_mb is reported and fails the check."""
import logging
from pathlib import Path
from types import SimpleNamespace

from workflow_scripts.core.io_utils import setup_logging
from workflow_scripts.pipeline.cli import log_peak_memory, peak_memory_mb
from workflow_scripts.tools.memory_check import (benchmark_peak_mb, declared_memory, logged_peak_mb, measured_memory,
                                                 memory_table, to_markdown)

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write_benchmark(path: Path, *max_rss: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "".join(f"1.0\t0:00:01\t{value}\t1\t1\t1\t0\t0\t50\t1\n" for value in max_rss))


def test_benchmark_peak_takes_the_largest_repeat_and_ignores_na(tmp_path):
    write_benchmark(tmp_path / "a.tsv", "120.50", "NA", "300.25")
    write_benchmark(tmp_path / "b.tsv", "NA")
    assert benchmark_peak_mb(tmp_path / "a.tsv") == 300.25
    assert benchmark_peak_mb(tmp_path / "b.tsv") == 0.0


def test_the_stage_logs_its_peak_in_the_form_the_check_reads(tmp_path):
    log_file = tmp_path / "stage.log"
    logger = setup_logging(str(log_file))
    log_peak_memory(logger)
    for handler in logger.handlers:
        handler.flush()
    assert logged_peak_mb(log_file) == peak_memory_mb() > 50  # this Python process, torch imported
    assert logged_peak_mb(tmp_path / "missing.log") == 0.0
    logging.getLogger("workflow_scripts").handlers.clear()


def test_a_rule_above_its_mem_mb_is_under_declared_and_a_far_larger_mem_mb_is_loose(tmp_path):
    benchmarks, logs = tmp_path / "logs/benchmarks", tmp_path / "logs"
    write_benchmark(benchmarks / "finetune_layer/t-0.tsv", "900")
    write_benchmark(benchmarks / "finetune_layer/t-1.tsv", "1100")
    write_benchmark(benchmarks / "evaluate/t.tsv", "NA")  # a job too short for Snakemake to sample
    (logs / "evaluate").mkdir(parents=True)
    (logs / "evaluate/t.log").write_text("12:00:00 INFO peak resident memory 700 MB\n")
    write_benchmark(benchmarks / "model_table/t.tsv", "1500")

    def job(rule, stem, mem_mb):
        return SimpleNamespace(rule=SimpleNamespace(name=rule), resources={"mem_mb": mem_mb},
                               benchmark=str(benchmarks / rule / f"{stem}.tsv"), log=[str(logs / rule / f"{stem}.log")])

    jobs = [job("finetune_layer", "t-0", 1000), job("finetune_layer", "t-1", 1000), job("evaluate", "t", 1000),
            job("model_table", "t", 4000)]
    rows = {row.rule: row for row in memory_table(declared_memory(jobs), measured_memory(benchmarks, jobs))}
    assert (rows["finetune_layer"].jobs, rows["finetune_layer"].peak_mb, rows["finetune_layer"].peak_job) == \
        (2, 1100.0, "t-1")
    assert rows["finetune_layer"].verdict(loose=4) == "UNDER-DECLARED"
    assert rows["evaluate"].peak_mb == 700.0 and rows["evaluate"].verdict(loose=4) == "ok"  # from the stage's log
    assert rows["model_table"].verdict(loose=4) == "ok" and rows["model_table"].verdict(loose=2) == "loose"
    table = to_markdown(list(rows.values()), loose=4)
    assert "| finetune_layer | 2 | 1000 | 1100 | 1.10 | t-1 | UNDER-DECLARED |" in table
