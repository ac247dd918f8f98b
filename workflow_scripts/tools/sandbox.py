"""A temporary copy of the workflow as its own git + DVC repository, and its command lines run with this
checkout's code and this venv's tools (the tests' workflows and the kill-and-resume drills)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from workflow_scripts.pipeline.dag import PACKAGE_DIR
from workflow_scripts.pipeline.warm_start import WARM_START_ENV

REPO_ROOT = PACKAGE_DIR.parent
WORKFLOW_FILES = ["Snakefile", "rules", "report", "workflow_scripts", "profiles", ".dvcignore", ".gitignore"]


def command_env() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # snakemake/dvc of this venv
    # This checkout's workflow_scripts wherever a command runs (a folder with a copy of it, where `python -m` finds
    # the copy first, or one with symlinks to the Snakefile only), even when the venv's editable install points at
    # another checkout.
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    # Jobs start warm, as under `make run` (pipeline/warm_start.py), unless the caller's environment says 0.
    env.setdefault(WARM_START_ENV, "1")
    return env


def run(command: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=command_env(), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def make_workflow_repo(destination: Path, params_file: Path) -> Path:
    """The workflow's files, `params_file` as params.yaml, git and DVC initialized and dvc.yaml generated."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, destination / name)
    shutil.copy(params_file, destination / "params.yaml")
    run(["git", "init", "-q"], destination)
    run([sys.executable, "-m", "dvc", "init", "-q"], destination)
    shutil.copy(REPO_ROOT / ".dvc" / "config", destination / ".dvc" / "config")
    run([sys.executable, "-m", "workflow_scripts.pipeline.dvc_sync"], destination)
    return destination
