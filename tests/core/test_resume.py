"""The resume helper: the fingerprint follows the inputs, the code and the hyperparameters; checkpoints appear
whole or not at all; the newest complete checkpoint of the same fingerprint is the one resumed."""
import os
from dataclasses import dataclass, replace

import pytest

from workflow_scripts.core import resume
from workflow_scripts.core.resume import Checkpoints, fingerprint


@dataclass
class Hyperparameters:
    learning_rate: float = 1e-3
    steps: int = 10


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "corpus"
    (folder / "nested").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "nested" / "b.txt").write_text("b")
    (tmp_path / "selection.json").write_text("{}")
    return {"corpus": str(folder), "selection": str(tmp_path / "selection.json")}


@pytest.fixture
def fake_code(tmp_path, monkeypatch):
    """A stage whose code is one file under tmp_path/code."""
    root = tmp_path / "code"
    root.mkdir()
    (root / "stage.py").write_text("x = 1\n")
    monkeypatch.setattr(resume, "code_files", lambda module, root: ["stage.py"])
    monkeypatch.setattr(resume, "PACKAGE_ROOT", root)
    return root / "stage.py"


def test_the_fingerprint_changes_with_an_input_file_the_code_or_a_hyperparameter(inputs, fake_code):
    def current(hyperparameters=Hyperparameters()):
        return fingerprint(inputs=inputs, code_module="stage", hyperparameters=[hyperparameters])

    original = current()
    assert current() == original                                           # deterministic
    assert current(replace(Hyperparameters(), steps=11)) != original       # a hyperparameter
    nested = os.path.join(inputs["corpus"], "nested", "b.txt")
    with open(nested, "a") as handle:                                      # a file deep under an input folder
        handle.write("more")
    changed_input = current()
    assert changed_input != original
    os.utime(inputs["selection"], ns=(1, 1))                               # an input file's modification time
    assert current() != changed_input
    touched = current()
    fake_code.write_text("x = 2\n")                                        # the code
    assert current() != touched


def test_a_stages_code_covers_the_library_modules_it_imports():
    files = resume.code_files("workflow_scripts.stages.kd_pretrain", str(resume.PACKAGE_ROOT))
    for module in ("stages/kd_pretrain.py", "bort/pretrain.py", "core/training.py", "core/resume.py",
                   "data/corpus.py"):
        assert f"workflow_scripts/{module}" in files
    assert len(resume.code_signature("workflow_scripts.stages.kd_pretrain")) == 64


def test_the_newest_complete_checkpoint_of_the_same_fingerprint_is_resumed(tmp_path):
    output = str(tmp_path / "model")
    checkpoints = Checkpoints(output, "abc", ".checkpoints", "step_", 7)
    assert checkpoints.latest() is None
    for step in (5, 10):
        with checkpoints.write(step) as folder:
            open(os.path.join(folder, "state"), "w").write(str(step))
    with pytest.raises(KeyboardInterrupt):  # killed while writing step 15: nothing of it remains
        with checkpoints.write(15) as folder:
            open(os.path.join(folder, "state"), "w").write("15")
            raise KeyboardInterrupt
    os.makedirs(os.path.join(checkpoints.root, ".step_0000020.partial-x"))  # what a SIGKILL leaves
    assert sorted(os.listdir(checkpoints.root)) == [".step_0000020.partial-x", "step_0000005", "step_0000010"]
    assert checkpoints.latest() == (10, os.path.join(checkpoints.root, "step_0000010"))
    assert sorted(os.listdir(checkpoints.root)) == ["step_0000005", "step_0000010"]
    checkpoints.keep_newest(1)
    assert os.listdir(checkpoints.root) == ["step_0000010"]

    other = Checkpoints(output, "def", ".checkpoints", "step_", 7)  # other inputs, code or hyperparameters
    assert other.latest() is None and not os.path.exists(checkpoints.root)


def test_rounds_resume_up_to_the_first_missing_one_and_move_into_the_output(tmp_path):
    rounds = Checkpoints(str(tmp_path / "agora"), "abc", ".rounds", "round_", 2)
    for index in (0, 1, 3):
        with rounds.write(index):
            pass
    assert [index for index, _ in rounds.consecutive()] == [0, 1]
    assert sorted(os.listdir(rounds.root)) == ["round_00", "round_01"]
    (tmp_path / "out").mkdir()
    rounds.move_into(str(tmp_path / "out"), "rounds")
    assert sorted(os.listdir(tmp_path / "out" / "rounds")) == ["round_00", "round_01"]
    assert (tmp_path / "out" / "rounds" / "round_00" / "checkpoint.json").is_file()
