"""AUBER (Lee et al., 2021): the state of a layer, the pruning environment the DQN acts in, and one layer's search.

State (section 3.3): for each head of layer l, the L1 norm of its block of the value weight matrix (the
`head_size` output rows of `value.weight` that belong to the head), standardized to mean 0 and standard
deviation 1 over the layer's heads, then a softmax. Pruned heads get 0; the other entries are not recomputed.
The ablations use the query or key matrix (`state_matrix`) or the L2 norm (`state_norm`, the authors' code).

Reward (section 3.2): the change of the mini-dev score (accuracy; Matthews correlation for CoLA) when a head
is pruned, measured without retraining: reward_scale * (score(after) - score(before)). The paper states the
difference itself (scale 1); the authors' code multiplies it by 100.
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field, fields

import numpy as np
import torch

from workflow_scripts.head_pruning.dqn import DQNConfig, config_to_json, train_agent
from workflow_scripts.head_pruning.head_set_scorer import head_set_scorer
from workflow_scripts.core.surgery import encoder_layers, kept_head_ids

STATE_MATRICES = ("value", "query", "key")
STATE_NORMS = ("l1", "l2")


def head_norms(model, layer_index: int, state_matrix: str = "value", state_norm: str = "l1") -> torch.Tensor:
    """(H,) norm of each head's block of the layer's query/key/value weight (biases excluded)."""
    if state_matrix not in STATE_MATRICES or state_norm not in STATE_NORMS:
        raise ValueError(f"state_matrix must be one of {STATE_MATRICES} and state_norm one of {STATE_NORMS}; "
                         f"got {state_matrix!r}, {state_norm!r}")
    self_attention = encoder_layers(model)[layer_index].attention.self
    num_heads, head_size = self_attention.num_attention_heads, self_attention.attention_head_size
    if num_heads == 0:
        raise ValueError(f"layer {layer_index} has no heads left to prune")
    weight = getattr(self_attention, state_matrix).weight.detach().double()  # (H * head_size, hidden)
    per_head = weight.reshape(num_heads, head_size, -1)                      # (H, head_size, hidden)
    return per_head.abs().sum(dim=(1, 2)) if state_norm == "l1" else per_head.pow(2).sum(dim=(1, 2)).sqrt()


def state_from_norms(norms: torch.Tensor) -> np.ndarray:
    """softmax((n - mean) / std), std over the heads (population, ddof 0). Equal norms (or a single head) have
    std 0 and give the uniform vector."""
    std = norms.std(unbiased=False)
    standardized = (norms - norms.mean()) / std if std > 0 else torch.zeros_like(norms)
    return torch.softmax(standardized, dim=0).float().numpy()


def head_state(model, layer_index: int, state_matrix: str = "value", state_norm: str = "l1") -> np.ndarray:
    return state_from_norms(head_norms(model, layer_index, state_matrix, state_norm))


class LayerPruningEnvironment:
    """The DQN's environment for one layer: rewards are score changes from a PrunedHeadsScorer."""

    def __init__(self, scorer, initial_state: np.ndarray, reward_scale: float, max_pruned: int):
        self.scorer, self.reward_scale = scorer, reward_scale
        self.num_heads, self.max_pruned = len(initial_state), max_pruned
        self._initial_state = initial_state.astype(np.float32)
        self.baseline_score = scorer(())

    def initial_state(self) -> np.ndarray:
        return self._initial_state.copy()

    def prune_reward(self, pruned: tuple[int, ...], head: int) -> float:
        """Equation 4: score after minus score before. Both come from the scorer, whose score cache makes the
        'before' a lookup (it was the previous step's 'after'); without the cache both are evaluated."""
        before = self.scorer(pruned)
        after = self.scorer((*pruned, head))
        return self.reward_scale * (after - before)


@dataclass
class AuberConfig:
    """AUBER's state, reward and limits (auber.*); the agent's schedule is `dqn`."""
    state_matrix: str = field(metadata={"help": "weights the state is read from", "choices": STATE_MATRICES})
    state_norm: str = field(metadata={"help": "norm of each head's weight block", "choices": STATE_NORMS})
    reward_scale: float = field(metadata={"help": "reward = scale * change of the mini-dev score"})
    reward_max_examples: int | None = field(metadata={"help": "score rewards on N mini-dev rows (null: all)"})
    max_pruned_per_layer: int | None = field(metadata={"help": "most heads pruned in one layer (null: all but one)"})
    random_baseline_sets: int = field(metadata={"help": "random head sets of the decision's size scored per layer"})
    dqn: DQNConfig


def auber_config_from_mapping(values: dict, seed: int = 0) -> AuberConfig:
    """An AuberConfig from the flat `auber.*` mapping of params.yaml (default overlaid with overrides)."""
    dqn_names = {f.name for f in fields(DQNConfig) if f.metadata.get("cli") is not False}
    auber_names = {f.name for f in fields(AuberConfig)} - {"dqn"}
    unknown = set(values) - dqn_names - auber_names
    if unknown:
        raise KeyError(f"not AUBER settings: {sorted(unknown)}")
    return AuberConfig(**{name: values[name] for name in auber_names},
                       dqn=DQNConfig(**{name: values[name] for name in dqn_names}, seed=seed))


def max_pruned_for(num_heads: int, config: AuberConfig) -> int:
    limit = num_heads - 1 if config.max_pruned_per_layer is None else config.max_pruned_per_layer
    return max(0, min(num_heads, limit))


def random_sets_baseline(scorer, num_heads: int, size: int, count: int, reward_scale: float, seed: int) -> dict:
    """Rewards (scale * (score(set) - score(no head pruned))) of `count` random sets of `size` heads, drawn without
    repetition, or of every such set when there are no more than `count`: where the search's decision falls among
    decisions of the same size taken at random, with no training."""
    possible = math.comb(num_heads, size)
    if size == 0 or count == 0:
        return {"size": size, "sets": 0, "possible_sets": possible}
    if possible <= count:
        sets = [frozenset(c) for c in itertools.combinations(range(num_heads), size)]
    else:
        rng, drawn = np.random.default_rng(seed), set()
        while len(drawn) < count:
            drawn.add(frozenset(rng.choice(num_heads, size, replace=False).tolist()))
        sets = sorted(drawn, key=sorted)
    baseline = scorer(())
    rewards = np.array([reward_scale * (scorer(s) - baseline) for s in sets])
    return {"size": size, "sets": len(sets), "possible_sets": possible, "exhaustive": possible <= count,
            "best_reward": float(rewards.max()), "median_reward": float(np.median(rewards)),
            "mean_reward": float(rewards.mean()), "rewards": rewards.round(6).tolist()}


def search_layer(model, layer_index: int, mini_dev, metric: str, batch_size: int, collate_fn, device: str,
                 config: AuberConfig, cache: bool = True, progress=None) -> dict:
    """Train a fresh DQN on one layer and return its decision and everything logged about the search.
    `pruned_head_ids` are original head ids (what `surgery.prune_heads` takes)."""
    started = time.perf_counter()
    original_ids = kept_head_ids(model, layer_index)
    state = head_state(model, layer_index, config.state_matrix, config.state_norm)
    with head_set_scorer(model, layer_index, mini_dev, metric, batch_size, collate_fn, device, cache) as scorer:
        environment = LayerPruningEnvironment(scorer, state, config.reward_scale,
                                              max_pruned_for(len(original_ids), config))
        result = train_agent(environment, config.dqn, progress)
        score_after = scorer(result.pruned_heads)
        search_stats = scorer.stats.to_json()
        distinct_sets = len(scorer.scores) if cache else None
        search_seconds = time.perf_counter() - started
        random_sets = random_sets_baseline(scorer, len(original_ids), len(result.pruned_heads),
                                           config.random_baseline_sets, config.reward_scale,
                                           seed=config.dqn.seed + 1)
    greedy_reward = config.reward_scale * (score_after - environment.baseline_score)
    if random_sets["sets"]:
        # on the stored (rounded) values: different sets often tie exactly (the same confusion matrix), and a tie
        # must count as matched
        random_sets["decision_at_least_share"] = float(np.mean(
            np.array(random_sets["rewards"]) <= round(greedy_reward, 6)))
    return {
        "layer": layer_index,
        "head_ids": original_ids,
        "state": state.tolist(),
        "pruned_positions": result.pruned_heads,
        "pruned_head_ids": sorted(original_ids[p] for p in result.pruned_heads),
        "pruned_head_ids_in_order": [original_ids[p] for p in result.pruned_heads],
        "metric": metric,
        "mini_dev_score_before": environment.baseline_score,
        "mini_dev_score_after": score_after,
        "mini_dev_examples": len(mini_dev),
        "dqn_updates": result.updates,
        "distinct_head_sets_scored": distinct_sets,
        "greedy_reward": greedy_reward,
        "random_sets": random_sets,
        "reward_cache": search_stats,
        "scorer": type(scorer).__name__,
        "caching": cache,
        "seconds": round(search_seconds, 3),
        "random_sets_seconds": round(time.perf_counter() - started - search_seconds, 3),
        "config": {"state_matrix": config.state_matrix, "state_norm": config.state_norm,
                   "reward_scale": config.reward_scale, "max_pruned": environment.max_pruned,
                   "random_baseline_sets": config.random_baseline_sets, "dqn": config_to_json(config.dqn)},
        "search": result.to_json(),
    }
