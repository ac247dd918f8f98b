"""The packed head-set scorer against a gated forward pass of the model, and AUBER's decisions on planted heads."""
import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, RobertaConfig, RobertaForSequenceClassification

from workflow_scripts.core.surgery import add_classifier_layer, attach_head_gates, encoder_layers, prune_heads
from workflow_scripts.head_pruning.auber import auber_config_from_mapping, search_layer
from workflow_scripts.head_pruning.head_set_scorer import HeadSetScorer, head_set_scorer, supports
from workflow_scripts.head_pruning.layerwise import PrunedHeadsScorer
from params_helpers import params

from test_auber import collate, synthetic_dataset, tiny_classifier


def gated_logits(model, dataset, layer, pruned):
    """The reference: the model's own forward pass (padded batch, attention mask) with gates closing the heads."""
    batch = {k: v for k, v in collate(list(dataset)).items() if k != "labels"}
    with attach_head_gates(model, requires_grad=False) as gates:
        gates.gates[layer][list(pruned)] = 0.0
        with torch.no_grad():
            return model(**batch).logits


@pytest.mark.parametrize("layer", [0, 1, 2])
@pytest.mark.parametrize("variant", ["plain", "uneven", "extra_classifier_layer"])
def test_logits_equal_the_gated_model_for_every_layer_and_head_set(layer, variant):
    model, dataset = tiny_classifier(num_labels=3), synthetic_dataset(50)
    if variant == "uneven":  # heterogeneous layers, as the chain leaves them (the layer scored keeps 3 heads)
        prune_heads(model, {0: [1], 1: [0, 3], 2: [2]})
    if variant == "extra_classifier_layer":
        add_classifier_layer(model, dropout=0.1)
        model.eval()
    num_heads = encoder_layers(model)[layer].attention.self.num_attention_heads
    with HeadSetScorer(model, layer, dataset, "accuracy") as scorer:
        packed_order = scorer.row_order
        for pruned in [(), (0,), tuple(range(1, num_heads)), tuple(range(num_heads))]:
            expected = gated_logits(model, dataset, layer, pruned)[packed_order]
            torch.testing.assert_close(scorer.logits(pruned), expected, rtol=1e-5, atol=1e-5)


def test_scores_equal_the_reference_scorer_and_each_set_is_evaluated_once():
    model, dataset = tiny_classifier(seed=3, num_labels=1), synthetic_dataset(60, regression=True)
    sets = [(), (1,), (0, 3), (3, 0), (0, 1, 2), (1,)]
    with PrunedHeadsScorer(model, 2, dataset, "pearson", 16, collate, cache_hidden_states=False,
                           cache_scores=False) as reference:
        expected = [reference(s) for s in sets]
    with HeadSetScorer(model, 2, dataset, "pearson") as scorer:
        scores = [scorer(s) for s in sets]
        with pytest.raises(ValueError, match="heads 0..3"):
            scorer((4,))
    np.testing.assert_allclose(scores, expected, rtol=1e-3)  # Pearson of near-equal logits amplifies rounding
    assert len(set(np.round(expected, 6))) == 4  # the distinct sets score differently: equality is informative
    assert scorer.stats.calls == 6 and scorer.stats.evaluations == 4 == len(scorer.scores)  # bad input is not a call


def test_models_without_the_supported_layout_get_the_reference_scorer():
    config = RobertaConfig(vocab_size=100, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=32, num_labels=2)
    roberta = RobertaForSequenceClassification(config).eval()
    assert not supports(roberta) and supports(tiny_classifier())
    assert isinstance(head_set_scorer(roberta, 0, synthetic_dataset(), "accuracy", 8, collate, "cpu"),
                      PrunedHeadsScorer)
    assert isinstance(head_set_scorer(tiny_classifier(), 0, synthetic_dataset(), "accuracy", 8, collate, "cpu",
                                      cache=False), PrunedHeadsScorer)  # the naive reference
    with pytest.raises(ValueError, match="not a BERT classifier"):
        HeadSetScorer(roberta, 0, synthetic_dataset(), "accuracy")


NOISY_HEAD, IMPORTANT_HEAD = 1, 2


def planted_model_and_task(seed: int):
    """A 2-layer BERT whose layer 0 has a head that only adds noise and a head the predictions depend on. Labels are
    the model's own predictions without the noisy head, so pruning it restores every label (a large positive reward)
    and pruning the important head loses many (a large negative one)."""
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, num_labels=2)
    model = BertForSequenceClassification(config).eval()
    value = encoder_layers(model)[0].attention.self.value
    with torch.no_grad():
        value.weight[IMPORTANT_HEAD * 8:(IMPORTANT_HEAD + 1) * 8] *= 16.0
        value.weight[NOISY_HEAD * 8:(NOISY_HEAD + 1) * 8] += 0.04 * torch.randn(8, 32)
    dataset = synthetic_dataset(200, seed=seed)
    clean = gated_logits(model, dataset, 0, [NOISY_HEAD])
    margin = clean[:, 1] - clean[:, 0]
    with torch.no_grad():  # centre the decision so that the clean labels are balanced
        model.classifier.bias[1] -= margin.median()
    labels = (margin > margin.median()).long().tolist()
    return model, dataset.remove_columns("labels").add_column("labels", labels)


def test_auber_prunes_a_planted_noisy_head_and_keeps_an_important_one_at_default_settings():
    outcomes = []
    for seed in range(5):
        model, dataset = planted_model_and_task(seed)
        config = auber_config_from_mapping(params()["auber"]["default"], seed=seed)  # the embedded default agent
        log = search_layer(model, 0, dataset, "accuracy", 64, collate, "cpu", config)
        with HeadSetScorer(model, 0, dataset, "accuracy") as scorer:
            rewards = {head: 100 * (scorer((head,)) - scorer(())) for head in range(4)}
        assert rewards[NOISY_HEAD] > 5 and rewards[IMPORTANT_HEAD] < -5, rewards  # the plant works
        assert log["dqn_updates"] >= 100  # one step per episode once the memory holds a batch (4 heads: short episodes)
        assert log["distinct_head_sets_scored"] == log["reward_cache"]["evaluations"] > 0
        assert log["greedy_reward"] == pytest.approx(100 * (log["mini_dev_score_after"]
                                                            - log["mini_dev_score_before"]))
        outcomes.append(NOISY_HEAD in log["pruned_head_ids"] and IMPORTANT_HEAD not in log["pruned_head_ids"])
        if log["random_sets"]["sets"]:
            assert log["greedy_reward"] >= log["random_sets"]["median_reward"]
    assert sum(outcomes) >= 4, outcomes


def test_random_sets_baseline_draws_distinct_sets_of_the_decisions_size_or_all_of_them():
    from workflow_scripts.head_pruning.auber import random_sets_baseline

    class CountingScorer:
        def __init__(self):
            self.asked = []

        def __call__(self, pruned):
            self.asked.append(frozenset(pruned))
            return 0.5 - 0.1 * (0 in pruned)  # pruning head 0 costs 10 points, any other head nothing

    scorer = CountingScorer()
    drawn = random_sets_baseline(scorer, num_heads=12, size=3, count=100, reward_scale=100.0, seed=1)
    sets = [s for s in scorer.asked if s]
    assert drawn["sets"] == 100 == len(set(sets)) and all(len(s) == 3 for s in sets) and not drawn["exhaustive"]
    assert drawn["best_reward"] == 0.0 and drawn["median_reward"] == 0.0 and drawn["possible_sets"] == 220
    assert sum(r == pytest.approx(-10.0) for r in drawn["rewards"]) == sum(0 in s for s in sets) > 0
    every = random_sets_baseline(CountingScorer(), num_heads=4, size=2, count=100, reward_scale=100.0, seed=1)
    assert every["exhaustive"] and every["sets"] == 6
    assert random_sets_baseline(CountingScorer(), 4, 0, 100, 100.0, 1)["sets"] == 0  # nothing pruned: no baseline
