"""The SLURM profile on a real scheduler: a one-node SLURM on this machine (workflow_scripts/tools/one_node_slurm,
installed and started when missing; as root, as in CI), Snakemake's official SLURM executor plugin, and the
profile as a user edits it. On a copy of the local build of the same configuration (tests/built_workflow.py), Bort's
search candidates are trained again as sbatch jobs, each its own job; their outputs equal the local ones."""
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from built_workflow import built  # noqa: F401 (the shared local build)
from conftest import REPO_ROOT
from workflow_repo import jobs_run_by_snakemake, run
from workflow_scripts.tools.compare_runs import compare_runs
from workflow_scripts.tools.one_node_slurm import SlurmSetupError, ensure_cluster

pytestmark = pytest.mark.e2e
CANDIDATES = ["D1_A2_H16_I32", "D1_A2_H32_I32"]  # tiny.yaml's valid architectures
TARGETS = [f"models/bort/fptas/candidates/{tag}/metrics.json" for tag in CANDIDATES]


@pytest.fixture(scope="module")
def partition() -> str:
    """A running one-node cluster; the test fails (never skips) with the reason when there can be none."""
    if os.geteuid() != 0:
        pytest.fail("the SLURM test installs and starts a one-node cluster, which needs root (CI runs as root)")
    try:
        return ensure_cluster()
    except SlurmSetupError as error:
        pytest.fail(f"no one-node SLURM cluster: {error}")


def edited_profile(folder: Path, partition: str, cpus: int) -> Path:
    """profiles/slurm as its header asks a user to edit it, for a node without GPUs: the partition set, the
    account line deleted (the plugin then proceeds without one), the GPU requests and GPU partitions deleted,
    the thread counts capped at the node's CPUs."""
    profile = yaml.safe_load((REPO_ROOT / "profiles/slurm/config.yaml").read_text())
    profile["default-resources"]["slurm_partition"] = partition
    del profile["default-resources"]["slurm_account"]
    for resources in profile["set-resources"].values():
        resources.pop("gpu", None)
        resources.pop("slurm_partition", None)
    profile["set-threads"] = {rule: min(threads, cpus) for rule, threads in profile["set-threads"].items()}
    profile["cores"] = cpus
    profile["latency-wait"] = 5  # one node: outputs are on the same disk at once
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder


def test_bort_candidates_run_as_sbatch_jobs_and_match_the_local_run(partition, built, tmp_path):
    repo = Path(shutil.copytree(built, tmp_path / "workflow", symlinks=True))
    profile = edited_profile(tmp_path / "profile", partition, cpus=2)
    # no accounting database on this cluster: job states come from squeue (slurm.conf keeps finished jobs there)
    # the targets before --forcerun, which takes every word after it
    result = run([sys.executable, "-m", "snakemake", *TARGETS, "--profile", str(profile), "--slurm-status-command",
                  "squeue", "--forcerun", "fptas_candidate_train"], repo)
    log = result.stdout + result.stderr
    jobs = jobs_run_by_snakemake(log)
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", log)
    assert jobs == ["fptas_candidate_train"] * len(CANDIDATES)
    assert len(submitted) == len(set(submitted)) == len(jobs)  # every job its own sbatch job, none run locally
    # SLURM's own record of those job ids (finished jobs stay in squeue's view: slurm.conf's MinJobAge)
    states = run(["squeue", "--states=all", "--noheader", "--format=%i %T", "--jobs", ",".join(submitted)], repo).stdout
    assert dict(line.split() for line in states.splitlines()) == {jobid: "COMPLETED" for jobid in submitted}

    comparison = compare_runs(built, repo, [f"models/bort/fptas/candidates/{tag}" for tag in CANDIDATES])
    assert comparison.differences == [] and comparison.identical >= len(CANDIDATES)
