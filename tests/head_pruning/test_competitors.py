"""AUBER's competitors: each head score against a direct computation, and every method prunes exactly its budget."""
import json
import math

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from workflow_scripts.head_pruning import competitors as hi
from workflow_scripts.core.surgery import attach_head_gates, encoder_layers, prune_heads
from params_helpers import stage_flags, voita_gate_config


def tiny_classifier(seed=0, num_heads=4, layers=2):
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=100, hidden_size=8 * num_heads, num_hidden_layers=layers,
                        num_attention_heads=num_heads, intermediate_size=32, num_labels=2,
                        attn_implementation="sdpa", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertForSequenceClassification(config).double().eval()


def rows(count=6, seed=0):
    """Examples of different lengths, so that batches carry padding."""
    rng = np.random.default_rng(seed)
    examples = []
    for _ in range(count):
        ids = [1, *rng.integers(5, 100, size=int(rng.integers(2, 9))).tolist(), 2]
        examples.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": int(rng.integers(0, 2))})
    return examples


def collate(batch):
    width = max(len(row["input_ids"]) for row in batch)
    pad = lambda values: values + [0] * (width - len(values))  # noqa: E731
    return {"input_ids": torch.tensor([pad(row["input_ids"]) for row in batch]),
            "attention_mask": torch.tensor([pad(row["attention_mask"]) for row in batch]),
            "labels": torch.tensor([row["labels"] for row in batch])}


def test_michel_importance_matches_a_finite_difference_of_the_loss_in_each_gate():
    model, examples = tiny_classifier(), rows()
    scores = hi.michel_scores(model, [0, 1], examples, batch_size=4, collate_fn=collate, normalize_by_layer=False)
    step = 1e-5
    gates = attach_head_gates(model, requires_grad=False)
    try:
        for layer in (0, 1):
            for head in range(4):
                absolute_slopes = []
                for example in examples:
                    batch = collate([example])
                    labels = batch.pop("labels")
                    losses = []
                    for value in (1 + step, 1 - step):
                        gates.gates[layer].data[head] = value
                        with torch.no_grad():
                            losses.append(hi.per_example_loss(model(**batch).logits, labels).item())
                    gates.gates[layer].data[head] = 1.0
                    absolute_slopes.append(abs(losses[0] - losses[1]) / (2 * step))
                assert scores[layer][head] == pytest.approx(np.mean(absolute_slopes), rel=1e-5)
    finally:
        gates.remove()


def test_michel_normalizes_each_layer_to_unit_l2_norm():
    scores = hi.michel_scores(tiny_classifier(), [0, 1], rows(), batch_size=3, collate_fn=collate)
    for layer in (0, 1):
        assert np.sqrt((scores[layer] ** 2).sum()) == pytest.approx(1.0)


def hand_confidence(model, examples, layer_index=0):
    """Attention probabilities of layer 0 computed from its query/key weights, then the mean over real tokens of
    each head's largest weight in the token's row."""
    self_attention = encoder_layers(model)[layer_index].attention.self
    heads, size = self_attention.num_attention_heads, self_attention.attention_head_size
    total, tokens = np.zeros(heads), 0
    for example in examples:
        ids = torch.tensor([example["input_ids"]])
        with torch.no_grad():
            hidden = model.bert.embeddings(input_ids=ids)[0].numpy()           # (T, hidden)
        q = hidden @ self_attention.query.weight.detach().numpy().T + self_attention.query.bias.detach().numpy()
        k = hidden @ self_attention.key.weight.detach().numpy().T + self_attention.key.bias.detach().numpy()
        for head in range(heads):
            block = slice(head * size, (head + 1) * size)
            logits = q[:, block] @ k[:, block].T / math.sqrt(size)
            probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
            probabilities /= probabilities.sum(axis=1, keepdims=True)
            total[head] += probabilities.max(axis=1).sum()
        tokens += len(example["input_ids"])
    return total / tokens


def test_confidence_matches_attention_maps_computed_by_hand_and_ignores_padding():
    model, examples = tiny_classifier(seed=3), rows(seed=1)
    batched = hi.confidence_scores(model, [0], examples, batch_size=4, collate_fn=collate)[0]
    np.testing.assert_allclose(batched, hand_confidence(model, examples), rtol=1e-9)
    one_by_one = hi.confidence_scores(model, [0], examples, batch_size=1, collate_fn=collate)[0]
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-9)  # padded batches score as unpadded ones
    assert model.config._attn_implementation == "sdpa"          # the eager pass is undone


def test_hard_concrete_gates_follow_the_formulas_of_louizos_and_voita():
    config = voita_gate_config(temperature=0.5, log_alpha_init=0.0)
    gates = hi.HardConcreteGates(3, config)
    with torch.no_grad():
        gates.log_alpha.copy_(torch.tensor([-4.0, 0.0, 3.0]))
    log_alpha = gates.log_alpha.detach().numpy()
    sigmoid = 1 / (1 + np.exp(-log_alpha))
    np.testing.assert_allclose(gates.deterministic().detach().numpy(), np.clip(sigmoid * 1.2 - 0.1, 0, 1), rtol=1e-6)
    assert gates.deterministic()[0].item() == 0.0  # a gate far enough below closes exactly
    open_probability = 1 / (1 + np.exp(-(log_alpha - 0.5 * np.log(0.1 / 1.1))))
    np.testing.assert_allclose(gates.open_probability().detach().numpy(), open_probability, rtol=1e-6)
    generator = torch.Generator().manual_seed(0)
    u = torch.rand(3, generator=torch.Generator().manual_seed(0)).clamp(1e-6, 1 - 1e-6).numpy()
    s = 1 / (1 + np.exp(-(np.log(u) - np.log(1 - u) + log_alpha) / 0.5))
    np.testing.assert_allclose(gates.sample(generator).detach().numpy(), np.clip(s * 1.2 - 0.1, 0, 1), rtol=1e-5)


def test_the_l0_penalty_closes_gates_and_the_model_weights_stay_untouched():
    model, examples = tiny_classifier(), rows(16)
    before = {name: p.clone() for name, p in model.named_parameters()}
    config = voita_gate_config(penalty=5.0, epochs=3, batch_size=4, learning_rate=0.2)
    scores, details = hi.voita_scores(model, [0, 1], examples, collate, "cpu", config, seed=0)
    assert details["last_step"]["l0"] < details["first_step"]["l0"]
    assert all(scores[layer].max() < config.log_alpha_init for layer in (0, 1))
    assert all(torch.equal(before[name], p) for name, p in model.named_parameters())
    assert all(p.requires_grad for p in model.parameters())


def test_random_scores_are_seeded_and_selection_takes_the_lowest():
    model = tiny_classifier()
    assert np.array_equal(hi.random_scores(model, [1], 7)[1], hi.random_scores(model, [1], 7)[1])
    assert not np.array_equal(hi.random_scores(model, [1], 7)[1], hi.random_scores(model, [1], 8)[1])
    assert hi.lowest_positions(np.array([0.3, 0.1, 0.2, 0.1]), 2) == [1, 3]
    with pytest.raises(ValueError, match="cannot prune 5 of 4"):
        hi.lowest_positions(np.zeros(4), 5)


def test_a_global_ranking_prunes_the_lowest_heads_but_never_a_layers_last():
    model = tiny_classifier()
    prune_heads(model, {1: [0]})                     # layer 1 keeps original heads 1, 2, 3
    scores = {0: np.array([0.9, 0.8, 0.7, 0.6]), 1: np.array([0.1, 0.2, 0.3])}
    plan = hi.global_plan(model, scores, 3)
    assert plan == {0: [3], 1: [1, 2]}               # the third-lowest (layer 1's last head) is skipped
    with pytest.raises(ValueError, match="cannot prune 6 heads"):
        hi.global_plan(model, scores, 6)


@pytest.fixture(scope="module")
def tokenized_task(tmp_path_factory):
    import datasets

    folder = tmp_path_factory.mktemp("task") / "tokenized"
    splits = {"train": rows(60, seed=1), "validation": rows(12, seed=2), "test": rows(12, seed=3)}
    datasets.DatasetDict({name: datasets.Dataset.from_list(r) for name, r in splits.items()}).save_to_disk(folder)
    (folder / "task.json").write_text(json.dumps({"name": "gen_mrpc", "num_labels": 2, "metrics": ["accuracy"],
                                                  "dev_split": "validation", "text_columns": ["sentence"]}))
    return folder


@pytest.mark.parametrize("method", hi.COMPETITORS)
def test_every_competitor_prunes_exactly_the_heads_auber_pruned_in_that_layer(method, tiny_model_folder,
                                                                               tokenized_task, tmp_path):
    from workflow_scripts.stages import prune_layer
    from workflow_scripts.core.models import load_for_classification

    auber_folder = tmp_path / "auber_layer_1"
    auber_folder.mkdir()
    (auber_folder / "search_log.json").write_text(json.dumps({"layer": 1, "pruned_head_ids": [0, 2, 3]}))
    output = tmp_path / "pruned"
    prune_layer.main(["--method", method, "--layer", "1", "--seed", "4", "--model", str(tiny_model_folder),
                      "--data", str(tokenized_task), "--output", str(output), "--budget", str(auber_folder),
                      "--method-name", method, "--layer-order", "bottom_up",
                      *stage_flags("prune_layer", {"mini_dev_fraction": 0.5, "batch_size": 8, "voita_epochs": 1,
                                                   "voita_batch_size": 8}, method=method)])
    log = json.loads((output / "search_log.json").read_text())
    assert len(log["pruned_head_ids"]) == 3 and log["budget"]["heads"] == 3
    assert log["pruned_positions"] == hi.lowest_positions(np.array(log["scores"]), 3)
    model = load_for_classification(str(output), 2)
    assert encoder_layers(model)[1].attention.self.num_attention_heads == 1
    assert encoder_layers(model)[0].attention.self.num_attention_heads == 4


def test_a_budget_from_another_layer_is_refused(tiny_model_folder, tokenized_task, tmp_path):
    from workflow_scripts.stages import prune_layer

    (tmp_path / "search_log.json").write_text(json.dumps({"layer": 0, "pruned_head_ids": [1]}))
    with pytest.raises(ValueError, match="AUBER's search of layer 0, not 1"):
        prune_layer.main(["--method", "random", "--layer", "1", "--model", str(tiny_model_folder), "--data",
                          str(tokenized_task), "--output", str(tmp_path / "out"), "--budget", str(tmp_path),
                          "--seed", "0", "--method-name", "random", "--layer-order", "bottom_up",
                          *stage_flags("prune_layer", {"mini_dev_fraction": 0.5}, method="random")])
    assert not (tmp_path / "out").exists()


def test_a_global_ranking_fixes_which_heads_each_layer_loses(tiny_model_folder, tokenized_task, tmp_path):
    from workflow_scripts.stages import global_ranking
    from workflow_scripts.stages import prune_layer

    searches = []
    for layer, pruned in ((0, [1]), (1, [0, 2])):                  # AUBER pruned 3 heads in all
        folder = tmp_path / f"auber_{layer}"
        folder.mkdir()
        (folder / "search_log.json").write_text(json.dumps({"layer": layer, "pruned_head_ids": pruned}))
        searches.append(str(folder))
    ranking_file = tmp_path / "global_ranking.json"
    global_ranking.main(["--method", "michel", "--model", str(tiny_model_folder), "--data", str(tokenized_task),
                         "--auber-searches", *searches, "--output", str(ranking_file), "--seed", "0",
                         *stage_flags("global_ranking", {"mini_dev_fraction": 0.5, "batch_size": 8})])
    ranking = json.loads(ranking_file.read_text())
    chosen = ranking["head_ids_by_layer"]
    assert ranking["heads_total"] == 3 and sum(len(ids) for ids in chosen.values()) == 3
    lowest = sorted((score, int(layer), int(head)) for layer, scores in ranking["scores_by_layer"].items()
                    for head, score in scores.items())[:3]
    assert sorted((layer, head) for _, layer, head in lowest) == sorted(
        (int(layer), head) for layer, ids in chosen.items() for head in ids)
    output = tmp_path / "pruned"
    prune_layer.main(["--method", "michel", "--layer", "1", "--model", str(tiny_model_folder), "--data",
                      str(tokenized_task), "--output", str(output), "--budget", str(ranking_file),
                      "--seed", "0", "--method-name", "michel", "--layer-order", "bottom_up",
                      *stage_flags("prune_layer", {"mini_dev_fraction": 0.5, "batch_size": 8}, method="michel")])
    assert json.loads((output / "search_log.json").read_text())["pruned_head_ids"] == chosen["1"]
