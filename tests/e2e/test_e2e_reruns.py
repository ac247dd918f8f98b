"""A changed parameter reruns exactly the stages that read it, whichever front end runs it, on a private copy of
the tiny workflow (tests/built_workflow.py); afterwards the other front end has nothing to do."""
import json
import sys

import pytest
import yaml

from built_workflow import DVC, SNAKEMAKE, built, repo  # noqa: F401 (the shared build and a copy of it: fixtures)
from workflow_repo import jobs_run_by_snakemake, run, stages_run_by_dvc

pytestmark = pytest.mark.e2e


def set_param(repo, dotted_key, value):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    *parents, leaf = dotted_key.split(".")
    node = params
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def assert_snakemake_has_nothing_to_do(repo):
    assert "Nothing to be done" in run(SNAKEMAKE + ["--dry-run"], repo).stdout


def test_after_snakemake_dvc_has_nothing_to_do_and_shows_metrics(repo):
    assert stages_run_by_dvc(run(DVC + ["repro"], repo).stdout) == set()
    assert "up to date" in run(DVC + ["status"], repo).stdout
    assert "gen_cola/base/evaluate/metrics.json" in run(DVC + ["metrics", "show"], repo).stdout
    assert_snakemake_has_nothing_to_do(repo)


def test_dvc_repro_reruns_only_the_task_whose_parameter_changed(repo):
    set_param(repo, "finetune_initial.per_task.gen_cola.learning_rate", 2.0e-3)  # a key DVC never saw
    ran = stages_run_by_dvc(run(DVC + ["repro"], repo).stdout)
    # gen_cola has no pruning chain and no Agora run here; the tables of every model read its evaluation
    assert {"finetune_initial-gen_cola", "evaluate-gen_cola-base"} <= ran <= {
        "finetune_initial-gen_cola", "evaluate-gen_cola-base", "model_table-first_seed", "model_table-all_seeds"}
    assert_snakemake_has_nothing_to_do(repo)
    assert stages_run_by_dvc(run(DVC + ["repro"], repo).stdout) == set()


CHAIN_RULES = {"finetune_layer", "finetune_final", "evaluate_chain", "report_layers", "compare_methods",
               "compare_methods_first_seed", "compare_methods_competitors_all_seeds", "compare_methods_tasks_first_seed",
               "model_table"}


def test_a_layer_parameter_reruns_that_layer_and_above_through_dvc(repo):
    set_param(repo, "auber.per_layer", [{}, {"episodes": 4}])  # matters from layer 1 on
    ran = stages_run_by_dvc(run(DVC + ["repro"], repo).stdout)
    layer_1_and_above = {f"{stage}-gen_mrpc-{method}-0{suffix}" for method in ("auber", "random")
                         for stage, suffix in (("prune_layer", "-1"), ("finetune_layer", "-1"), ("finetune_final", ""),
                                               ("evaluate_chain", ""), ("report_layers", ""))}
    comparison = {"compare_methods", "compare_methods_first_seed", "compare_methods_competitors_all_seeds",
                  "compare_methods_tasks_first_seed", "model_table-first_seed", "model_table-all_seeds"}
    # DVC compares contents: a stage whose inputs came out byte-identical (the same heads pruned) is skipped
    assert "prune_layer-gen_mrpc-auber-0-1" in ran and ran <= layer_1_and_above | comparison
    # Snakemake compares timestamps: it may rerun what DVC skipped, once, and nothing below layer 1 (its dry run
    # lists them; running them is the Snakemake test below)
    planned = run(SNAKEMAKE + ["--dry-run"], repo).stdout
    assert set(jobs_run_by_snakemake(planned)) <= CHAIN_RULES | {"prune_layer"}
    assert not any("/layer_0/" in line for line in planned.splitlines() if line.strip().startswith("output:"))
    assert stages_run_by_dvc(run(DVC + ["repro"], repo).stdout) == set()


def test_a_layer_parameter_reruns_that_layer_and_above_through_snakemake(repo):
    set_param(repo, "auber.per_layer", [{}, {"episodes": 5}])
    result = run(SNAKEMAKE, repo)
    log = result.stdout + result.stderr
    assert set(jobs_run_by_snakemake(log)) == CHAIN_RULES | {"prune_layer"}
    outputs = [line for line in log.splitlines() if line.strip().startswith("output:")]
    assert outputs and not any("/layer_0/" in line for line in outputs)  # nothing below layer 1 reran
    assert "up to date" in run(DVC + ["status"], repo).stdout


def test_snakemake_reruns_only_the_task_whose_parameter_changed(repo):
    set_param(repo, "finetune_final.per_task.gen_mrpc", {"learning_rate": 5.0e-4})  # a new override
    run([sys.executable, "-m", "workflow_scripts.pipeline.dvc_sync", "--check"], repo)  # dvc.yaml stays current
    result = run(SNAKEMAKE, repo)
    assert set(jobs_run_by_snakemake(result.stdout + result.stderr)) == CHAIN_RULES - {"finetune_layer"}
    assert "up to date" in run(DVC + ["status"], repo).stdout
    assert stages_run_by_dvc(run(DVC + ["repro"], repo).stdout) == set()
    # against the committed baseline: DVC reads the comparison's metrics and curves at both revisions
    metrics_diff = json.loads(run(DVC + ["metrics", "diff", "--all", "--json"], repo).stdout)
    comparison = metrics_diff["results/comparison/all_seeds/comparison_metrics.json"]
    assert all(entry["old"] is not None for entry in comparison.values())
    plots_diff = run(DVC + ["plots", "diff", "--json"], repo).stdout
    assert "dev_by_layer_gen_mrpc_auber.csv" in plots_diff
