"""One stage graph: dvc.yaml is what the Snakemake DAG says, and each stage's code/params are the right ones."""
import shutil
import subprocess
import sys

import yaml

from conftest import REPO_ROOT
from workflow_repo import command_env
from workflow_scripts.dag import code_files, dvc_stage_name


def test_committed_dvc_yaml_agrees_with_the_snakemake_dag():
    result = subprocess.run([sys.executable, "-m", "workflow_scripts.dvc_sync", "--check"], cwd=REPO_ROOT,
                            env=command_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_fails_when_dvc_yaml_and_the_dag_disagree(tmp_path):
    for name in ("Snakefile", "rules", "params.yaml", "dvc.yaml"):
        (tmp_path / name).symlink_to(REPO_ROOT / name)
    (tmp_path / "params.yaml").unlink()
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["tasks"] = params["tasks"][:2]          # the DAG shrinks; the committed dvc.yaml does not
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run([sys.executable, "-m", "workflow_scripts.dvc_sync", "--check"], cwd=tmp_path,
                            env=command_env(), capture_output=True, text=True)
    assert result.returncode == 1
    assert "disagrees with the Snakemake DAG" in result.stderr and "-  finetune_initial-gen_rte:" in result.stdout


def test_every_stage_of_dvc_yaml_tracks_its_code_params_and_outputs():
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    rte = stages["finetune_initial-gen_rte"]
    assert rte["cmd"] == "snakemake --cores all --allowed-rules finetune_initial -- models/gen_rte/base/finetune_initial"
    assert "finetune_initial.per_task.gen_rte" in rte["params"]
    assert "finetune_initial.per_task.gen_rte" not in stages["finetune_initial-gen_mrpc"]["params"]
    assert "finetune_initial.default.learning_rate" in stages["finetune_initial-gen_mrpc"]["params"]
    assert {"models/base", "data/gen_rte/tokenized", "workflow_scripts/training.py"} <= set(rte["deps"])
    assert stages["evaluate-gen_rte-base"]["metrics"] == [
        {"models/gen_rte/base/evaluate/metrics.json": {"cache": False}}]


def test_code_files_follow_imports_transitively():
    files = code_files("workflow_scripts.finetune", root=str(REPO_ROOT))
    assert {"workflow_scripts/finetune.py", "workflow_scripts/training.py", "workflow_scripts/models.py",
            "workflow_scripts/io_utils.py"} <= set(files)
    assert "workflow_scripts/prepare_task.py" not in files and "workflow_scripts/dag.py" not in files


def test_stage_names_use_only_characters_dvc_allows():
    assert dvc_stage_name("prune_layer", {"task": "gen_mrpc", "method": "auber", "layer": 3}) == \
        "prune_layer-gen_mrpc-auber-3"
    assert dvc_stage_name("evaluate", {"task": "my.task/x"}) == "evaluate-my_task_x"
