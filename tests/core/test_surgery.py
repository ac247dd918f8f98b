"""Head/FFN gates, physical pruning and pruned checkpoints on tiny BERT and RoBERTa models.

The reference for pruning is the gated model: a head (neuron) gated to zero contributes exactly nothing, so
removing it must give the same outputs.
"""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from workflow_scripts.core.io_utils import write_checksums
from workflow_scripts.core.surgery import (
    attach_ffn_gates,
    attach_head_gates,
    gated,
    load_pruned,
    model_structure,
    prune_ffn_neurons,
    prune_heads,
    remove_gates,
    save_pruned,
)

torch.set_num_threads(1)
REPO_ROOT = Path(__file__).resolve().parents[2]
TINY = dict(vocab_size=100, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=37,
            initializer_range=0.3)  # larger than BERT's 0.02 so every head visibly moves the outputs
FAMILIES = ["Bert", "Roberta"]
ATTENTIONS = ["eager", "sdpa"]


def tiny_model(family: str, attention: str = "eager", head: str = "ForSequenceClassification", seed: int = 0):
    config = getattr(transformers, f"{family}Config")(**TINY, num_labels=3, attn_implementation=attention)
    torch.manual_seed(seed)
    return getattr(transformers, f"{family}{head}")(config).eval()


def tiny_inputs(seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, 100, (2, 7), generator=generator)  # (B, T)
    attention_mask = torch.ones(2, 7, dtype=torch.long)
    attention_mask[1, 5:] = 0  # padding in the second row
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def encoder_output(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model.base_model(**inputs).last_hidden_state  # (B, T, hidden)


def logits(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def random_pruning(count: int, seed: int, empty_layer: int = 1) -> dict[int, list[int]]:
    """Random 0/1 mask per layer (uneven counts) with one layer losing everything."""
    generator = torch.Generator().manual_seed(seed)
    to_prune = {}
    for layer in range(TINY["num_hidden_layers"]):
        mask = torch.rand(count, generator=generator) < 0.5
        to_prune[layer] = list(range(count)) if layer == empty_layer else mask.nonzero().flatten().tolist()
    return to_prune


# ------------------------------------------------------------------------------------------------------------
# gates


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_gates_of_one_change_nothing_bit_for_bit(family, attention):
    model, inputs = tiny_model(family, attention), tiny_inputs()
    reference = encoder_output(model, inputs)
    with gated(model, heads=True, ffn=True):
        assert torch.equal(encoder_output(model, inputs), reference)
    assert torch.equal(encoder_output(model, inputs), reference)  # hooks gone


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_head_gates_at_zero_equal_pruned_heads(family, attention):
    model, inputs = tiny_model(family, attention), tiny_inputs()
    heads_to_prune = random_pruning(TINY["num_attention_heads"], seed=1)
    pruned = copy.deepcopy(model)
    with attach_head_gates(model) as gates:
        gates.close(heads_to_prune)
        gated_hidden, gated_logits = encoder_output(model, inputs), logits(model, inputs)
    prune_heads(pruned, heads_to_prune)
    assert torch.allclose(encoder_output(pruned, inputs), gated_hidden, rtol=0, atol=1e-5)
    assert torch.allclose(logits(pruned, inputs), gated_logits, rtol=0, atol=1e-5)
    heads = TINY["num_attention_heads"]
    expected = [[h for h in range(heads) if h not in heads_to_prune[i]] for i in range(3)]
    assert model_structure(pruned)["heads_kept_by_layer"] == expected
    assert expected[1] == []
    assert not torch.allclose(encoder_output(model, inputs), gated_hidden)  # the pruned heads did matter


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_ffn_gates_at_zero_equal_pruned_neurons(family, attention):
    model, inputs = tiny_model(family, attention), tiny_inputs()
    neurons_to_prune = random_pruning(TINY["intermediate_size"], seed=2, empty_layer=2)
    pruned = copy.deepcopy(model)
    with attach_ffn_gates(model) as gates:
        gates.close(neurons_to_prune)
        gated_hidden = encoder_output(model, inputs)
    prune_ffn_neurons(pruned, neurons_to_prune)
    assert torch.allclose(encoder_output(pruned, inputs), gated_hidden, rtol=0, atol=1e-5)
    sizes = [TINY["intermediate_size"] - len(set(neurons_to_prune[i])) for i in range(3)]
    assert model_structure(pruned)["ffn_size_by_layer"] == sizes
    assert sizes[2] == 0


def test_gates_on_a_pruned_model_follow_the_surviving_heads():
    model, inputs = tiny_model("Bert"), tiny_inputs()
    # reference: the unpruned model with every head that ends up closed gated to zero
    with attach_head_gates(model) as reference_gates:
        reference_gates.close({0: [1, 3], 1: [0, 1, 2, 3], 2: [0]})
        reference = encoder_output(model, inputs)
    prune_heads(model, {0: [1], 1: [0, 1, 2, 3]})
    with attach_head_gates(model) as gates:
        assert [g.numel() for g in gates.gates] == [3, 0, 4]
        assert gates.original_ids[0] == [0, 2, 3]
        gates.close({0: [3], 2: [0]})  # original ids, on the pruned model
        assert torch.allclose(encoder_output(model, inputs), reference, rtol=0, atol=1e-5)
        matrix = gates.to_matrix()  # (layers, original heads), NaN where pruned
        assert torch.isnan(matrix[0, 1]) and matrix[0, 3] == 0 and torch.isnan(matrix[1]).all()
    prune_heads(model, {0: [3], 2: [0]})
    assert torch.allclose(encoder_output(model, inputs), reference, rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_attention_weights_keep_one_entry_per_layer(family):
    model, inputs = tiny_model(family, "eager"), tiny_inputs()
    prune_heads(model, {0: [1], 1: [0, 1, 2, 3]})
    with torch.no_grad():
        attentions = model(**inputs, output_attentions=True).attentions
    assert [tuple(a.shape) for a in attentions] == [(2, 3, 7, 7), (2, 0, 7, 7), (2, 4, 7, 7)]


def test_pruning_twice_uses_original_ids():
    once, twice, inputs = tiny_model("Bert"), tiny_model("Bert"), tiny_inputs()
    prune_heads(once, {0: [1, 3], 2: [0, 1, 2, 3]})
    prune_heads(twice, {0: [1]})
    prune_heads(twice, {0: [1, 3], 2: [0, 1]})  # 1 is already gone: ignored
    prune_heads(twice, {2: [2, 3]})
    assert model_structure(twice)["heads_kept_by_layer"] == [[0, 2], [0, 1, 2, 3], []]
    assert torch.equal(encoder_output(once, inputs), encoder_output(twice, inputs))
    self_attention = twice.bert.encoder.layer[0].attention.self
    assert (self_attention.num_attention_heads, self_attention.all_head_size) == (2, 16)


def test_pruning_refuses_bad_ids_and_gated_models():
    model = tiny_model("Bert")
    with pytest.raises(ValueError, match="layer 0: head ids \\[4\\]"):
        prune_heads(model, {0: [4]})
    with pytest.raises(ValueError, match="layer index 3"):
        prune_ffn_neurons(model, {3: [0]})
    attach_head_gates(model)
    with pytest.raises(RuntimeError, match="remove the gates"):
        prune_heads(model, {0: [0]})
    remove_gates(model)
    prune_heads(model, {0: [0]})


def test_head_gate_gradient_matches_central_finite_difference():
    model, inputs = tiny_model("Bert", "eager").double(), tiny_inputs()
    prune_heads(model, {1: [2]})
    labels = torch.tensor([0, 2])
    head_gates, ffn_gates = attach_head_gates(model), attach_ffn_gates(model)
    with torch.no_grad():
        head_gates.gates[0][1] = 0.5  # away from 1.0 too
    loss_of = lambda: model(**inputs, labels=labels).loss  # noqa: E731
    loss_of().backward()
    checks = [(head_gates, layer, j) for layer in range(3) for j in range(head_gates.gates[layer].numel())]
    checks += [(ffn_gates, layer, j) for layer in range(3) for j in (0, 17, 36)]
    eps = 1e-6
    for gates, layer, j in checks:
        gate = gates.gates[layer]
        with torch.no_grad():
            gate[j] += eps
            loss_plus = loss_of()
            gate[j] -= 2 * eps
            loss_minus = loss_of()
            gate[j] += eps
        estimate = (loss_plus - loss_minus) / (2 * eps)
        assert torch.isfinite(gate.grad[j])
        assert torch.allclose(gate.grad[j], estimate, rtol=1e-5, atol=1e-8), (layer, j)
    head_gates.remove()
    ffn_gates.remove()


# ------------------------------------------------------------------------------------------------------------
# checkpoints


def pruned_tiny(family: str, head: str = "ForSequenceClassification", attention: str = "eager"):
    model = tiny_model(family, attention, head)
    prune_heads(model, {0: [1], 1: [0, 1, 2, 3], 2: [0, 3]})
    prune_ffn_neurons(model, {0: [0, 5, 36], 2: list(range(37))})
    return model


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("head", ["ForSequenceClassification", "ForMaskedLM", "Model"])
def test_save_load_round_trip_gives_identical_outputs(tmp_path, family, head):
    model, inputs = pruned_tiny(family, head), tiny_inputs()
    save_pruned(model, tmp_path / "pruned")
    config = json.loads((tmp_path / "pruned" / "config.json").read_text())
    assert config["num_attention_heads"] == 4 and config["intermediate_size"] == 37  # original shape
    assert config["compression"]["heads_kept"] == [[0, 2, 3], [], [1, 2]]
    assert not list(tmp_path.glob(".*"))  # no staging folder left behind
    loaded = load_pruned(tmp_path / "pruned", attn_implementation="eager")
    assert type(loaded) is type(model) and not loaded.training
    assert model_structure(loaded) == model_structure(model)
    with torch.no_grad():
        for name, tensor in model(**inputs).items():
            assert torch.equal(loaded(**inputs)[name], tensor), name


def test_unpruned_folder_loads_like_from_pretrained(tmp_path):
    model, inputs = tiny_model("Roberta"), tiny_inputs()
    model.save_pretrained(tmp_path / "plain")
    loaded = load_pruned(tmp_path / "plain", attn_implementation="eager")
    assert torch.equal(logits(loaded, inputs), logits(model, inputs))
    assert model_structure(loaded)["heads_per_layer"] == [4, 4, 4]


def test_pruned_masked_lm_loads_into_a_classifier(tmp_path):
    model, inputs = pruned_tiny("Bert", "ForMaskedLM"), tiny_inputs()
    save_pruned(model, tmp_path / "mlm")
    classifier = load_pruned(tmp_path / "mlm", transformers.AutoModelForSequenceClassification,
                             attn_implementation="eager", num_labels=2)
    assert model_structure(classifier) == model_structure(model)
    assert torch.equal(encoder_output(classifier, inputs), encoder_output(model, inputs))


def test_save_replaces_a_folder_and_a_failed_save_leaves_nothing(tmp_path, monkeypatch):
    model = pruned_tiny("Bert")
    save_pruned(model, tmp_path / "out")
    prune_heads(model, {0: [0]})
    save_pruned(model, tmp_path / "out")
    assert load_pruned(tmp_path / "out").config.compression["heads_kept"][0] == [2, 3]

    def write_then_die(directory, **kwargs):
        (Path(directory) / "config.json").write_text("{}")
        raise KeyboardInterrupt  # a killed save
    monkeypatch.setattr(model, "save_pretrained", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        save_pruned(model, tmp_path / "fresh")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def edit_config(folder: Path, edit) -> None:
    """Change the record and re-seal the folder: a folder written this way (by a buggy writer), which its checksums
    alone would not catch."""
    config = json.loads((folder / "config.json").read_text())
    edit(config["compression"])
    (folder / "config.json").write_text(json.dumps(config))
    write_checksums(str(folder))


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["heads_kept"].__setitem__(0, [0, 1]),
     r"layer 0: tensor '.*layer\.0\.attention\..*' has shape .* keeps heads \[0, 1\]"),
    (lambda c: c["heads_kept"].__setitem__(2, [1, 7]), r"layer 2: .*head ids \[7\] are outside 0\.\.3"),
    (lambda c: c["heads_kept"].__setitem__(0, [0, 2, 2]), r"layer 0: .*heads_kept .*strictly increasing"),
    (lambda c: c["ffn_neurons_kept"].__setitem__(1, list(range(36))),
     r"layer 1: tensor '.*layer\.1\.(intermediate|output)\.dense\..*' has shape"),
    (lambda c: c["heads_kept"].pop(), r"heads_kept must list 3 layers"),
])
def test_tampered_config_raises_naming_layer_and_tensor(tmp_path, edit, message):
    save_pruned(pruned_tiny("Bert"), tmp_path / "ckpt")
    edit_config(tmp_path / "ckpt", edit)
    with pytest.raises(ValueError, match=message):
        load_pruned(tmp_path / "ckpt")


def test_tampered_weights_raise_naming_layer_and_tensor(tmp_path):
    save_pruned(pruned_tiny("Bert"), tmp_path / "ckpt")
    weights_path = tmp_path / "ckpt" / "model.safetensors"
    tensors = load_file(weights_path)
    key = "bert.encoder.layer.2.attention.self.value.weight"
    tensors[key] = tensors[key][:8]  # one head fewer than recorded
    save_file(tensors, weights_path, metadata={"format": "pt"})
    write_checksums(str(tmp_path / "ckpt"))  # written this way, not changed afterwards (test_corruption.py)
    with pytest.raises(ValueError, match=r"layer 2: tensor 'bert\.encoder\.layer\.2\.attention\.self\.value\.weight'"):
        load_pruned(tmp_path / "ckpt")
    del tensors[key]
    save_file(tensors, weights_path, metadata={"format": "pt"})
    write_checksums(str(tmp_path / "ckpt"))
    with pytest.raises(ValueError, match=r"layer 2: tensor '.*value\.weight' is missing"):
        load_pruned(tmp_path / "ckpt")


# ------------------------------------------------------------------------------------------------------------
# command lines


def test_inspect_cli_reports_a_pruned_folder(tmp_path):
    save_pruned(pruned_tiny("Roberta"), tmp_path / "stage" / "model")
    (tmp_path / "stage" / "metrics.json").write_text(json.dumps({"accuracy": 0.5}))
    completed = subprocess.run(
        [sys.executable, "-m", "workflow_scripts.tools.inspect", str(tmp_path / "stage" / "model"), "--json",
         "--seq-len", "16"],
        cwd=REPO_ROOT, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["heads_kept_by_layer"] == [[0, 2, 3], [], [1, 2]]
    assert report["ffn_size_by_layer"] == [34, 37, 0]
    assert report["metrics"] == {"accuracy": 0.5}
    assert report["parameters"]["total"] > 0 and report["flops"]["total"] > 0


def test_onnx_export_of_uneven_heads_matches_pytorch(tmp_path):
    from workflow_scripts.tools.export_onnx import export_and_verify

    save_pruned(pruned_tiny("Bert", attention="sdpa"), tmp_path / "ckpt")
    report = export_and_verify(tmp_path / "ckpt", tmp_path / "model.onnx")
    assert report["ok"] and report["max_abs_diff"]["logits"] < 1e-4
    assert (tmp_path / "model.onnx").stat().st_size > 0
