"""A temporary copy of the workflow as its own git + DVC repository, and helpers to drive its command lines."""
from __future__ import annotations

# The sandbox itself is the library's (the kill-and-resume drills use it too).
from workflow_scripts.tools.sandbox import REPO_ROOT, WORKFLOW_FILES, command_env, make_workflow_repo, run  # noqa: F401


def stages_run_by_dvc(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def jobs_run_by_snakemake(output: str) -> list[str]:
    """Rule names of the jobs a snakemake run (or dry run) executed, from its log lines."""
    return sorted(line.split()[-1].rstrip(":") for line in output.splitlines()
                  if line.startswith(("rule ", "localrule ")) and not line.rstrip().endswith(" all:"))
