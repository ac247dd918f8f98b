"""A one-node SLURM cluster on this machine, for trying the SLURM profile (and for the test that runs it).

    python -m workflow_scripts.tools.one_node_slurm [--partition debug]     # as root; prints the partition

Installs Debian's `munge slurmctld slurmd slurm-client` when `sbatch` is missing, writes /etc/slurm/slurm.conf for
this host (its CPUs, most of its memory; no accounting database, so job states come from `squeue`), starts munged,
slurmctld and slurmd, and waits until the node accepts jobs. Running it again on a live cluster changes nothing.
Every failure raises SlurmSetupError saying which step failed and what it printed. docs/cluster.md has the recipe.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ["munge", "slurmctld", "slurmd", "slurm-client"]
SLURM_CONF = Path("/etc/slurm/slurm.conf")
# Finished jobs stay in squeue's view this long (seconds): Snakemake's SLURM plugin reads their end state from
# squeue when there is no accounting database (sacct), so it must outlast a status poll.
MIN_JOB_AGE_S = 900
MEMORY_SHARE = 0.9  # of MemTotal declared as RealMemory: slurmd drains a node that declares more than it has


class SlurmSetupError(RuntimeError):
    pass


def _run(step: str, command: list[str], **kwargs) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    except FileNotFoundError as error:
        raise SlurmSetupError(f"{step}: {error}") from error
    if result.returncode != 0:
        raise SlurmSetupError(f"{step}: `{' '.join(command)}` exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result.stdout


def install_packages() -> None:
    if os.geteuid() != 0:
        raise SlurmSetupError(f"SLURM is not installed and installing {' '.join(PACKAGES)} needs root")
    if shutil.which("apt-get") is None:
        raise SlurmSetupError("SLURM is not installed and there is no apt-get to install it with (Debian/Ubuntu only)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _run("apt-get update", ["apt-get", "update", "-qq"], env=env)
    _run("installing SLURM", ["apt-get", "install", "-y", "-qq", *PACKAGES], env=env)


def slurm_conf(host: str, cpus: int, memory_mb: int, partition: str) -> str:
    return "\n".join([
        "# One-node cluster written by workflow_scripts/tools/one_node_slurm.py",
        "ClusterName=local",
        f"SlurmctldHost={host}",
        "SlurmUser=root",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        f"MinJobAge={MIN_JOB_AGE_S}",
        "ReturnToService=2",
        "StateSaveLocation=/var/spool/slurmctld",
        "SlurmdSpoolDir=/var/spool/slurmd",
        "SlurmctldLogFile=/var/log/slurm/slurmctld.log",
        "SlurmdLogFile=/var/log/slurm/slurmd.log",
        f"NodeName={host} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
        f"PartitionName={partition} Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        ""])


def machine_memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(int(line.split()[1]) / 1024 * MEMORY_SHARE)
    raise SlurmSetupError("no MemTotal in /proc/meminfo")


def _running(name: str) -> bool:
    return subprocess.run(["pgrep", "-x", name], capture_output=True).returncode == 0


def start_daemons() -> None:
    if not _running("munged"):
        Path("/run/munge").mkdir(exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        _run("starting munged", ["runuser", "-u", "munge", "--", "/usr/sbin/munged"])
    for folder in ("/var/spool/slurmctld", "/var/spool/slurmd", "/var/log/slurm"):
        Path(folder).mkdir(parents=True, exist_ok=True)
    if not _running("slurmctld"):
        _run("starting slurmctld", ["/usr/sbin/slurmctld"])
    if not _running("slurmd"):
        _run("starting slurmd", ["/usr/sbin/slurmd"])


def wait_until_idle(partition: str, timeout_s: float = 60) -> None:
    deadline = time.time() + timeout_s
    state = ""
    while time.time() < deadline:
        result = subprocess.run(["sinfo", "-h", "-p", partition, "-o", "%t"], capture_output=True, text=True)
        state = (result.stdout + result.stderr).strip()
        if result.returncode == 0 and state.rstrip("*") in ("idle", "mix", "alloc"):
            return
        time.sleep(1)
    raise SlurmSetupError(f"the node of partition {partition!r} is not up after {timeout_s:.0f} s (sinfo: {state!r}; "
                          "see /var/log/slurm/slurmd.log and slurmctld.log)")


def ensure_cluster(partition: str = "debug") -> str:
    """A running one-node cluster with `partition`; returns the partition's name."""
    if shutil.which("sbatch") is None or not Path("/usr/sbin/slurmctld").exists():
        install_packages()
    if not SLURM_CONF.exists():
        if os.geteuid() != 0:
            raise SlurmSetupError(f"{SLURM_CONF} is missing and writing it needs root")
        SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SLURM_CONF.write_text(slurm_conf(socket.gethostname().split(".")[0], os.cpu_count() or 1,
                                         machine_memory_mb(), partition))
    start_daemons()
    wait_until_idle(partition)
    return partition


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partition", default="debug", help="name of the one partition (written to slurm.conf)")
    args = parser.parse_args(argv)
    print(ensure_cluster(args.partition))


if __name__ == "__main__":
    main()
