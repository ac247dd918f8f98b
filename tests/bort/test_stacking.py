"""Progressive stacking (bort/stacking.py) on tiny models: the exact copy, the doubled model's forward, the
optimizer rebuilt over the new layers, the schedule of depths, the option's validation, and the variant that puts a
stacked run beside the others (presets/bort-stacking.yaml)."""
import copy
import re

import pytest
import torch
import yaml

from conftest import REPO_ROOT
from workflow_scripts.bort.stacking import (depth_after, depth_schedule, regroup_optimizer, stack_encoder,
                                            stacking_error)
from workflow_scripts.core.training import build_optimizer, parameter_groups
from workflow_scripts.pipeline.params import ParamsError, validate_params


def tiny_masked_lm(depth=2, seed=0):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=depth, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=32)
    return BertForMaskedLM(config).eval()


def token_batch(seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 100, (3, 10), generator=generator)  # (B, T)


# ---- the copy -----------------------------------------------------------------------------------------------------

def test_stacking_copies_layer_i_to_layer_depth_plus_i_exactly_and_independently():
    model = tiny_masked_lm(depth=2)
    copied_from = stack_encoder(model)
    layers = model.bert.encoder.layer
    assert len(layers) == 4 and model.config.num_hidden_layers == 4
    for index in range(2):
        source, copy_ = layers[index].state_dict(), layers[2 + index].state_dict()
        assert source.keys() == copy_.keys()
        assert all(torch.equal(source[name], copy_[name]) for name in source)
        assert all(copy_[name].data_ptr() != source[name].data_ptr() for name in source)  # copies, not shared
        assert layers[2 + index].attention.self.layer_idx == 2 + index
        assert layers[2 + index].attention.self.config is model.config
    assert len(copied_from) == sum(1 for _ in layers[2].parameters()) + sum(1 for _ in layers[3].parameters())
    with torch.no_grad():
        layers[2].output.dense.weight.add_(1.0)
    assert not torch.equal(layers[0].output.dense.weight, layers[2].output.dense.weight)


def test_the_stacked_encoder_is_the_shallow_encoder_applied_twice():
    model = tiny_masked_lm(depth=2)
    shallow = copy.deepcopy(model)
    stack_encoder(model)
    input_ids = token_batch()
    with torch.no_grad():
        hidden = shallow.bert.embeddings(input_ids=input_ids)  # (B, T, H); no padding: no attention mask
        for _ in range(2):
            for layer in shallow.bert.encoder.layer:
                hidden = layer(hidden)
        stacked = model.bert(input_ids=input_ids).last_hidden_state
    assert torch.allclose(stacked, hidden, atol=1e-6)


def test_the_stacked_model_is_a_normal_model_of_the_doubled_depth(tmp_path):
    from transformers import AutoModelForMaskedLM, BertForMaskedLM

    model = tiny_masked_lm(depth=2)
    stack_encoder(model)
    built = BertForMaskedLM(model.config.__class__.from_dict(model.config.to_dict())).eval()
    built.load_state_dict(model.state_dict(), strict=True)  # same keys and shapes as a model built 4 deep
    model.save_pretrained(tmp_path, safe_serialization=True)
    loaded = AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    assert loaded.config.num_hidden_layers == 4 and len(loaded.bert.encoder.layer) == 4
    input_ids = token_batch()
    with torch.no_grad():
        expected = model(input_ids=input_ids).logits
        assert torch.equal(built(input_ids=input_ids).logits, expected)
        assert torch.allclose(loaded(input_ids=input_ids).logits, expected, atol=1e-6)


# ---- the optimizer ------------------------------------------------------------------------------------------------

def one_step(model, optimizer, scheduler=None):
    model.train()
    model(input_ids=token_batch(), labels=token_batch(seed=2)).loss.backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def test_the_rebuilt_optimizer_holds_the_new_layers_with_their_sources_state_and_keeps_the_schedule():
    model = tiny_masked_lm(depth=2)
    optimizer = build_optimizer(model, 1e-3, 0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (step + 1))
    one_step(model, optimizer, scheduler)
    learning_rates = [group["lr"] for group in optimizer.param_groups]
    copied_from = stack_encoder(model)
    regroup_optimizer(optimizer, parameter_groups(model, 0.01), copied_from)
    for group, expected in zip(optimizer.param_groups, parameter_groups(model, 0.01)):
        assert [id(p) for p in group["params"]] == [id(p) for p in expected["params"]]  # a fresh build's order
    assert {id(p) for group in optimizer.param_groups for p in group["params"]} == {id(p) for p in model.parameters()}
    for parameter, source in copied_from.items():
        state, source_state = optimizer.state[parameter], optimizer.state[source]
        assert all(torch.equal(state[name], source_state[name]) for name in source_state)
        assert state["exp_avg"].data_ptr() != source_state["exp_avg"].data_ptr()
    assert [group["lr"] for group in optimizer.param_groups] == learning_rates  # the schedule goes on, no reset
    # a resumed run builds its optimizer from the stacked model: the saved state lands on the same parameters
    resumed = build_optimizer(model, 1e-3, 0.01)
    resumed.load_state_dict(optimizer.state_dict())
    for parameter in model.parameters():
        assert torch.equal(resumed.state[parameter]["exp_avg_sq"], optimizer.state[parameter]["exp_avg_sq"])
    one_step(model, optimizer, scheduler)  # the new layers train
    assert not torch.equal(model.bert.encoder.layer[2].output.dense.weight,
                           model.bert.encoder.layer[0].output.dense.weight)


# ---- the schedule of depths and validation -------------------------------------------------------------------------

def test_the_depth_doubles_after_each_switch_step_up_to_the_full_depth():
    stacking = {"stages": 2, "switch_steps": [10, 25]}
    assert depth_schedule(4, stacking) == [(0, 1), (10, 2), (25, 4)]
    assert [depth_after(step, 4, stacking) for step in (0, 9, 10, 24, 25, 100)] == [1, 1, 2, 2, 4, 4]
    assert depth_schedule(12, {"stages": 0, "switch_steps": []}) == [(0, 12)]
    assert depth_after(7, 12, {"stages": 0, "switch_steps": []}) == 12


@pytest.mark.parametrize("stacking, depths, message", [
    ({"stages": 2, "switch_steps": [10]}, [4], "'switch_steps' has 1 steps but 'stages' is 2"),
    ({"stages": 2, "switch_steps": [20, 20]}, [4], "strictly increasing"),
    ({"stages": 2, "switch_steps": [20, 10]}, [4], "strictly increasing"),
    ({"stages": 1, "switch_steps": [0]}, [4], r"\[0\] must lie inside \(0, 100\)"),
    ({"stages": 1, "switch_steps": [100]}, [4], r"\[100\] must lie inside \(0, 100\)"),
    ({"stages": 2, "switch_steps": [10, 20]}, [2, 4, 6], "depth 2, 6 is not divisible by 4"),
])
def test_a_stacking_option_that_cannot_run_is_refused_with_the_reason(stacking, depths, message):
    error = stacking_error(stacking, 100, depths, "depth")
    assert error is not None and re.search(message, error), error


def test_valid_stacking_options_pass():
    assert stacking_error({"stages": 0, "switch_steps": []}, 100, [3, 5], "depth") is None
    assert stacking_error({"stages": 2, "switch_steps": [1, 99]}, 100, [4, 8], "depth") is None


@pytest.fixture
def params():
    return yaml.safe_load((REPO_ROOT / "params.yaml").read_text())


@pytest.mark.parametrize("stacking, extra, message", [
    ({"stages": 1, "switch_steps": [400, 300]}, {}, "'bort.pretrain.stacking': 'switch_steps' has 2 steps"),
    ({"stages": 2, "switch_steps": [400, 300]}, {}, "'bort.pretrain.stacking': 'switch_steps' .* strictly increasing"),
    ({"stages": 1, "switch_steps": [800]}, {}, r"'bort.pretrain.stacking': 'switch_steps' \[800\] must lie inside"),
    ({"stages": 2, "switch_steps": [200, 400]}, {},
     "'bort.pretrain.stacking': 2 stages .* 'bort.search_space.depth' 2 is not divisible by 4"),
    ({"stages": 1, "switch_steps": [400]}, {"nproc_per_node": 2}, "'bort.pretrain.stacking': stacking adds layers"),
    ({"stages": -1, "switch_steps": []}, {}, "'bort.pretrain.stacking.stages'"),
    ({"stages": 1, "switch": [400]}, {}, "unknown key 'bort.pretrain.stacking.switch'"),
])
def test_params_name_the_stacking_key_when_it_is_wrong(params, stacking, extra, message):
    params["bort"]["pretrain"].update(stacking=stacking, **extra)
    with pytest.raises(ParamsError, match=message):
        validate_params(params)


def test_stacking_in_params_passes_validation_and_reaches_the_stage_flags(params):
    from types import SimpleNamespace

    from workflow_scripts.pipeline.params import rule_hparams

    params["bort"]["pretrain"]["stacking"] = {"stages": 1, "switch_steps": [400]}
    validate_params(params)
    hparams = rule_hparams(params, "kd_pretrain", SimpleNamespace(run="kd"))
    assert hparams["stacking"] == {"stages": 1, "switch_steps": [400]}
    assert "--stacking '{\"stages\": 1, \"switch_steps\": [400]}'" in str(hparams)
    assert "bort.pretrain.stacking" in hparams.tracked_keys


# ---- variants: a stacked run beside the objectives ----------------------------------------------------------------

def test_the_stacking_preset_adds_a_kd_run_with_stacking_beside_the_objectives():
    from types import SimpleNamespace

    from params_helpers import params as preset_params
    from workflow_scripts.pipeline.params import rule_hparams

    params = preset_params("bort-stacking")
    flags = {run: rule_hparams(params, "kd_pretrain", SimpleNamespace(run=run)) for run in ("kd", "kd_stacked")}
    assert flags["kd_stacked"]["objective"] == "kd" and flags["kd_stacked"]["stacking"]["stages"] == 1
    assert flags["kd"]["stacking"] == {"stages": 0, "switch_steps": []}  # the full depth from scratch
    assert {name: value for name, value in flags["kd"].items() if name != "stacking"} == {
        name: value for name, value in flags["kd_stacked"].items() if name != "stacking"}  # else equal: same steps
    assert "bort.pretrain.variants.kd_stacked" in flags["kd_stacked"].tracked_keys


def test_a_variant_alone_asks_for_the_teachers_cached_kd_stream(params):
    from workflow_scripts.pipeline.params import teacher_output_streams

    params["bort"]["pretrain"].update(objectives=["mlm"], steps=900,
                                      variants={"kd_stacked": {"objective": "kd",
                                                               "stacking": {"stages": 1, "switch_steps": [100]}}})
    params["agora"]["student"] = params["tinybert"]["student"] = "bort_mlm"
    validate_params(params)
    streams, _ = teacher_output_streams(params)
    assert [32, 900] in streams


@pytest.mark.parametrize("variants, message", [
    ({"kd": {"objective": "kd"}}, "'bort.pretrain.variants.kd': name not allowed here"),
    ({"kd_stacked": {"stacking": {"stages": 0, "switch_steps": []}}}, "'objective' is a required property"),
    ({"kd_stacked": {"objective": "kd", "stacking": {"stages": 1, "switch_steps": [900]}}},
     r"'bort.pretrain.variants.kd_stacked.stacking': 'switch_steps' \[900\] must lie inside"),
    ({"kd_stacked": {"objective": "kd", "steps": 10}}, "unknown key 'bort.pretrain.variants.kd_stacked.steps'"),
])
def test_a_wrong_variant_is_refused_naming_its_key(params, variants, message):
    params["bort"]["pretrain"]["variants"] = variants
    with pytest.raises(ParamsError, match=message):
        validate_params(params)


def test_the_report_names_each_curve_by_its_file_so_a_variant_stands_beside_its_objective(tmp_path):
    from workflow_scripts.reports.bort import compare, read_curve

    for run, objective, accuracies in (("kd", "kd", (0.1, 0.2)), ("kd_stacked", "kd", (0.2, 0.25)),
                                       ("mlm", "mlm", (0.05, 0.18))):
        (tmp_path / f"{run}_curve.csv").write_text("objective,step,mlm_accuracy,mlm_loss\n" + "".join(
            f"{objective},{step},{accuracy},{6 - 10 * accuracy}\n" for step, accuracy in zip((50, 100), accuracies)))
    curves = dict(read_curve(str(path)) for path in sorted(tmp_path.glob("*_curve.csv")))
    assert sorted(curves) == ["kd", "kd_stacked", "mlm"]
    summary = compare({run: curve.to_dict("records") for run, curve in curves.items()})
    assert summary["objectives"]["kd_stacked"]["steps_to_target"] == 50  # past MLM-only's final 0.18 at once
    assert summary["objectives"]["kd"]["steps_to_target"] == 100
