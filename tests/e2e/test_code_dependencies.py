"""A stage's code inputs are the modules it really runs: editing the generated tasks' grammar reruns nothing of a
GLUE task, while editing a module that evaluation imports reruns the evaluation. Real snakemake, own repository."""
import sys

import pytest
import yaml

from conftest import REPO_ROOT
from workflow_repo import jobs_run_by_snakemake, make_workflow_repo, run

pytestmark = pytest.mark.e2e
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--cores", "2"]
GLUE_EVALUATION = "models/mrpc/base/evaluate/metrics.json"
GENERATED_EVALUATION = "models/gen_cola/base/evaluate/metrics.json"


@pytest.fixture(scope="module")
def repo(tmp_path_factory, glue_folder):
    """The tiny configuration with a GLUE task (the local fixture) beside a generated one; both evaluated."""
    params = yaml.safe_load((REPO_ROOT / "tests/configs/tiny.yaml").read_text())
    params["tasks"] = ["gen_cola", "mrpc"]
    params["data"]["glue_source"] = str(glue_folder)
    params["head_pruning"]["tasks"] = params["agora"]["tasks"] = params["unstructured_pruning"]["tasks"] = []
    params["dap"]["tasks"] = params["tinybert"]["tasks"] = []
    for section in ("finetune_initial", "finetune_layer", "finetune_final", "auber"):
        params[section]["per_task"] = {"gen_cola": {}, "mrpc": {}}
    root = tmp_path_factory.mktemp("code_dependencies")
    params_file = root / "params.yaml"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    repo = make_workflow_repo(root / "workflow", params_file)
    run(SNAKEMAKE + [GLUE_EVALUATION, GENERATED_EVALUATION], repo)
    return repo


def jobs_after_edit(repo, module_path: str, target: str) -> list[str]:
    """The jobs a dry run of `target` would run after a comment is appended to a module (then restored)."""
    path = repo / module_path
    original = path.read_text()
    try:
        path.write_text(original + "\n# an edit\n")
        return jobs_run_by_snakemake(run(SNAKEMAKE + ["--dry-run", target], repo).stdout)
    finally:
        path.write_text(original)
        run(SNAKEMAKE + ["--touch", target], repo)  # the restored file is newer: nothing to redo


def test_editing_the_generated_tasks_grammar_reruns_the_generated_task_but_not_the_glue_task(repo):
    for grammar_file in ("workflow_scripts/data/generated/lexicon.py",
                         "workflow_scripts/data/generated/task_generator.py"):
        assert jobs_after_edit(repo, grammar_file, GLUE_EVALUATION) == []
        assert "prepare_task" in jobs_after_edit(repo, grammar_file, GENERATED_EVALUATION)


def test_editing_what_evaluation_imports_reruns_the_glue_evaluation(repo):
    assert "evaluate" in jobs_after_edit(repo, "workflow_scripts/core/metrics.py", GLUE_EVALUATION)
    assert jobs_after_edit(repo, "workflow_scripts/head_pruning/dqn.py", GLUE_EVALUATION) == []
