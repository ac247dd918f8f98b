"""The cluster path: the real `snakemake` command line with the generic cluster executor and a "cluster" that
runs each submitted job script as its own background process (profiles/local-submit), and the SLURM profile.

1. A throwaway Snakefile (3 independent jobs and 1 that gathers them): every job is its own submission and
   its own process, through command-line options and through a profile directory. The fast check.
2. profiles/slurm and profiles/cluster-generic load on the workflow (dry run, no scheduler needed), and the
   sbatch lines each makes carry the partition, wall time, memory, CPUs and GPUs set for each rule (a fake
   sbatch on PATH; for the generic profile it hands the job to the local "cluster", so the jobs really run).
The workflow on a real SLURM (Bort's candidates, one sbatch job each) is tests/e2e/test_slurm_e2e.py.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT
from workflow_repo import command_env, make_workflow_repo, run

pytestmark = pytest.mark.e2e
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
LOCAL_SUBMIT = REPO_ROOT / "profiles" / "local-submit"
# Status rounds every second instead of every 10 (the default): the jobs here take seconds.
FAST_POLLING = ["--seconds-between-status-checks", "1", "--latency-wait", "5"]

THREE_AND_ONE = """
rule all:
    input: "gathered.txt"

# Each job writes the id the local "cluster" gave it, so the test can tell which process built which file.
rule part:
    output: "part_{index}.txt"
    threads: 1
    resources: mem_mb=100
    shell: "echo $LOCAL_SUBMIT_JOB_ID > {output}"

rule gather:
    input: expand("part_{index}.txt", index=[1, 2, 3])
    output: "gathered.txt"
    threads: 1
    resources: mem_mb=100
    shell: "cat {input} > {output}"
"""


def read_submit_log(path: Path) -> list[tuple[str, str]]:
    """(job id, rule) per submission, in order; the rule is read from the job script name snakejob.<rule>.<n>.sh."""
    submissions = []
    for line in path.read_text().splitlines():
        jobid, jobscript = line.split("\t")
        submissions.append((jobid, Path(jobscript).name.split(".")[1]))
    return submissions


def assert_three_parts_ran_as_three_submitted_processes(workdir: Path, submit_log: Path):
    submissions = read_submit_log(submit_log)
    assert [rule for _, rule in submissions] == ["part", "part", "part", "gather"]  # `all` runs locally
    part_ids = [jobid for jobid, rule in submissions if rule == "part"]
    assert len(set(part_ids)) == 3
    # each output was written by the process its submission started
    assert sorted((workdir / f"part_{index}.txt").read_text().strip() for index in (1, 2, 3)) == sorted(part_ids)
    assert sorted((workdir / "gathered.txt").read_text().split()) == sorted(part_ids)


def test_each_job_is_its_own_submission_from_the_command_line_and_from_a_profile(tmp_path):
    submit_cmd, status_cmd = str(LOCAL_SUBMIT / "submit.sh"), str(LOCAL_SUBMIT / "status.sh")

    by_options = tmp_path / "by_options"
    by_options.mkdir()
    (by_options / "Snakefile").write_text(THREE_AND_ONE)
    submit_log = tmp_path / "by_options.log"  # outside the default place: LOCAL_SUBMIT_LOG is honoured
    env = dict(command_env(), LOCAL_SUBMIT_LOG=str(submit_log))
    result = subprocess.run(SNAKEMAKE + ["--executor", "cluster-generic", "--jobs", "3",
                                         "--cluster-generic-submit-cmd", submit_cmd,
                                         "--cluster-generic-status-cmd", status_cmd, *FAST_POLLING],
                            cwd=by_options, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert_three_parts_ran_as_three_submitted_processes(by_options, submit_log)

    # The same through a profile (keys are the long options without dashes), with the default submit log.
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "config.yaml").write_text(yaml.safe_dump({
        "executor": "cluster-generic", "jobs": 3,
        "cluster-generic-submit-cmd": submit_cmd, "cluster-generic-status-cmd": status_cmd,
        "seconds-between-status-checks": 1, "latency-wait": 5}))
    by_profile = tmp_path / "by_profile"
    by_profile.mkdir()
    (by_profile / "Snakefile").write_text(THREE_AND_ONE)
    result = run(SNAKEMAKE + ["--profile", str(profile)], by_profile)
    assert f"Using profile {profile}" in result.stdout + result.stderr
    assert_three_parts_ran_as_three_submitted_processes(by_profile, by_profile / ".snakemake/local-submit.log")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    # The copy carries the profiles (workflow_repo.WORKFLOW_FILES): the commands below use them from the copy's
    # root, as a user runs them from the repository root; profiles/default is read by every run there.
    return make_workflow_repo(tmp_path_factory.mktemp("workflow"), REPO_ROOT / "tests/configs/tiny.yaml")


@pytest.mark.parametrize("profile, partition_resource", [("slurm", "slurm_partition"),
                                                         ("cluster-generic", "partition")])
def test_the_cluster_profiles_load_on_the_workflow_in_a_dry_run(repo, profile, partition_resource):
    # No scheduler on this machine: a dry run neither submits nor queries, so no sbatch/sinfo is needed.
    result = run(SNAKEMAKE + ["--profile", f"profiles/{profile}", "--dry-run"], repo)
    log = result.stdout + result.stderr
    # the workflow profile profiles/default is read too; the cluster profile's settings below are still in force
    assert f"Using profiles profiles/{profile} and workflow specific profile profiles/default" in log
    assert "This was a dry-run" in log
    finetune = log.split("rule finetune_initial:", 1)[1].split("\n\n", 1)[0]
    assert f"{partition_resource}=EDIT_ME_gpu_partition" in finetune and "gpu=1" in finetune
    assert "threads: 8" in finetune  # set-threads, not the core count of the machine that submits


SLURM_RULES = """
rule all:
    input: "finetuned.txt", "distilled.txt", "prepared.txt"

rule finetune_initial:
    output: "finetuned.txt"
    threads: workflow.cores
    resources: mem_mb=8000
    shell: "touch {output}"

rule kd_pretrain:
    output: "distilled.txt"
    threads: 4  # the profile's set-threads gives it 8
    resources: mem_mb=8000, gpu=2
    shell: "touch {output}"

rule prepare_task:
    output: "prepared.txt"
    threads: 1
    resources: mem_mb=2000
    shell: "touch {output}"
"""
# A fake SLURM for a real (not dry) run of the plugin: sbatch records its arguments and refuses the job (so
# nothing waits on a queue); sacctmgr, which the plugin asks to validate slurm_account, accepts the profile's
# placeholder; sinfo/squeue/sacct/scontrol, which it probes for its status command and MinJobAge, answer
# nothing. A dry run needs none of them.
FAKE_SBATCH = '#!/bin/sh\necho "$@" >> "$FAKE_SLURM_LOG"\necho "sbatch: error: fake SLURM" >&2\nexit 1\n'
FAKE_SACCTMGR = "#!/bin/sh\necho EDIT_ME_account\n"
# An sbatch that records its arguments and hands the job script (its last argument) to the local "cluster".
FORWARDING_SBATCH = f'#!/bin/bash\necho "$@" >> "$FAKE_SLURM_LOG"\nexec {LOCAL_SUBMIT / "submit.sh"} "${{!#}}"\n'


def fake_slurm(tmp_path: Path, sbatch: str) -> tuple[Path, dict]:
    """A workflow folder with SLURM_RULES, and an environment with fake SLURM commands first on PATH."""
    shims = tmp_path / "bin"
    shims.mkdir()
    for name, text in {"sbatch": sbatch, "sacctmgr": FAKE_SACCTMGR, "sinfo": "#!/bin/sh\n",
                       "squeue": "#!/bin/sh\n", "sacct": "#!/bin/sh\n", "scontrol": "#!/bin/sh\n"}.items():
        (shims / name).write_text(text)
        (shims / name).chmod(0o755)
    workdir = tmp_path / "workflow"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(SLURM_RULES)
    env = command_env()
    env.update(PATH=f"{shims}{os.pathsep}{env['PATH']}", FAKE_SLURM_LOG=str(tmp_path / "sbatch.log"))
    return workdir, env


def test_the_slurm_profile_asks_sbatch_for_each_rules_partition_time_memory_cpus_and_gpus(tmp_path):
    workdir, env = fake_slurm(tmp_path, FAKE_SBATCH)
    result = subprocess.run(SNAKEMAKE + ["--profile", str(REPO_ROOT / "profiles/slurm"), "--retries", "0",
                                         "--slurm-init-seconds-before-status-checks", "1"],
                            cwd=workdir, env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "fake SLURM" in result.stdout + result.stderr  # every sbatch refused
    calls = {line.split("--comment rule_", 1)[1].split()[0]: line.split(" --wrap", 1)[0]
             for line in (tmp_path / "sbatch.log").read_text().splitlines()}
    assert sorted(calls) == ["finetune_initial", "kd_pretrain", "prepare_task"]
    expected = {
        "finetune_initial": ["-p EDIT_ME_gpu_partition", "-t 120", "--mem 16000", "--cpus-per-task=8", "--gpus=1"],
        "kd_pretrain": ["-p EDIT_ME_gpu_partition", "-t 2880", "--mem 64000", "--cpus-per-task=8", "--gpus=2"],
        "prepare_task": ["-p EDIT_ME_partition", "-t 30", "--mem 2000", "--cpus-per-task=1"],
    }
    for rule, flags in expected.items():
        assert "-A EDIT_ME_account" in calls[rule]
        for flag in flags:
            assert f" {flag}" in calls[rule], (rule, flag, calls[rule])
    assert "--gpus" not in calls["prepare_task"]


def test_the_generic_profiles_sbatch_template_is_filled_per_rule_and_its_jobs_run(tmp_path):
    workdir, env = fake_slurm(tmp_path, FORWARDING_SBATCH)
    # The profile as shipped (flag files for job states, no status command), polled every second.
    result = subprocess.run(SNAKEMAKE + ["--profile", str(REPO_ROOT / "profiles/cluster-generic"), *FAST_POLLING],
                            cwd=workdir, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert all((workdir / name).is_file() for name in ("finetuned.txt", "distilled.txt", "prepared.txt"))
    calls = {line.split("--job-name=smk-", 1)[1].split("-")[0]: line.split()
             for line in (tmp_path / "sbatch.log").read_text().splitlines()}
    expected = {
        "finetune_initial": ["--partition=EDIT_ME_gpu_partition", "--time=120", "--mem=16000M",
                             "--cpus-per-task=8", "--gres=gpu:1"],
        "kd_pretrain": ["--partition=EDIT_ME_gpu_partition", "--time=2880", "--mem=64000M", "--cpus-per-task=8",
                        "--gres=gpu:2"],
        "prepare_task": ["--partition=EDIT_ME_partition", "--time=30", "--mem=2000M", "--cpus-per-task=1",
                         "--gres=gpu:0"],
    }
    assert sorted(calls) == sorted(expected)
    for rule, flags in expected.items():
        assert set(flags) <= set(calls[rule]), (rule, calls[rule])
