"""params.yaml validation: one clear error naming the key, before any work."""
import copy
import subprocess
import sys

import pytest
import yaml

from conftest import REPO_ROOT
from workflow_scripts.pipeline.params import (PER_TASK_SECTIONS, ParamsError, hparams_from_keys, load_params, stage_hparams,
                                     validate_params)


def only_task(params, task):
    """params running one task (every per-task section gets its entry)."""
    params.update(tasks=[task])
    params["head_pruning"]["tasks"] = [task]
    params["head_pruning"]["first_seed_tasks"] = []
    params["agora"]["tasks"] = [task]
    params["unstructured_pruning"]["tasks"] = [task]
    for section in PER_TASK_SECTIONS:
        params[section]["per_task"] = {task: {}}
    return params


@pytest.fixture
def params():
    return yaml.safe_load((REPO_ROOT / "params.yaml").read_text())


def test_shipped_params_and_test_config_are_valid(params):
    validate_params(params)
    validate_params(yaml.safe_load((REPO_ROOT / "tests/configs/tiny.yaml").read_text()))


@pytest.mark.parametrize("mutate, expected", [
    (lambda p: p["finetune_initial"]["default"].update(lerning_rate=1e-5), "unknown key 'finetune_initial.default.lerning_rate'"),
    (lambda p: p.update(sed=1), "unknown key 'sed'"),
    (lambda p: p["finetune_initial"]["default"].update(epochs="three"), "'finetune_initial.default.epochs'"),
    (lambda p: p["finetune_initial"]["per_task"]["gen_rte"].update(learning_rate=-1), "'finetune_initial.per_task.gen_rte.learning_rate'"),
    (lambda p: p["tasks"].append("gen_sts"), "'tasks[4]': unknown task 'gen_sts'"),
    (lambda p: p["model"].update(name="minilmm"), "'model.name'"),
    (lambda p: p["model"].update(name="./no/such/model"), "'model.name': model path './no/such/model' does not exist"),
    (lambda p: p["data"].update(max_length="long"), "'data.max_length'"),
    (lambda p: p["model"].update(attn_implementation="flash"), "'model.attn_implementation'"),
    (lambda p: p["finetune_initial"]["per_task"].update(nope={"epochs": 1}), "'finetune_initial.per_task.nope'"),
    (lambda p: only_task(p, "mrpc").update(data={**p["data"], "glue_source": "/no/such/glue"}), "'data.glue_source'"),
    (lambda p: p["head_pruning"].update(tasks=["gen_mrpc", "sst2"]), "'head_pruning.tasks[1]': 'sst2' is not in 'tasks'"),
    (lambda p: p["head_pruning"].update(first_seed_tasks=["sst2"]),
     "'head_pruning.first_seed_tasks[0]': 'sst2' is not in 'tasks'"),
    (lambda p: p["auber"]["per_layer"][2].update(episodes=0), "'auber.per_layer.2.episodes'"),
    (lambda p: p["finetune_final"]["default"].update(patience=0), "'finetune_final.default.patience'"),
    (lambda p: p["data"]["generated_sizes"]["gen_mrpc"].update(train=5000), "'data.generated_sizes.gen_mrpc.train'"),
    (lambda p: p.pop("evaluate"), "'evaluate' is a required property"),
    (lambda p: p["head_pruning"]["methods"].append("bogus"), "unknown method 'bogus'"),
    (lambda p: p["head_pruning"]["ablations"].update(random={"episodes": 3}), "'head_pruning.ablations.random'"),
    (lambda p: p["head_pruning"].update(methods=["random", "michel"]), "add auber to the methods"),
    (lambda p: p["head_pruning"]["ablations"]["auber_query"].update(state_matrix="keys"),
     "'head_pruning.ablations.auber_query.state_matrix'"),
    (lambda p: p["head_pruning"].update(seeds=[]), "'head_pruning.seeds'"),
    (lambda p: p["competitors"].update(budget="per_head"), "'competitors.budget'"),
    (lambda p: p["bort"]["search_space"].update(heads=[7], hidden=[128, 256]), "'bort.search_space': no combination"),
    (lambda p: p["bort"]["fptas"].update(references=[{"depth": 2, "heads": 4, "hidden": 128, "intermediate": 64},
                                                     {"depth": 2, "heads": 5, "hidden": 128, "intermediate": 64}]),
     "'bort.fptas.references[1]': hidden size 128 is not divisible by 5 heads"),
    (lambda p: p["bort"]["pretrain"].update(nproc_per_node=3), "'bort.pretrain.batch_size' (32) must be divisible"),
    (lambda p: p["bort"]["fptas"].update(inference_cost="speed"), "'bort.fptas.inference_cost'"),
    (lambda p: p["bort"]["fptas"].update(epsilon=0), "'bort.fptas.epsilon'"),
    (lambda p: p["agora"].update(tasks=["gen_sst"]), "'agora.tasks[0]': 'gen_sst' is not in 'tasks'"),
    (lambda p: p["agora"].update(student="bort_tiny"), "'agora.student': unknown alias 'bort_tiny'"),
    (lambda p: p["unstructured_pruning"].update(tasks=["mrpc"]), "'unstructured_pruning.tasks[0]': 'mrpc' is not in"),
    (lambda p: p["unstructured_pruning"]["magnitude"].update(sparsity=1.0), "'unstructured_pruning.magnitude.sparsity'"),
    (lambda p: p["unstructured_pruning"]["imp"].update(rate=0.1), "unknown key 'unstructured_pruning.imp.rate'"),
    (lambda p: p["bort"]["pretrain"].update(objectives=["mlm"]), "'agora.student': 'bort_kd' needs 'kd'"),
    (lambda p: p["agora"]["lexical"].update(word_dropout=0, swaps=0), "'agora.lexical': word_dropout 0 and swaps 0"),
    (lambda p: p["agora"]["hyperparameter_grid"].update(seed=[]), "'agora.hyperparameter_grid.seed'"),
    (lambda p: p["agora"].update(psi="synonyms"), "'agora.psi'"),
    (lambda p: p["agora"].update(pick_fraction=0.8), "'agora.pick_fraction': with 'agora.selection_fraction' it holds "
                                                     "out 1 of the training split"),
    (lambda p: p["agora"].update(seeds=[]), "'agora.seeds'"),
    (lambda p: p["agora"].pop("pick_fraction"), "'pick_fraction' is a required property under 'agora'"),
])
def test_invalid_params_name_the_key(params, mutate, expected):
    broken = copy.deepcopy(params)
    mutate(broken)
    with pytest.raises(ParamsError) as error:
        validate_params(broken)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_load_params_reports_bad_yaml(tmp_path):
    (tmp_path / "params.yaml").write_text("seed: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(str(tmp_path / "params.yaml"))


def test_stage_hparams_record_the_key_of_each_value(params):
    params["finetune_initial"]["default"].update(learning_rate=2e-5, epochs=3, batch_size=32)
    params["finetune_initial"]["per_task"].update(gen_rte={"learning_rate": 1e-5, "epochs": 4}, gen_mrpc={})
    rte = stage_hparams(params, "finetune_initial", "gen_rte", extra={"seed": "seed"})
    assert rte["learning_rate"] == 1e-5 and rte["epochs"] == 4 and rte["batch_size"] == 32
    assert rte.source_keys["learning_rate"] == "finetune_initial.per_task.gen_rte.learning_rate"
    assert rte.source_keys["batch_size"] == "finetune_initial.default.batch_size"
    assert rte.source_keys["seed"] == "seed"
    # DVC sees a new override of gen_rte, and a change of any default, without regenerating dvc.yaml.
    assert "finetune_initial.per_task.gen_rte" in rte.tracked_keys
    assert "finetune_initial.default.learning_rate" in rte.tracked_keys and "seed" in rte.tracked_keys
    mrpc = stage_hparams(params, "finetune_initial", "gen_mrpc")
    assert mrpc["learning_rate"] == 2e-5 and mrpc.source_keys["epochs"] == "finetune_initial.default.epochs"


def test_stage_hparams_render_as_cli_flags(params):
    params["finetune_initial"]["default"]["learning_rate"] = 2e-5
    flags = str(hparams_from_keys(params, {"random_init": "model.random_init", "name": "model.name",
                                           "learning_rate": "finetune_initial.default.learning_rate"}))
    assert flags == "--random-init null --name minilm --learning-rate 2e-05"


def test_snakemake_stops_before_any_work_on_invalid_params(tmp_path):
    for name in ("Snakefile", "rules", "workflow_scripts"):  # this checkout's code, whatever the venv points at
        (tmp_path / name).symlink_to(REPO_ROOT / name)
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["finetune_initial"]["default"]["lerning_rate"] = 1e-5
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "unknown key 'finetune_initial.default.lerning_rate'" in result.stdout + result.stderr
    assert not (tmp_path / "models").exists() and not (tmp_path / "data").exists()


def test_layer_overrides_win_over_task_overrides_and_are_tracked_per_layer(params):
    params["auber"]["per_task"]["gen_cola"] = {"episodes": 20, "reward_scale": 1.0}
    params["auber"]["per_layer"][4] = {"episodes": 300}
    layer4 = stage_hparams(params, "auber", "gen_cola", layer=4)
    layer3 = stage_hparams(params, "auber", "gen_cola", layer=3)
    assert layer4["episodes"] == 300 and layer4.source_keys["episodes"] == "auber.per_layer.4.episodes"
    assert layer4["reward_scale"] == 1.0 and layer3["episodes"] == 20
    assert "auber.per_layer.4" in layer4.tracked_keys and "auber.per_layer.4" not in layer3.tracked_keys
    assert "--hidden-sizes '[512, 512, 512]'" in str(layer3) and "--stop-q-value null" in str(layer3)


def test_an_ablation_overrides_auber_on_every_layer_and_is_tracked(params):
    from workflow_scripts.pipeline.params import method_algorithm, method_layer_order, method_overrides_key

    params["auber"]["per_layer"][2] = {"state_matrix": "key", "episodes": 7}
    key = method_overrides_key(params, "auber_query")
    layer2 = stage_hparams(params, "auber", "gen_cola", layer=2, overrides_key=key)
    assert layer2["state_matrix"] == "query" and layer2["episodes"] == 7  # the ablation wins, the rest stays
    assert layer2.source_keys["state_matrix"] == "head_pruning.ablations.auber_query.state_matrix"
    assert "head_pruning.ablations.auber_query" in layer2.tracked_keys
    assert method_algorithm(params, "auber_query") == "auber" and method_algorithm(params, "michel") == "michel"
    assert method_overrides_key(params, "michel") is None
    assert method_layer_order(params, "auber_reverse") == "top_down"
    assert method_layer_order(params, "auber") == method_layer_order(params, "voita") == "bottom_up"


def deep_merge(base: dict, override: dict) -> dict:
    """What Snakemake does with --configfile: mappings merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in override.items():
        merged[key] = deep_merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) \
            else value
    return merged


@pytest.mark.parametrize("preset", sorted(p.name for p in (REPO_ROOT / "presets").glob("*.yaml")))
def test_every_preset_over_params_yaml_is_valid(preset):
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    validate_params(deep_merge(params, yaml.safe_load((REPO_ROOT / "presets" / preset).read_text())))


def test_imp_rounds_prune_their_share_of_the_original_weights_and_fine_tune_with_the_initial_recipe(params):
    from types import SimpleNamespace

    from workflow_scripts.pipeline.params import rule_hparams

    round_3 = rule_hparams(params, "imp_prune", SimpleNamespace(task="gen_cola", round="3"))
    assert round_3["sparsity"] == 0.3 and round_3["seed"] == params["seed"] and round_3["prune_pooler"] is False
    assert "--sparsity 0.3 " in str(round_3)
    assert {"unstructured_pruning.imp.rate_per_round", "unstructured_pruning.imp.target_sparsity",
            "unstructured_pruning.prune_pooler", "seed"} <= set(round_3.tracked_keys)
    initial = rule_hparams(params, "finetune_initial", SimpleNamespace(task="gen_cola"))
    for rule in ("imp_finetune", "finetune_magnitude"):
        recipe = rule_hparams(params, rule, SimpleNamespace(task="gen_cola"))
        assert dict(recipe) == dict(initial) and recipe.tracked_keys == initial.tracked_keys
