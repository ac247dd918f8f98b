"""The tiny workflow built once per test session, whichever pytest-xdist worker asks first (modules use it with
`from built_workflow import built, repo`).

The build (every rule of `snakemake all` on tests/configs/tiny.yaml) is the suite's largest cost. Modules that only
read it, and those that change a copy of it, share one build: the first worker to ask builds it under a file lock
in the session's shared temporary root, the others wait and reuse it.
"""
import shutil
import sys
from pathlib import Path

import pytest
from filelock import FileLock

from conftest import REPO_ROOT
from workflow_repo import make_workflow_repo, run

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--cores", "2"]
DVC = [sys.executable, "-m", "dvc"]


def build_tiny_workflow(folder: Path) -> Path:
    """snakemake builds everything, then the result is committed (the baseline of `dvc metrics/plots diff`)."""
    repo = make_workflow_repo(folder, REPO_ROOT / "tests/configs/tiny.yaml")
    run(SNAKEMAKE, repo)
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-qm", "baseline"], repo)
    return repo


@pytest.fixture(scope="session")
def built(tmp_path_factory, worker_id) -> Path:
    """The built tiny workflow. Read it only: a test that changes something works on a copy (`repo`)."""
    shared_root = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    folder = shared_root / "built_workflow"
    done, failed = shared_root / "built_workflow.done", shared_root / "built_workflow.failed"
    with FileLock(str(shared_root / "built_workflow.lock")):
        if failed.exists():  # another worker's build failed: report it rather than build again
            raise AssertionError(f"the shared tiny-workflow build failed on another worker:\n{failed.read_text()}")
        if not done.exists():
            try:
                build_tiny_workflow(folder)
            except BaseException as error:
                failed.write_text(str(error))
                raise
            done.touch()
    return folder


@pytest.fixture
def repo(built, tmp_path) -> Path:
    """A private copy of the built workflow (checkpoints, DVC cache, Snakemake's metadata, git history)."""
    return Path(shutil.copytree(built, tmp_path / "workflow", symlinks=True))
