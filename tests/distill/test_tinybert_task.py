"""TinyBERT's task distillation of the Bort student: the stages a run's rules call, end to end on tiny models (a
Bort-shaped student narrower and shallower than the teacher, with half its heads), the ablation table's layout, and
the params that are refused with the key named."""
import copy
import json

import pandas as pd
import pytest
import torch
import yaml
from transformers import AutoTokenizer

from conftest import REPO_ROOT
from params_helpers import params as project_params, stage_flags
from workflow_scripts.core.io_utils import write_json
from workflow_scripts.core.models import load_for_classification, save_checkpoint
from workflow_scripts.core.training import seed_everything
from workflow_scripts.pipeline.params import (ParamsError, rule_hparams, tinybert_run_descriptions, tinybert_student,
                                              validate_params)
from workflow_scripts.reports.tinybert import majority_rates, tinybert_report

torch.set_num_threads(1)
ABLATION = "tinybert-ablation"  # presets/tinybert-ablation.yaml


@pytest.fixture(scope="module")
def task_and_teacher(tiny_model_folder, tmp_path_factory):
    """gen_cola (60 / 20 / 20 rows) tokenized for the tiny BERT, and that BERT as the task's "fine-tuned" teacher
    (2 layers, 4 heads, hidden 32)."""
    from workflow_scripts.stages import prepare_task, tokenize_task

    root = tmp_path_factory.mktemp("tinybert_task")
    prepare_task.main(["--task", "gen_cola", "--output", str(root / "raw"), "--seed", "0",
                       "--train", "60", "--validation", "20", "--test", "20"])
    tokenize_task.main(["--raw", str(root / "raw"), "--tokenizer", str(tiny_model_folder),
                        "--output", str(root / "tokenized"), "--max-length", "24"])
    seed_everything(0)
    teacher = load_for_classification(str(tiny_model_folder), 2)
    save_checkpoint(teacher, AutoTokenizer.from_pretrained(tiny_model_folder), str(root / "finetune_initial"))
    return root / "tokenized", root / "finetune_initial"


def distill_stage(rule, student, teacher, data, output, method, overrides=None, presets=()):
    from workflow_scripts.stages import distill_task

    distill_task.main(["--student", str(student), "--teacher", str(teacher), "--data", str(data), "--output",
                       str(output), *stage_flags(rule, overrides or {"epochs": 4, "batch_size": 8}, presets,
                                                 method=method, task="gen_cola"), "--threads", "1"])
    return json.loads((output / "training_log.json").read_text())


def test_a_bort_student_is_task_distilled_in_two_stages_and_reported(tiny_model_folder, task_and_teacher, tmp_path):
    from workflow_scripts.stages import bort_init, evaluate, tinybert_report as report_stage

    data, teacher = task_and_teacher
    selection = tmp_path / "selection.json"
    selection.write_text(json.dumps({"chosen": {"tag": "D1_A2_H16_I32"}}))
    init = tmp_path / "init"
    bort_init.main(["--teacher", str(tiny_model_folder), "--selection", str(selection), "--output", str(init),
                    *stage_flags("bort_init"), "--threads", "1"])
    config = json.loads((init / "config.json").read_text())
    assert (config["num_hidden_layers"], config["num_attention_heads"], config["hidden_size"]) == (1, 2, 16)

    # TinyBERT (the default run): intermediate (width 16 -> 32 through W, 2 heads against groups of the teacher's
    # 4, student layer 1 <- teacher layer 2), then prediction from the teacher's logits
    run = tmp_path / "gen_cola" / "tinybert"
    intermediate = distill_stage("tinybert_intermediate", init, teacher, data, run / "distill_intermediate",
                                 "tinybert")
    assert intermediate["objective"] == "intermediate" and set(intermediate["loss_terms"][0]) == {
        "embedding", "hidden", "attention"}
    losses = intermediate["losses"]
    assert sum(losses[-8:]) < sum(losses[:8])  # the last 8 steps (1 epoch at batch 8) below the first 8
    prediction = distill_stage("tinybert_prediction", run / "distill_intermediate", teacher, data,
                               run / "distill_prediction", "tinybert")
    assert prediction["objective"] == "prediction" and "soft_cross_entropy" in prediction["loss_terms"][0]
    # No TD (presets/tinybert-ablation.yaml): no intermediate stage, the prediction stage fits the gold labels
    no_td = tmp_path / "gen_cola" / "tinybert_no_td"
    labels = distill_stage("tinybert_prediction", init, teacher, data, no_td / "distill_prediction",
                           "tinybert_no_td", presets=[ABLATION])
    assert labels["objective"] == "labels" and "label_loss" in labels["loss_terms"][0]

    for folder in (run, no_td):
        evaluate.main(["--model", str(folder / "distill_prediction"), "--data", str(data), "--output",
                       str(folder / "evaluate" / "metrics.json"), *stage_flags("evaluate"), "--threads", "1"])
        student = load_for_classification(str(folder / "distill_prediction"), 2)
        assert (student.config.num_hidden_layers, student.config.hidden_size) == (1, 16)  # still the Bort shape
    runs = {method: run_description for method, run_description in
            tinybert_run_descriptions(project_params(ABLATION)).items() if method in ("tinybert",
                                                                                             "tinybert_no_td")}
    report_stage.main(["--metrics", str(run / "evaluate" / "metrics.json"), str(no_td / "evaluate" / "metrics.json"),
                       "--stages", str(run / "distill_intermediate"), str(run / "distill_prediction"),
                       str(no_td / "distill_prediction"), "--data", str(data), "--runs", json.dumps(runs),
                       "--output-md", str(tmp_path / "report.md"), "--output-csv", str(tmp_path / "report.csv"),
                       "--threads", "1"])
    markdown = (tmp_path / "report.md").read_text()
    assert "### Table 5: procedures of the two-stage framework" in markdown and "| No TD |" in markdown
    table = pd.read_csv(tmp_path / "report.csv")
    assert list(table["method"]) == ["tinybert", "tinybert_no_td"]
    assert table.loc[0, "distill_intermediate_steps"] == len(losses)
    assert table.loc[1, "distill_intermediate_steps"] == 0  # skipped
    assert table["dev_majority_accuracy"].between(0.5, 1).all()


def test_the_rules_flags_follow_each_runs_variant():
    from types import SimpleNamespace

    params = project_params(ABLATION)

    def flags(rule, method):
        return rule_hparams(params, rule, SimpleNamespace(method=method, task="gen_cola"))
    assert flags("tinybert_intermediate", "tinybert")["attention_weight"] == 1.0
    no_attn = flags("tinybert_intermediate", "tinybert_no_attn")
    assert no_attn["attention_weight"] == 0.0
    assert no_attn.source_keys["attention_weight"] == "tinybert.variants.tinybert_no_attn.attention_weight"
    assert flags("tinybert_intermediate", "tinybert_top")["layer_mapping"] == "top"
    assert flags("tinybert_prediction", "tinybert_no_pred")["objective"] == "labels"
    assert flags("tinybert_prediction", "tinybert")["objective"] == "prediction"
    assert flags("tinybert_prediction", "tinybert")["epochs"] == params["tinybert"]["prediction"]["epochs"]
    assert tinybert_student(params, "tinybert", "gen_cola") == "models/bort/pretrain/tinybert"
    assert tinybert_student(params, "tinybert_no_gd", "gen_cola") == "models/bort/init"
    # only objective tinybert reads bort.pretrain.tinybert: the other runs' flags (and reruns) do not depend on it
    assert "tinybert" not in rule_hparams(params, "kd_pretrain", SimpleNamespace(run="kd"))
    general = rule_hparams(params, "kd_pretrain", SimpleNamespace(run="tinybert"))
    assert general["objective"] == "tinybert" and general["tinybert"]["layer_mapping"] == "uniform"


# ---- the report's layout -----------------------------------------------------------------------------------------

def fake_run(root, task, method, dev, test, intermediate=True):
    folder = root / "models" / task / method
    for stage, steps in (("distill_intermediate", 4), ("distill_prediction", 4)):
        if stage == "distill_intermediate" and not intermediate:
            continue
        (folder / stage).mkdir(parents=True)
        write_json(str(folder / stage / "training_log.json"),
                   {"losses": [4.0, 3.0, 2.0, 1.0][:steps], "training": {"epochs": 2}})
    write_json(str(folder / "evaluate" / "metrics.json"), {
        "task": task, "model": str(folder / "distill_prediction"), "headline_metric": "matthews_correlation",
        "validation": {"matthews_correlation": dev, "accuracy": 0.75}, "test": {"matthews_correlation": test}})
    return str(folder / "evaluate" / "metrics.json")


def test_the_report_has_the_seeds_tables_rows_by_run_and_columns_by_task(tmp_path):
    runs = tinybert_run_descriptions(project_params(ABLATION))
    values = {method: 0.1 + 0.01 * index for index, method in enumerate(runs)}
    metrics, stages = [], []
    for task, offset in (("gen_cola", 0.0), ("gen_mrpc", 0.2)):
        for method, value in values.items():
            intermediate = runs[method]["intermediate_stage"]
            metrics.append(fake_run(tmp_path, task, method, value + offset, value, intermediate))
            stages += [str(tmp_path / "models" / task / method / "distill_prediction")] + (
                [str(tmp_path / "models" / task / method / "distill_intermediate")] if intermediate else [])
    majority = {"gen_cola": {"validation": {"accuracy": 0.7, "matthews_correlation": 0.0}}}
    outputs = tinybert_report(runs, metrics, stages, majority, "report.md", "report.csv")
    markdown = outputs["report.md"]
    sections = markdown.split("### ")
    procedures = next(s for s in sections if s.startswith("Table 5"))
    assert "| System | gen_cola | gen_mrpc | Average |" in procedures
    # rows in params order, the default first; cells x 100, the average over the tasks
    assert [line.split(" | ")[0].strip("| ") for line in procedures.splitlines() if line.startswith("| ")][1:] == [
        "TinyBERT", "No GD", "No TD", "No DA", "Bort KD instead of GD"]
    assert "| TinyBERT | 10.0 | 30.0 | 20.0 |" in procedures
    objectives = next(s for s in sections if s.startswith("Table 6"))
    assert all(f"| {label} |" in objectives for label in ("No Embd", "No Pred", "No Trm", "No Attn", "No Hidn"))
    mapping = next(s for s in sections if s.startswith("Table 7"))
    assert "| TinyBERT (uniform) |" in mapping and "| TinyBERT (top) |" in mapping
    assert markdown.index("## Dev split") < markdown.index("## Test split")
    assert "Other runs" not in markdown  # every variant has a table
    table = pd.read_csv(pd.io.common.StringIO(outputs["report.csv"]))
    assert len(table) == 2 * len(runs)
    first = table.iloc[0]
    assert (first["distill_intermediate_loss_first_epoch"], first["distill_intermediate_loss_last_epoch"]) == (3.5, 1.5)
    assert first["dev_majority_accuracy"] == 0.7
    no_td = table[table["method"] == "tinybert_no_td"].iloc[0]
    assert no_td["distill_intermediate_steps"] == 0 and "skipped" in markdown


def test_majority_rates_predict_the_training_splits_most_frequent_class():
    import datasets

    dataset_dict = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"labels": [1, 1, 0]}),
        "validation": datasets.Dataset.from_dict({"labels": [1, 0, 0, 0]}),
        "test": datasets.Dataset.from_dict({"labels": [1, 1, 1, 0]})})
    task = {"num_labels": 2, "metrics": ["matthews_correlation"], "dev_split": "validation"}
    rates = majority_rates(dataset_dict, task)
    assert rates["validation"] == {"accuracy": 0.25, "matthews_correlation": 0.0}
    assert rates["test"]["accuracy"] == 0.75


# ---- params refused, the key named -------------------------------------------------------------------------------

@pytest.fixture
def params():
    return yaml.safe_load((REPO_ROOT / "params.yaml").read_text())


def add_variant(params, name="tinybert_x", **settings):
    params["tinybert"]["variants"][name] = {"label": "X", **settings}


@pytest.mark.parametrize("mutate, expected", [
    (lambda p: p["tinybert"].update(tasks=["sst2"]), "'tinybert.tasks[0]': 'sst2' is not in 'tasks'"),
    (lambda p: p["tinybert"].update(student="bort_nope"), "'tinybert.student': 'bort_nope' names no run"),
    (lambda p: p["tinybert"].update(augmentation=True),
     "'tinybert.augmentation': augmentation needs 'task_distillation.augmentation.variants_per_example' above 0"),
    (lambda p: p["tinybert"].update(prediction_target="gold"), "'tinybert.prediction_target'"),
    (lambda p: add_variant(p, "no_prefix"), "'tinybert.variants.no_prefix': name not allowed here"),
    (lambda p: add_variant(p, layer_mapping="middle"), "'tinybert.variants.tinybert_x.layer_mapping'"),
    (lambda p: add_variant(p, epochs=3), "unknown key 'tinybert.variants.tinybert_x.epochs'"),
    (lambda p: add_variant(p, table="table5"), "'tinybert.variants.tinybert_x.table'"),
    (lambda p: add_variant(p, student="bort_tinybert"), "'tinybert.variants.tinybert_x.student': 'bort_tinybert'"),
    (lambda p: add_variant(p, embedding_weight=0.0, hidden_weight=0.0, attention_weight=0.0),
     "run 'tinybert_x': every intermediate loss weight is 0: set intermediate_stage to false"),
    (lambda p: p["tinybert"]["variants"].update(tinybert_x={"student": "bort_kd"}),
     "'label' is a required property under 'tinybert.variants.tinybert_x'"),
    (lambda p: p["bort"]["pretrain"].update(objectives=["kd", "mlm", "tinybert"], nproc_per_node=2),
     "objective tinybert (run 'tinybert') runs in one process"),
    (lambda p: p["bort"]["pretrain"]["variants"].update(
        gd_stacked={"objective": "tinybert", "stacking": {"stages": 1, "switch_steps": [200]}}),
     "run 'gd_stacked' (objective tinybert) cannot use stacking"),
    (lambda p: p["bort"]["pretrain"]["tinybert"].update(embedding_weight=0.0, hidden_weight=0.0,
                                                        attention_weight=0.0),
     "'bort.pretrain.tinybert': every loss weight is 0"),
    (lambda p: p["bort"]["pretrain"]["tinybert"].update(layer_mapping="skip"),
     "'bort.pretrain.tinybert.layer_mapping'"),
    (lambda p: p["bort"]["pretrain"]["variants"].update(tinybert={"objective": "kd"}),
     "'bort.pretrain.variants.tinybert': name not allowed here"),
])
def test_invalid_tinybert_params_name_the_key(params, mutate, expected):
    broken = copy.deepcopy(params)
    mutate(broken)
    with pytest.raises(ParamsError) as error:
        validate_params(broken)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_the_ablation_preset_and_a_general_distillation_variant_are_valid(params):
    project_params(ABLATION)
    params["bort"]["pretrain"]["variants"]["gd_top"] = {"objective": "tinybert"}
    params["tinybert"]["student"] = "bort_gd_top"
    validate_params(params)
