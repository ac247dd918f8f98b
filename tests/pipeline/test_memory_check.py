"""The memory check: every stage logs its exact peak at exit; a rule's largest peak set beside its mem_mb, and a rule
whose peak exceeds its mem_mb is reported and fails the check."""
import logging
from pathlib import Path
from types import SimpleNamespace

from workflow_scripts.core.io_utils import setup_logging
from workflow_scripts.pipeline.cli import log_peak_memory, peak_memory_mb
from workflow_scripts.tools.memory_check import (declared_memory, logged_peak_mb, measured_memory, memory_table,
                                                 to_markdown)


def test_the_stage_logs_its_peak_in_the_form_the_check_reads(tmp_path):
    log_file = tmp_path / "stage.log"
    logger = setup_logging(str(log_file))
    log_peak_memory(logger)
    for handler in logger.handlers:
        handler.flush()
    assert logged_peak_mb(log_file) == peak_memory_mb() > 50  # this Python process, torch imported
    assert logged_peak_mb(tmp_path / "missing.log") is None
    logging.getLogger("workflow_scripts").handlers.clear()


def test_a_rule_above_its_mem_mb_is_under_declared_and_a_far_larger_mem_mb_is_loose(tmp_path):
    logs = {"finetune_layer/t-0.log": 900, "finetune_layer/t-1.log": 1100, "model_table/t.log": 1500}
    for name, peak in logs.items():
        (tmp_path / "logs" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "logs" / name).write_text(f"12:00:00 INFO wrote x\n12:00:01 INFO peak resident memory {peak} MB\n")
    (tmp_path / "logs/evaluate").mkdir()
    (tmp_path / "logs/evaluate/t.log").write_text("12:00:00 INFO killed before it could log its peak\n")

    def job(rule, stem, mem_mb):
        return SimpleNamespace(rule=SimpleNamespace(name=rule), resources={"mem_mb": mem_mb},
                               log=[f"logs/{rule}/{stem}.log"])

    jobs = [job("finetune_layer", "t-0", 1000), job("finetune_layer", "t-1", 1000), job("evaluate", "t", 1000),
            job("model_table", "t", 4000), job("prune_layer", "never_ran", 2000)]
    rows = {row.rule: row for row in memory_table(declared_memory(jobs), measured_memory(jobs, tmp_path))}
    assert set(rows) == {"finetune_layer", "model_table"}  # no peak logged: not measured
    assert (rows["finetune_layer"].jobs, rows["finetune_layer"].peak_mb, rows["finetune_layer"].peak_job) == \
        (2, 1100.0, "t-1")
    assert rows["finetune_layer"].verdict(loose=4) == "UNDER-DECLARED"
    assert rows["model_table"].verdict(loose=4) == "ok" and rows["model_table"].verdict(loose=2) == "loose"
    table = to_markdown(list(rows.values()), loose=4)
    assert "| finetune_layer | 2 | 1000 | 1100 | 1.10 | t-1 | UNDER-DECLARED |" in table
