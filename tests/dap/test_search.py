"""The architecture search of seed 004: soft FLOPs against the counters, the cost loss' branches and gradient, the
gradient filter, the target schedule, discretization into the band, folding, and the structured baselines."""
import copy
import math

import numpy as np
import pytest
import torch
import transformers

from workflow_scripts.core.counters import count_flops
from workflow_scripts.core.surgery import prune_ffn_neurons, prune_heads
from workflow_scripts.dap.baselines import (gate_importance, importance_architecture, kept_counts, prune_to,
                                            random_architecture)
from workflow_scripts.dap.search import (SearchConfig, SoftArchitecture, cost_loss, discretize, filter_gradients,
                                         fold_and_prune, search_architecture, target_ratio_at)
from workflow_scripts.core.training import OptimizationConfig

torch.set_num_threads(1)
SEQ_LEN = 16


def tiny_classifier(seed: int = 0):
    config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=24, num_labels=2, initializer_range=0.3)
    torch.manual_seed(seed)
    return transformers.BertForSequenceClassification(config).eval()


def config(**overrides) -> SearchConfig:
    values = dict(target_ratio=0.5, tolerance=0.05, cost_weight=1.0, ratio_schedule="linear", ramp_fraction=0.8,
                  alpha_init=5.0, alpha_learning_rate=1.0, update_fraction=0.1, gradient_filter="per_tensor",
                  alpha_update="sign", keep_threshold=0.99, seq_len=SEQ_LEN)
    return SearchConfig(**{**values, **overrides})


def rows(count: int = 48, length: int = 8, seed: int = 0) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 50, (count, length), generator=generator)
    return [{"input_ids": ids[i].tolist(), "attention_mask": [1] * length, "labels": int(ids[i, 1] > 25)}
            for i in range(count)]


def collate(batch):
    return {key: torch.tensor([row[key] for row in batch]) for key in batch[0]}


def test_soft_flops_equal_the_counters_at_zero_one_masks():
    model = tiny_classifier()
    pruned = copy.deepcopy(model)
    prune_heads(pruned, {0: [1, 3], 1: [0]})
    prune_ffn_neurons(pruned, {0: list(range(10)), 1: [5, 7]})
    soft = SoftArchitecture(model, alpha_init=5.0)
    with torch.no_grad():  # alpha = +-inf: masks exactly 1 and 0
        for gates, removed in ((soft.heads, {0: [1, 3], 1: [0]}), (soft.ffn, {0: list(range(10)), 1: [5, 7]})):
            for layer, alpha in enumerate(gates.gates):
                alpha.fill_(float("inf"))
                alpha[removed.get(layer, [])] = float("-inf")
    assert soft.expected_flops(SEQ_LEN).item() == count_flops(pruned, 1, SEQ_LEN)["total"]


def test_soft_flops_are_differentiable_and_start_nearly_full():
    model = tiny_classifier()
    soft = SoftArchitecture(model, alpha_init=5.0)
    expected = soft.expected_flops(SEQ_LEN)
    assert expected.item() / count_flops(model, 1, SEQ_LEN)["total"] == pytest.approx(1 / (1 + math.exp(-5)), rel=1e-3)
    expected.backward()
    assert all(a.grad is not None and (a.grad > 0).all() for a in soft.alphas())


def test_cost_loss_branches_and_gradient():
    cost = torch.tensor(200.0, requires_grad=True)
    above = cost_loss(cost, ratio=0.8, target=0.5, tolerance=0.1)  # 0.8 > 0.55: log E
    above.backward()
    assert above.item() == pytest.approx(math.log(200)) and cost.grad.item() == pytest.approx(1 / 200)
    cost.grad = None
    below = cost_loss(cost, ratio=0.3, target=0.5, tolerance=0.1)  # 0.3 < 0.45: -log E
    below.backward()
    assert below.item() == pytest.approx(-math.log(200)) and cost.grad.item() == pytest.approx(-1 / 200)
    inside = cost_loss(cost, ratio=0.52, target=0.5, tolerance=0.1)
    assert inside.item() == 0 and not inside.requires_grad


def test_gradient_filter_keeps_the_largest_per_tensor_or_globally():
    first, second = torch.tensor([0.1, -5.0, 0.3, 2.0] + [0.0] * 6), torch.tensor([9.0, -0.2])
    per_tensor = filter_gradients([first, second], 0.1, "per_tensor", sign=True)
    assert per_tensor[0].tolist() == [0, -1, 0, 0] + [0] * 6 and per_tensor[1].tolist() == [1, 0]
    global_ = filter_gradients([first, second], 0.2, "global", sign=False)  # top 3 of 12: 9, -5, 2
    assert global_[0].tolist() == [0, -5, 0, 2] + [0] * 6 and global_[1].tolist() == [9, 0]
    assert filter_gradients([first], 0.1, "none", sign=False)[0].tolist() == first.tolist()


def test_target_ratio_schedules():
    linear, multiplicative, fixed = (config(ratio_schedule=s, target_ratio=0.25, ramp_fraction=0.5)
                                     for s in ("linear", "multiplicative", "fixed"))
    assert [target_ratio_at(s, 100, linear) for s in (0, 25, 50, 100)] == [1.0, 0.625, 0.25, 0.25]
    assert target_ratio_at(25, 100, multiplicative) == pytest.approx(0.5)
    assert target_ratio_at(0, 100, fixed) == 0.25


@pytest.mark.parametrize("target", [0.3, 0.6])
def test_discretization_meets_the_band_and_folding_keeps_the_function(target):
    model = tiny_classifier()
    full = count_flops(model, 1, SEQ_LEN)["total"]
    soft = SoftArchitecture(model, alpha_init=5.0)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for alpha in soft.alphas():
            alpha.copy_(torch.randn(alpha.shape, generator=generator) * 4 + 2)
    architecture = discretize(soft, full, config(target_ratio=target))
    assert (1 - 0.05) * target <= architecture["ratio"] <= (1 + 0.05) * target
    # the soft model with the dropped units' masks at 0 is the reference for the folded, pruned model
    with torch.no_grad():
        for gates, kept in ((soft.heads, architecture["heads_kept"]), (soft.ffn, architecture["ffn_kept"])):
            for layer, alpha in enumerate(gates.gates):
                dropped = [i for i in range(alpha.numel()) if i not in kept[layer]]
                alpha[dropped] = float("-inf")
        batch = collate(rows(4))
        batch.pop("labels")
        reference = model(**batch).logits
    fold_and_prune(model, soft, architecture["heads_kept"], architecture["ffn_kept"])
    assert count_flops(model, 1, SEQ_LEN)["total"] == architecture["flops"]
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, reference)


def test_search_moves_alpha_and_lands_in_the_band():
    teacher, student = tiny_classifier(), tiny_classifier()
    training = OptimizationConfig(epochs=6, learning_rate=1e-3, batch_size=8, weight_decay=0.0, warmup_ratio=0.0,
                               max_grad_norm=1.0, seed=0)
    record = search_architecture(student, teacher, rows(), collate, training, config(target_ratio=0.4))
    assert record["alpha_entries_updated"] > 0 and record["steps_with_alpha_updates"] == record["steps"]
    trajectory = record["trajectory"]
    assert trajectory[0]["soft_ratio"] > trajectory[-1]["soft_ratio"] and trajectory[-1]["target"] == 0.4
    ratio = count_flops(student, 1, SEQ_LEN)["total"] / record["full_flops"]
    assert ratio == pytest.approx(record["architecture"]["ratio"]) and 0.38 <= ratio <= 0.42


def test_baselines_keep_the_searched_counts():
    model = tiny_classifier()
    heads_kept, ffn_kept = [[0, 2], [1]], [list(range(5)), list(range(10, 20))]
    head_count, ffn_count = kept_counts(heads_kept, ffn_kept)
    ids_heads, ids_ffn = [list(range(4))] * 2, [list(range(24))] * 2
    random_heads, random_ffn = random_architecture(ids_heads, ids_ffn, head_count, ffn_count, seed=0)
    assert kept_counts(random_heads, random_ffn) == (3, 15)
    assert random_architecture(ids_heads, ids_ffn, 3, 15, seed=0) == (random_heads, random_ffn)
    head_scores, ffn_scores, ids_heads, ids_ffn = gate_importance(model, rows(16), collate, batch_size=8)
    assert all(s.shape == (4,) for s in head_scores) and all((s > 0).all() for s in ffn_scores)
    heads, ffn = importance_architecture(head_scores, ffn_scores, ids_heads, ids_ffn, head_count, ffn_count)
    normalized = [s / np.linalg.norm(s) for s in head_scores]
    best_three = sorted(((-v, layer, i) for layer, s in enumerate(normalized) for i, v in enumerate(s)))[:3]
    assert sorted((layer, i) for _, layer, i in best_three) == sorted((l, i) for l, ids in enumerate(heads) for i in ids)
    searched, chosen = copy.deepcopy(model), copy.deepcopy(model)
    prune_to(searched, ids_heads, ids_ffn, heads_kept, ffn_kept)
    prune_to(chosen, ids_heads, ids_ffn, heads, ffn)
    assert count_flops(chosen, 1, SEQ_LEN)["total"] == count_flops(searched, 1, SEQ_LEN)["total"]
