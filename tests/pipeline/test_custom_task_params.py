"""Tasks of your own in params.yaml: a definition in `tasks` is validated by the schema and pipeline/params.py,
becomes a task name for the rules, and travels to prepare_task; per_task sections may leave any task out."""
import copy
from types import SimpleNamespace

import pytest
import yaml

from conftest import REPO_ROOT
from workflow_scripts.core.metrics import METRICS
from workflow_scripts.pipeline.params import (PER_TASK_SECTIONS, ParamsError, custom_task_definitions,
                                              custom_task_inputs, load_schema, rule_hparams, stage_hparams,
                                              validate_params)

REVIEWS = {"name": "reviews", "data": "my_data/reviews.csv", "text_columns": ["review"], "label_column": "stars",
           "metrics": ["accuracy", "f1"]}


@pytest.fixture
def params():
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["tasks"].append(copy.deepcopy(REVIEWS))
    return params


def test_a_definition_becomes_a_task_name_with_its_defaults_and_travels_to_prepare_task(params):
    validate_params(params)
    assert params["tasks"] == ["gen_mrpc", "gen_cola", "gen_rte", "gen_wnli", "reviews"]
    definition = custom_task_definitions(params)["reviews"]
    assert definition == {**REVIEWS, "labels": None, "splits": {"train": "train", "dev": None, "test": None},
                          "dev_fraction": 0.1, "test_fraction": 0.1}
    validate_params(params)  # validated params validate again (Snakemake and the tests may do it twice)
    assert params["tasks"][-1] == "reviews" and custom_task_definitions(params)["reviews"] == definition

    prepare = rule_hparams(params, "prepare_task", SimpleNamespace(task="reviews"))
    assert prepare == {"seed": 0, "custom_task": definition}
    assert prepare.tracked_keys == ["seed", "tasks.4"]   # DVC: the entry as written in params.yaml
    assert '--custom-task \'{"name": "reviews", "data": "my_data/reviews.csv"' in str(prepare)
    assert custom_task_inputs(params, "reviews") == ["my_data/reviews.csv"]   # the rule's input: reruns on change
    assert custom_task_inputs(params, "gen_mrpc") == []
    generated = rule_hparams(params, "prepare_task", SimpleNamespace(task="gen_mrpc"))
    assert "custom_task" not in generated and not any(key.startswith("tasks") for key in generated.tracked_keys)


def test_a_hub_task_with_its_own_splits(params):
    params["tasks"][-1] = {"name": "sts_own", "hub": {"id": "user/sts"}, "text_columns": ["a", "b"],
                           "label_column": "score", "metrics": ["pearson", "spearman"],
                           "splits": {"dev": "validation", "test": "test"}}
    validate_params(params)
    definition = custom_task_definitions(params)["sts_own"]
    assert definition["hub"] == {"id": "user/sts", "config": None} and "data" not in definition
    assert definition["splits"] == {"train": "train", "dev": "validation", "test": "test"}
    assert custom_task_inputs(params, "sts_own") == []


def test_per_task_sections_may_leave_tasks_out_and_entries_still_override(params):
    for section in PER_TASK_SECTIONS:
        params[section]["per_task"] = {}
    params["finetune_final"]["per_task"] = {"reviews": {"epochs": 2}}   # a task of your own can have one
    validate_params(params)
    initial = stage_hparams(params, "finetune_initial", "reviews")
    assert dict(initial) == params["finetune_initial"]["default"]
    # DVC cannot track a key that is not there: the whole per_task mapping, so that adding the entry is seen
    assert "finetune_initial.per_task" in initial.tracked_keys
    final = stage_hparams(params, "finetune_final", "reviews")
    assert final["epochs"] == 2 and "finetune_final.per_task.reviews" in final.tracked_keys
    assert "finetune_final.per_task" not in final.tracked_keys
    assert stage_hparams(params, "auber", "gen_cola", layer=0)["episodes"] == params["auber"]["default"]["episodes"]


@pytest.mark.parametrize("change, expected", [
    ({"dta": "x.csv"}, "unknown key 'tasks.4.dta'"),
    ({"label_column": 3}, "'tasks.4.label_column': 3 is not of type 'string'"),
    ({"metrics": ["acc"]}, "'tasks.4.metrics.0': 'acc' is not one of"),
    ({"text_columns": ["a", "b", "c"]}, "'tasks.4.text_columns'"),
    ({"name": "Reviews"}, "'tasks.4.name': 'Reviews' does not match"),
    ({"name": "mrpc"}, "'tasks[4].name': 'mrpc' is a built-in task"),
    ({"name": "bort"}, "'tasks[4].name': 'bort' is a folder the workflow writes for itself"),
    ({"hub": {"id": "user/reviews"}}, "'tasks[4]': give the task's rows as `data`"),
    ({"text_columns": ["stars"]}, "'tasks[4].label_column': 'stars' is also one of the text_columns"),
    ({"metrics": ["accuracy", "pearson"]}, "'tasks[4].metrics': pearson, spearman score a regression"),
    ({"metrics": ["pearson"], "labels": [1, 2]}, "'tasks[4].labels': a regression task"),
    ({"labels": [1, 2, 3]}, "'tasks[4].metrics': f1 scores two classes"),
    ({"dev_fraction": 0.6, "test_fraction": 0.4}, "'tasks[4].dev_fraction': with test_fraction it takes the whole"),
    ({"splits": {"dev": 3}}, "'tasks.4.splits.dev'"),
])
def test_a_bad_definition_is_rejected_naming_the_key(params, change, expected):
    params["tasks"][-1] = {**REVIEWS, **change}
    with pytest.raises(ParamsError) as error:
        validate_params(params)
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_names_are_unique_and_per_task_entries_must_name_a_task(params):
    listed_twice = copy.deepcopy(params)
    listed_twice["tasks"].append("reviews")
    with pytest.raises(ParamsError, match=r"'tasks\[5\]': task 'reviews' is listed twice"):
        validate_params(listed_twice)
    params["auber"]["per_task"]["reviewz"] = {}
    with pytest.raises(ParamsError, match="'auber.per_task.reviewz': unknown task 'reviewz'"):
        validate_params(params)


def test_the_schema_offers_the_metrics_that_core_metrics_computes():
    assert load_schema()["$defs"]["task"]["properties"]["metrics"]["items"]["enum"] == list(METRICS)


def test_only_a_task_of_your_own_has_its_reader_among_prepare_tasks_code_inputs():
    from workflow_scripts.pipeline.dag import task_code_files

    reader = "workflow_scripts/data/custom_tasks.py"
    assert reader in task_code_files("workflow_scripts.stages.prepare_task", "reviews", str(REPO_ROOT))
    for task in ("gen_mrpc", "mrpc"):   # editing the reader reruns no built-in task
        assert reader not in task_code_files("workflow_scripts.stages.prepare_task", task, str(REPO_ROOT))
