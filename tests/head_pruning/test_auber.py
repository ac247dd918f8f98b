"""AUBER: the state vector, the DQN agent on synthetic rewards, the mini-dev scorer and its caches, the search."""
import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from workflow_scripts.head_pruning.auber import head_norms, head_state, search_layer, state_from_norms
from workflow_scripts.head_pruning.dqn import train_agent, valid_action_mask
from workflow_scripts.head_pruning.order import processing_order
from workflow_scripts.head_pruning.layerwise import (PrunedHeadsScorer, layer_seed, layer_split, seeded_subset,
                                        split_mini_train_dev)
from workflow_scripts.core.surgery import encoder_layers, prune_heads
from params_helpers import paper_auber_config


class SyntheticEnvironment:
    """Pruning a head in `helpful` raises the score by 1 point, any other head lowers it by 1."""

    def __init__(self, num_heads, helpful, max_pruned=None):
        self.num_heads, self.helpful = num_heads, set(helpful)
        self.max_pruned = num_heads - 1 if max_pruned is None else max_pruned
        self.state = np.random.default_rng(0).dirichlet(np.ones(num_heads)).astype(np.float32)
        self.requests = []

    def initial_state(self):
        return self.state.copy()

    def prune_reward(self, pruned, head):
        assert head not in pruned, f"head {head} chosen again after {pruned}"
        assert len(pruned) < self.max_pruned
        self.requests.append((tuple(pruned), head))
        return 1.0 if head in self.helpful else -1.0


@pytest.mark.parametrize("num_heads,helpful", [(12, {2, 7}), (4, {1}), (16, {0, 5, 9})])
def test_agent_learns_to_prune_exactly_the_helpful_heads_then_stop(num_heads, helpful):
    # The paper's hyperparameters (150 episodes, ~130 SGD steps) do not converge on every seed: over five seeds
    # the greedy policy must always take every helpful head first, and take nothing else in most runs.
    exact = 0
    for seed in range(5):
        result = train_agent(SyntheticEnvironment(num_heads, helpful), paper_auber_config(seed).dqn)
        assert set(result.pruned_heads[:len(helpful)]) == helpful
        assert result.greedy_rewards[:len(helpful)] == [1.0] * len(helpful)
        exact += set(result.pruned_heads) == helpful
        assert len(result.episodes) == 150 and len(result.final_q_values) == num_heads + 1
    assert exact >= 3


def test_already_pruned_heads_and_the_budget_are_never_exceeded():
    environment = SyntheticEnvironment(6, helpful=range(6), max_pruned=3)  # every prune pays: it wants all
    result = train_agent(environment, paper_auber_config(0, episodes=60, epsilon_decay_actions=20).dqn)
    for episode in result.episodes:
        heads = [a for a in episode.actions if a != 6]
        assert len(heads) == len(set(heads)) <= 3
        assert episode.actions[-1] == 6  # every episode ends with stop
    assert len(result.pruned_heads) <= 3 and len(set(result.pruned_heads)) == len(result.pruned_heads)


def test_valid_action_mask_hides_pruned_heads_and_forces_stop_at_the_budget():
    states = torch.tensor([[0.2, 0.0, 0.8], [0.0, 0.0, 1.0]])
    assert valid_action_mask(states, max_pruned=2).tolist() == [[True, False, True, True],
                                                               [False, False, False, True]]


def test_epsilon_follows_the_papers_schedule_per_action():
    result = train_agent(SyntheticEnvironment(4, {0}), paper_auber_config(1, episodes=20).dqn)
    actions_before = np.cumsum([0] + [len(e.actions) for e in result.episodes])
    for episode, actions in zip(result.episodes, actions_before[1:]):
        expected = 0.05 + 0.95 * np.exp(-(actions - 1) / 256)  # epsilon at the episode's last action
        assert episode.epsilon == pytest.approx(expected)


def tiny_classifier(num_heads=4, layers=3, seed=0, num_labels=2):
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=100, hidden_size=8 * num_heads, num_hidden_layers=layers,
                        num_attention_heads=num_heads, intermediate_size=32, num_labels=num_labels,
                        attn_implementation="eager")
    return BertForSequenceClassification(config).eval()


def test_state_is_the_softmax_of_standardized_l1_norms_of_value_heads():
    model = tiny_classifier()
    value = encoder_layers(model)[1].attention.self.value.weight.detach().numpy()  # (4 heads * 8, 32)
    norms = np.array([np.abs(value[h * 8:(h + 1) * 8]).sum() for h in range(4)])
    standardized = (norms - norms.mean()) / norms.std()
    expected = np.exp(standardized) / np.exp(standardized).sum()
    np.testing.assert_allclose(head_state(model, 1), expected, rtol=1e-5)
    l2 = np.array([np.sqrt((value[h * 8:(h + 1) * 8] ** 2).sum()) for h in range(4)])
    np.testing.assert_allclose(head_norms(model, 1, "value", "l2").numpy(), l2, rtol=1e-5)
    query = encoder_layers(model)[1].attention.self.query.weight.detach().numpy()
    np.testing.assert_allclose(head_norms(model, 1, "query").numpy(),
                               [np.abs(query[h * 8:(h + 1) * 8]).sum() for h in range(4)], rtol=1e-5)


def test_state_of_equal_norms_or_one_head_is_uniform_and_follows_uneven_layers():
    assert state_from_norms(torch.tensor([2.0, 2.0, 2.0])).tolist() == pytest.approx([1 / 3] * 3)
    model = tiny_classifier()
    prune_heads(model, {0: [1, 3]})
    assert head_state(model, 0).shape == (2,)


def synthetic_dataset(num_examples=40, seed=0, regression=False):
    import datasets

    rng = np.random.default_rng(seed)
    rows = [{"input_ids": [1, *rng.integers(5, 100, size=int(rng.integers(3, 12))).tolist(), 2],
             "labels": float(rng.normal()) if regression else int(rng.integers(0, 2))} for _ in range(num_examples)]
    for row in rows:
        row["attention_mask"] = [1] * len(row["input_ids"])
    return datasets.Dataset.from_list(rows)


def collate(rows):
    longest = max(len(r["input_ids"]) for r in rows)
    pad = lambda values: [v + [0] * (longest - len(v)) for v in values]  # noqa: E731
    return {"input_ids": torch.tensor(pad([r["input_ids"] for r in rows])),
            "attention_mask": torch.tensor(pad([r["attention_mask"] for r in rows])),
            "labels": torch.tensor([r["labels"] for r in rows])}


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_hidden_state_cache_gives_bit_identical_scores_and_restores_the_model(layer):
    # a regression head scored by Pearson correlation: a continuous score, so equality is tested to the last bit
    model, dataset = tiny_classifier(num_labels=1), synthetic_dataset(regression=True)
    reference_logits = model(**{k: v for k, v in collate(list(dataset)).items() if k != "labels"}).logits
    sets = [(), (1,), (0, 3), (0, 1, 2)]
    scores = {}
    for cached in (False, True):
        with PrunedHeadsScorer(model, layer, dataset, "pearson", 16, collate, cache_hidden_states=cached,
                               cache_scores=False) as scorer:
            scores[cached] = [scorer(s) for s in sets]
    assert scores[True] == scores[False]
    assert len(set(scores[True])) == len(sets)  # every pruned set changes the score: equality is informative
    after = model(**{k: v for k, v in collate(list(dataset)).items() if k != "labels"}).logits
    assert torch.equal(after, reference_logits)  # gates removed, modules restored


def test_score_cache_evaluates_each_pruned_set_once():
    with PrunedHeadsScorer(tiny_classifier(), 1, synthetic_dataset(), "accuracy", 16, collate) as scorer:
        first = [scorer(s) for s in [(), (2,), (2,), (), (2, 0), (0, 2)]]
    assert scorer.stats.calls == 6 and scorer.stats.evaluations == 3
    assert first[1] == first[2] and first[4] == first[5]
    with pytest.raises(ValueError, match="heads 0..3"):
        with PrunedHeadsScorer(tiny_classifier(), 1, synthetic_dataset(), "accuracy", 16, collate) as scorer:
            scorer((4,))


def test_cached_search_makes_the_same_decisions_as_the_uncached_one():
    dataset = synthetic_dataset(60)
    config = paper_auber_config(5, episodes=25, epsilon_decay_actions=16, replay_batch_size=16,
                                hidden_sizes=[32, 32, 32], reward_scale=1.0)
    logs = {cache: search_layer(tiny_classifier(seed=1), 1, dataset, "accuracy", 16, collate, "cpu", config,
                                cache=cache) for cache in (True, False)}
    rerun = search_layer(tiny_classifier(seed=1), 1, dataset, "accuracy", 16, collate, "cpu", config)
    assert rerun["search"] == logs[True]["search"]  # same seed, same episodes, losses and decision
    for key in ("pruned_head_ids", "mini_dev_score_before", "mini_dev_score_after", "state"):
        assert logs[True][key] == logs[False][key]
    assert logs[True]["search"]["episodes"] == logs[False]["search"]["episodes"]
    assert logs[True]["reward_cache"]["evaluations"] < logs[False]["reward_cache"]["evaluations"]
    assert logs[False]["reward_cache"]["hit_rate"] == 0.0


def test_mini_split_is_a_seeded_partition_with_the_requested_share():
    mini_train, mini_dev = split_mini_train_dev(300, 2 / 3, seed=7)
    assert sorted(mini_train + mini_dev) == list(range(300)) and len(mini_dev) == 200
    assert (mini_train, mini_dev) == split_mini_train_dev(300, 2 / 3, seed=7)
    assert split_mini_train_dev(300, 2 / 3, seed=layer_seed(0, 1, "mini_split")) != \
        split_mini_train_dev(300, 2 / 3, seed=layer_seed(0, 2, "mini_split"))
    with pytest.raises(ValueError, match="strictly between"):
        split_mini_train_dev(300, 1.0, seed=0)
    subset = seeded_subset(mini_dev, 50, seed=1)
    assert len(subset) == 50 and set(subset) <= set(mini_dev) and subset == sorted(subset)
    mini_train, mini_dev, reward_rows = layer_split(300, 2 / 3, 50, seed=0, layer_index=2)
    assert (mini_train, mini_dev) == split_mini_train_dev(300, 2 / 3, seed=layer_seed(0, 2, "mini_split"))
    assert reward_rows == seeded_subset(mini_dev, 50, seed=layer_seed(0, 2, "reward_rows"))


def test_layer_orders():
    assert processing_order(4, "bottom_up") == [0, 1, 2, 3]
    assert processing_order(4, "top_down") == [3, 2, 1, 0]
    with pytest.raises(ValueError, match="layer_order"):
        processing_order(4, "middle_out")


def test_final_fine_tune_holds_out_a_seeded_share_of_its_training_rows(tmp_path):
    from workflow_scripts.core.training import training_rows

    train, held_out = training_rows(100, None, 0.1, seed=3)
    assert len(held_out) == 10 and sorted(train + held_out) == list(range(100))
    assert (train, held_out) == training_rows(100, None, 0.1, seed=3)
    (tmp_path / "mini_split.json").write_text('{"mini_train": [4, 8, 15, 16, 23, 42]}')
    assert training_rows(100, str(tmp_path / "mini_split.json"), 0.0, seed=0) == ([4, 8, 15, 16, 23, 42], [])


def test_updates_per_episode_takes_that_many_optimisation_steps_once_the_memory_holds_a_batch():
    environment = SyntheticEnvironment(4, {1})
    results = {steps: train_agent(environment, paper_auber_config(0, episodes=30, replay_batch_size=16,
                                                                  updates_per_episode=steps).dqn)
               for steps in (1, 3)}
    for steps, result in results.items():
        ready = [e for e in result.episodes if e.loss is not None]
        assert ready and all(e.updates == steps for e in ready)
        assert all(e.updates == 0 for e in result.episodes if e.loss is None)
        assert result.updates == steps * len(ready) == result.to_json()["dqn_updates"]
    assert results[1].episodes[0].updates == 0  # an empty memory cannot fill a batch: no step
