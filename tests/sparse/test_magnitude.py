"""Unstructured magnitude pruning and IMP rewinding: the global ranking hits the sparsity exactly and prunes only the
encoder's six matrices per layer, masks survive training, rewinding restores the pretrained weights bit for bit but
not the classifier, rounds add rate x the ORIGINAL weights, and bad input fails with one message naming it."""
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from workflow_scripts.core.io_utils import read_json
from workflow_scripts.core.models import load_for_classification, save_checkpoint
from workflow_scripts.core.training import TrainingConfig, seed_everything, train
from workflow_scripts.pipeline.params import imp_round_sparsities
from workflow_scripts.sparse.magnitude import (KeepMasks, apply_masks, global_magnitude_masks, load_masks,
                                               measure_sparsity, prunable_parameters, save_masks)
from workflow_scripts.stages import sparse_finetune, sparse_prune

VOCAB = 50
PER_LAYER = ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
             "intermediate.dense", "output.dense"]
# 2 layers x (4 x 32 x 32 + 2 x 32 x 64) prunable weights
N = 2 * (4 * 32 * 32 + 2 * 32 * 64)


def tiny_classifier(seed=0):
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, num_labels=2)
    return BertForSequenceClassification(config)


def weight(model, layer, matrix):
    return model.get_parameter(f"bert.encoder.layer.{layer}.{matrix}.weight")


def pruned_count(masks):
    return sum(int((~mask).sum()) for mask in masks.values())


def test_prunable_matrices_are_the_six_per_layer_and_the_pooler_only_on_request():
    model = tiny_classifier()
    names = list(prunable_parameters(model))
    assert names == [f"bert.encoder.layer.{layer}.{matrix}.weight" for layer in (0, 1) for matrix in PER_LAYER]
    assert sum(parameter.numel() for parameter in prunable_parameters(model).values()) == N
    assert list(prunable_parameters(model, prune_pooler=True))[-1] == "bert.pooler.dense.weight"


def test_global_ranking_prunes_exactly_the_smallest_weights_over_all_matrices():
    model = tiny_classifier()
    with torch.no_grad():
        for parameter in prunable_parameters(model).values():
            parameter.fill_(1.0)
        # hand-placed small weights in five matrices of both layers; the sixth smallest survives
        planted = [((0, "attention.self.query", (0, 0)), 0.001), ((1, "output.dense", (3, 5)), -0.002),
                   ((0, "intermediate.dense", (7, 1)), 0.003), ((1, "attention.self.key", (2, 2)), -0.004),
                   ((0, "attention.self.value", (1, 1)), 0.005), ((1, "attention.output.dense", (0, 3)), 0.006)]
        for (layer, matrix, index), value in planted:
            weight(model, layer, matrix)[index] = value
    masks = global_magnitude_masks(model, 5 / N)
    assert pruned_count(masks) == 5
    for (layer, matrix, index), _ in planted[:5]:
        assert not masks[f"bert.encoder.layer.{layer}.{matrix}.weight"][index]
    assert masks["bert.encoder.layer.1.attention.output.dense.weight"][0, 3]
    # one threshold over the whole model, not one per matrix: |w| < 0.01 in layer 0, >= 1 in layer 1 -> at 50%
    # layer 0 goes entirely (a per-matrix ranking would take half of each)
    with torch.no_grad():
        for name, parameter in prunable_parameters(model).items():
            magnitude = torch.rand(parameter.shape) * 0.01 if ".layer.0." in name else 1 + torch.rand(parameter.shape)
            parameter.copy_(magnitude * torch.sign(torch.randn(parameter.shape)))
    masks = global_magnitude_masks(model, 0.5)
    assert pruned_count(masks) == N // 2
    assert all(not mask.any() for name, mask in masks.items() if ".layer.0." in name)
    assert all(mask.all() for name, mask in masks.items() if ".layer.1." in name)


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.37, 0.9])
def test_the_count_is_exact_and_every_pruned_weight_is_below_every_kept_one(sparsity):
    model = tiny_classifier()
    masks = global_magnitude_masks(model, sparsity)
    assert pruned_count(masks) == round(sparsity * N)
    parameters = prunable_parameters(model)
    pruned = torch.cat([parameters[name].detach().abs()[~mask] for name, mask in masks.items()])
    kept = torch.cat([parameters[name].detach().abs()[mask] for name, mask in masks.items()])
    assert not len(pruned) or pruned.max() <= kept.min()


def test_pruning_touches_nothing_but_the_prunable_matrices():
    for prune_pooler in (False, True):
        model = tiny_classifier()
        before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
        masks = global_magnitude_masks(model, 0.6, prune_pooler=prune_pooler)
        apply_masks(model, masks)
        assert ("bert.pooler.dense.weight" in masks) == prune_pooler
        for name, tensor in model.state_dict().items():
            if name in masks:
                assert torch.equal(tensor[masks[name]], before[name][masks[name]]) and (tensor[~masks[name]] == 0).all()
            else:  # embeddings, LayerNorms, biases, pooler (unless asked), classifier
                assert torch.equal(tensor, before[name]), name
        measured = measure_sparsity(model, masks)
        assert measured["global"]["pruned"] == round(0.6 * sum(m.numel() for m in masks.values()))
        assert measured["global"]["sparsity"] == pytest.approx(0.6, abs=1e-4)
        assert set(measured["per_matrix"]) == set(masks)


def test_rounds_prune_rate_of_the_original_weights_and_pruned_weights_stay_pruned():
    assert imp_round_sparsities({"target_sparsity": 0.5, "rate_per_round": 0.1}) == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert imp_round_sparsities({"target_sparsity": 0.3, "rate_per_round": 0.1}) == [0.1, 0.2, 0.3]
    assert imp_round_sparsities({"target_sparsity": 0.25, "rate_per_round": 0.1}) == [0.1, 0.2, 0.25]
    model, masks = tiny_classifier(), None
    for round_index, sparsity in enumerate(imp_round_sparsities({"target_sparsity": 0.5, "rate_per_round": 0.1}), 1):
        new_masks = global_magnitude_masks(model, sparsity, previous=masks)
        assert pruned_count(new_masks) == round(0.1 * round_index * N)
        if masks is not None:  # everything pruned before is still pruned
            assert all((new_masks[name] <= masks[name]).all() for name in masks)
        masks = new_masks
        with torch.no_grad():  # "fine-tuning" reshuffles the magnitudes of the kept weights
            for parameter in prunable_parameters(model).values():
                parameter.copy_(torch.randn(parameter.shape))
        apply_masks(model, masks)
    with pytest.raises(ValueError, match="the sparsity cannot fall"):
        global_magnitude_masks(model, 0.3, previous=masks)


def toy_dataset(n=64, length=8):
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1, VOCAB, (n, length), generator=generator)
    return [{"input_ids": row, "attention_mask": torch.ones(length, dtype=torch.long),
             "labels": torch.tensor(int((row == 7).any()))} for row in ids]


def collate(rows):
    return {key: torch.stack([row[key] for row in rows]) for key in rows[0]}


def training_config(**overrides):
    values = {"epochs": 2, "learning_rate": 1e-2, "batch_size": 16, "weight_decay": 0.01, "warmup_ratio": 0.0,
              "max_grad_norm": 1.0, "adam_epsilon": 1e-8, "seed": 0, "evaluate_every_steps": 0, "patience": 0}
    return TrainingConfig(**{**values, **overrides})


def test_masks_are_kept_through_training_and_the_hooks_are_removed():
    model = tiny_classifier()
    masks = global_magnitude_masks(model, 0.5, prune_pooler=True)
    start = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    keep = KeepMasks(model, masks)
    train(model, toy_dataset(), training_config(), collate, callbacks=[keep])
    state = model.state_dict()
    for name, mask in masks.items():
        assert (state[name][~mask] == 0).all() and not torch.equal(state[name][mask], start[name][mask])
    assert not keep.hooks and all(not parameter._backward_hooks for parameter in model.parameters())
    # without the callback the same run moves the pruned weights away from zero
    plain = tiny_classifier()
    apply_masks(plain, masks)
    train(plain, toy_dataset(), training_config(), collate)
    assert any((plain.state_dict()[name][~mask] != 0).any() for name, mask in masks.items())


def test_pruned_weights_get_no_gradient_so_clipping_sees_the_pruned_model():
    model = tiny_classifier()
    masks = global_magnitude_masks(model, 0.5)
    keep = KeepMasks(model, masks)
    batch = collate(toy_dataset()[:8])
    model(**batch).loss.backward()
    for name, mask in masks.items():
        gradient = model.get_parameter(name).grad
        assert (gradient[~mask] == 0).all() and (gradient[mask] != 0).any()
    keep.on_end(None)


@pytest.fixture
def finetuned_folder(tiny_model_folder, tmp_path):
    """A stand-in for the task's initial fine-tune: the pretrained tiny folder loaded as a classifier the way the
    finetune stage does (seed 0), every tensor then moved (the classifier too)."""
    seed_everything(0)
    model = load_for_classification(str(tiny_model_folder), 2)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape) * 0.05)
    folder = tmp_path / "finetune_initial"
    save_checkpoint(model, AutoTokenizer.from_pretrained(tiny_model_folder), str(folder))
    return folder


def prune_stage(model, output, sparsity, pretrained, *extra):
    sparse_prune.main(["--model", str(model), "--output", str(output), "--sparsity", str(sparsity),
                       "--prune-pooler", "false", "--attn-implementation", "sdpa", "--rewind-to", str(pretrained),
                       "--seed", "0", "--threads", "1", *extra])


def test_an_imp_round_rewinds_the_backbone_to_the_pretrained_weights_but_not_the_classifier(
        tiny_model_folder, finetuned_folder, tmp_path):
    pretrained = load_file(tiny_model_folder / "model.safetensors")   # a BertModel: keys without "bert."
    finetuned = load_file(finetuned_folder / "model.safetensors")
    prune_stage(finetuned_folder, tmp_path / "round_1", 0.1, tiny_model_folder)
    ticket = load_file(tmp_path / "round_1" / "model.safetensors")
    masks = load_masks(str(tmp_path / "round_1"))
    assert pruned_count(masks) == round(0.1 * N)
    for name, tensor in ticket.items():
        if name.startswith("classifier."):   # not rewound: the fine-tuned head
            assert torch.equal(tensor, finetuned[name])
        elif name in masks:                  # kept entries: pretrained, bit for bit; pruned: zero
            original = pretrained[name.removeprefix("bert.")]
            assert torch.equal(tensor[masks[name]], original[masks[name]]) and (tensor[~masks[name]] == 0).all()
        else:                                # embeddings, LayerNorms, biases, pooler: pretrained
            assert torch.equal(tensor, pretrained[name.removeprefix("bert.")]), name
    # the ranking used the fine-tuned magnitudes, not the pretrained ones
    expected = global_magnitude_masks(load_for_classification(str(finetuned_folder), 2), 0.1)
    assert masks.keys() == expected.keys() and all(torch.equal(masks[name], expected[name]) for name in masks)
    report = read_json(tmp_path / "round_1" / "sparsity.json")
    assert report["target_sparsity"] == 0.1 and report["global"]["pruned"] == round(0.1 * N)
    assert report["rewound_to"] == str(tiny_model_folder)

    # round 2 continues from round 1's masks (here on the ticket itself, as if fine-tuned): 20% of the original
    prune_stage(tmp_path / "round_1", tmp_path / "round_2", 0.2, tiny_model_folder,
                "--previous-masks", str(tmp_path / "round_1" / "masks.safetensors"))
    second = load_masks(str(tmp_path / "round_2"))
    assert pruned_count(second) == round(0.2 * N) and all((second[n] <= masks[n]).all() for n in masks)


def test_magnitude_pruning_keeps_the_fine_tuned_weights(finetuned_folder, tmp_path):
    sparse_prune.main(["--model", str(finetuned_folder), "--output", str(tmp_path / "pruned"), "--sparsity", "0.5",
                       "--prune-pooler", "false", "--attn-implementation", "sdpa"])
    finetuned = load_file(finetuned_folder / "model.safetensors")
    pruned = load_file(tmp_path / "pruned" / "model.safetensors")
    masks = load_masks(str(tmp_path / "pruned"))
    for name, tensor in pruned.items():
        expected = finetuned[name].masked_fill(~masks[name], 0.0) if name in masks else finetuned[name]
        assert torch.equal(tensor, expected), name
    assert not any(key.endswith(("_orig", "_mask")) for key in pruned)   # plain weights, no reparametrization


@pytest.mark.parametrize("sparsity", [1.0, -0.1, 1.5])
def test_a_sparsity_outside_zero_one_is_refused_naming_it(sparsity, finetuned_folder, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"outside \[0, 1\)"):
        global_magnitude_masks(tiny_classifier(), sparsity)
    with pytest.raises(SystemExit):
        sparse_prune.main(["--model", str(finetuned_folder), "--output", str(tmp_path / "x"), "--sparsity",
                           str(sparsity), "--prune-pooler", "false", "--attn-implementation", "sdpa"])
    assert f"--sparsity: sparsity {sparsity} is outside [0, 1)" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_missing_masks_file_is_named(finetuned_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match=f"masks file {tmp_path}/none/masks.safetensors not found"):
        load_masks(str(tmp_path / "none" / "masks.safetensors"))
    # fine-tuning a checkpoint that has no masks fails before any work
    with pytest.raises(FileNotFoundError, match=f"masks file {finetuned_folder}/masks.safetensors not found"):
        sparse_finetune.main(["--model", str(finetuned_folder), "--data", str(tmp_path / "no_data"), "--output",
                              str(tmp_path / "out"), "--attn-implementation", "sdpa",
                              "--early-stopping-fraction", "0", "--eval-batch-size", "8", "--epochs", "1",
                              "--learning-rate", "1e-3", "--batch-size", "8", "--weight-decay", "0",
                              "--warmup-ratio", "0", "--max-grad-norm", "1", "--adam-epsilon", "1e-8", "--seed", "0",
                              "--evaluate-every-steps", "0", "--patience", "0"])
    assert not (tmp_path / "out").exists()


def test_masks_for_other_matrices_are_refused(tmp_path):
    model = tiny_classifier()
    with_pooler = global_magnitude_masks(model, 0.2, prune_pooler=True)
    save_masks(with_pooler, str(tmp_path))
    with pytest.raises(ValueError, match="'bert.pooler.dense.weight'.*prune_pooler"):
        global_magnitude_masks(model, 0.3, prune_pooler=False, previous=load_masks(str(tmp_path)))
