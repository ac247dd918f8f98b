"""The one-pass adoption of finished stages into dvc.lock writes what `dvc commit` writes, in a small real DVC repo."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workflow_scripts.pipeline.dvc_commit import commit_stages, parse_each_yaml_text_once

DVC = [sys.executable, "-m", "dvc"]
DVC_YAML = """\
stages:
  make_a:
    cmd: python -c "open('a.txt', 'w').write('a')"
    params: [alpha.rate, alpha.epochs]
    outs: [a.txt]
  make_b:
    cmd: python -c "open('b/out.txt', 'w').write(open('a.txt').read() * 2)"
    deps: [a.txt]
    params: [beta]
    outs: [b]
  make_c:
    cmd: python -c "open('c.txt', 'w').write('c')"
    outs: [c.txt]
"""


def sh(command: list[str], cwd: Path) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def finished_outside_dvc(tmp_path) -> Path:
    """A DVC repo whose stages' outputs were made by running the commands by hand (as Snakemake does); make_c has a
    lock entry already."""
    repo = tmp_path / "repo"
    repo.mkdir()
    sh(["git", "init", "-q"], repo)
    sh(DVC + ["init", "-q"], repo)
    (repo / "params.yaml").write_text("alpha: {rate: 1.0e-3, epochs: 3}\nbeta: [1, 2]\nunused: yes\n")
    (repo / "dvc.yaml").write_text(DVC_YAML)
    sh(DVC + ["repro", "-q", "make_c"], repo)
    (repo / "a.txt").write_text("a")
    (repo / "b").mkdir()
    (repo / "b/out.txt").write_text("aa")
    return repo


def test_the_lock_equals_dvc_commits_and_dvc_has_nothing_to_do(finished_outside_dvc, tmp_path, monkeypatch):
    by_dvc = Path(shutil.copytree(finished_outside_dvc, tmp_path / "by_dvc", symlinks=True))
    sh(DVC + ["commit", "--force", "make_a", "make_b"], by_dvc)

    monkeypatch.chdir(finished_outside_dvc)
    assert commit_stages(["make_a", "make_b"]) == 2

    lock = (finished_outside_dvc / "dvc.lock").read_text()
    assert lock == (by_dvc / "dvc.lock").read_text()
    assert "make_c:" in lock  # the entries of other stages are kept
    assert "Data and pipelines are up to date" in sh(DVC + ["status"], finished_outside_dvc)


def test_an_unknown_stage_name_is_not_counted(finished_outside_dvc, monkeypatch):
    monkeypatch.chdir(finished_outside_dvc)
    assert commit_stages(["make_a", "no_such_stage"]) == 1


def test_parses_are_memoized_by_text_and_each_caller_gets_its_own_copy(tmp_path):
    from dvc.utils.serialize import load_yaml

    path = tmp_path / "params.yaml"
    path.write_text("a: {b: 1}\n")
    with parse_each_yaml_text_once():
        first = load_yaml(str(path))
        first["a"]["b"] = 99
        assert load_yaml(str(path)) == {"a": {"b": 1}}
        path.write_text("a: {b: 2}\n")
        assert load_yaml(str(path)) == {"a": {"b": 2}}
    from dvc.utils.serialize import _yaml
    assert _yaml.parse_yaml.__name__ == "parse_yaml"  # DVC's own parser is back
