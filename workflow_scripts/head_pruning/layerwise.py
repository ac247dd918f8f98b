"""What every layer-by-layer head-pruning method shares (AUBER and its competitors, for a fair comparison):
the order layers are processed in, the mini-train / mini-dev re-split of the training set before each layer,
and the mini-dev score of the model with a set of one layer's heads switched off.

The scorer is where a search spends its time, so it has two caches (each behind a switch, with identical
results either way, which the tests and benchmarks/auber_search_cache.py check):

- hidden-state cache: within one layer's search the weights never change, and switching off heads of layer l
  changes nothing below it. The hidden states entering layer l and the per-head outputs of layer l's
  self-attention (what the gates multiply) are computed once; every later evaluation runs only the rest of
  layer l and the layers above it, on the very same tensors, so scores are bit-identical.
- score cache: the score of a set of pruned heads never changes within a search, so it is computed once.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from workflow_scripts.core.metrics import compute_metrics
from workflow_scripts.core.surgery import attach_head_gates, encoder_layers

def layer_seed(seed: int, layer_index: int, purpose: str) -> int:
    """A seed per (run seed, layer, purpose), so that every layer gets its own split and agent init, and a
    change at one layer leaves the seeds of the others alone."""
    purpose_code = sum(ord(c) * 31 ** i for i, c in enumerate(purpose)) % 2 ** 31
    return int(np.random.SeedSequence([seed, layer_index, purpose_code]).generate_state(1)[0])


def split_mini_train_dev(num_examples: int, mini_dev_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of the training set shuffled into (mini_train, mini_dev); the paper splits 1:2 (fraction 2/3), the
    authors' code sends each row to mini-dev with probability 0.25. Both parts are non-empty."""
    if not 0 < mini_dev_fraction < 1:
        raise ValueError(f"mini_dev_fraction must be strictly between 0 and 1, got {mini_dev_fraction}")
    if num_examples < 2:
        raise ValueError(f"cannot split {num_examples} training example(s) into mini-train and mini-dev")
    order = np.random.default_rng(seed).permutation(num_examples)
    num_dev = min(num_examples - 1, max(1, round(mini_dev_fraction * num_examples)))
    return sorted(order[num_dev:].tolist()), sorted(order[:num_dev].tolist())


def seeded_subset(indices: list[int], max_examples: int | None, seed: int) -> list[int]:
    """At most `max_examples` of `indices` drawn at random (kept sorted); all of them for None."""
    if max_examples is None or max_examples >= len(indices):
        return list(indices)
    if max_examples < 1:
        raise ValueError(f"max_examples must be at least 1, got {max_examples}")
    picked = np.random.default_rng(seed).choice(len(indices), max_examples, replace=False)
    return sorted(indices[i] for i in picked)


def layer_split(num_examples: int, mini_dev_fraction: float, reward_max_examples: int | None, seed: int,
                layer_index: int) -> tuple[list[int], list[int], list[int]]:
    """(mini_train, mini_dev, reward_rows) of one layer: the training set re-split with the layer's own seed, and
    the mini-dev rows rewards are scored on. The pipeline and the benchmarks both take their splits from here."""
    mini_train, mini_dev = split_mini_train_dev(num_examples, mini_dev_fraction,
                                                layer_seed(seed, layer_index, "mini_split"))
    reward_rows = seeded_subset(mini_dev, reward_max_examples, layer_seed(seed, layer_index, "reward_rows"))
    return mini_train, mini_dev, reward_rows


class _ReplayInput(nn.Module):
    """Stands in for the encoder layers below l: the first returns the cached input of layer l for the current
    batch, the others pass it through."""

    def __init__(self, cache: "_LayerInputCache", first: bool):
        super().__init__()
        self.cache, self.first = cache, first

    def forward(self, hidden_states, *args, **kwargs):
        return self.cache.hidden_states[self.cache.batch_index] if self.first else hidden_states


class _ReplaySelfAttention(nn.Module):
    """Stands in for layer l's self-attention: returns its cached output (per-head context, before the gates)."""

    def __init__(self, cache: "_LayerInputCache"):
        super().__init__()
        self.cache = cache

    def forward(self, hidden_states, *args, **kwargs):
        return self.cache.self_attention_outputs[self.cache.batch_index], None


class _LayerInputCache:
    def __init__(self):
        self.hidden_states: list[torch.Tensor] = []           # per batch: (B, T, hidden), input of layer l
        self.self_attention_outputs: list[torch.Tensor] = []  # per batch: (B, T, heads * head_size)
        self.batch_index = 0


@dataclass
class ScorerStats:
    calls: int = 0
    evaluations: int = 0  # forward passes over the mini-dev set
    seconds_evaluating: float = 0.0

    @property
    def cache_hits(self) -> int:
        return self.calls - self.evaluations

    def to_json(self) -> dict:
        return {"calls": self.calls, "evaluations": self.evaluations, "cache_hits": self.cache_hits,
                "hit_rate": self.cache_hits / self.calls if self.calls else 0.0,
                "seconds_evaluating": round(self.seconds_evaluating, 3)}


class HeadSetScores:
    """What every head-set scorer shares: the score (the task's headline metric) of a set of one layer's heads
    switched off, given as storage positions in that layer; the input check; the per-set score cache and its
    statistics. A subclass sets `labels` and implements `_ready()` (true inside its `with` block) and
    `_logits(pruned_positions)` ((rows, labels) in the order of `labels`)."""

    def __init__(self, layer_index: int, num_heads: int, metric: str, cache_scores: bool):
        self.layer_index, self.num_heads, self.metric, self.cache_scores = layer_index, num_heads, metric, cache_scores
        self.scores: dict[frozenset[int], float] = {}
        self.stats = ScorerStats()

    def _evaluate(self, pruned_positions: frozenset[int]) -> float:
        started = time.perf_counter()
        logits = self._logits(pruned_positions)
        self.stats.evaluations += 1
        self.stats.seconds_evaluating += time.perf_counter() - started
        return compute_metrics([self.metric], logits, self.labels)[self.metric]

    def __call__(self, pruned_positions) -> float:
        if not self._ready():
            raise RuntimeError("use the scorer inside a `with` block")
        key = frozenset(int(p) for p in pruned_positions)
        bad = [p for p in key if not 0 <= p < self.num_heads]
        if bad:
            raise ValueError(f"layer {self.layer_index} has heads 0..{self.num_heads - 1}; got positions {bad}")
        self.stats.calls += 1
        if not self.cache_scores:
            return self._evaluate(key)
        if key not in self.scores:
            self.scores[key] = self._evaluate(key)
        return self.scores[key]


class PrunedHeadsScorer(HeadSetScores):
    """Head-set scores from the model's own forward pass, with gates closing the heads: works for any encoder the
    gates fit. Use as a context manager: it attaches gates to the model and, with the hidden-state cache, swaps
    modules; both are undone on exit."""

    def __init__(self, model, layer_index: int, dataset, metric: str, batch_size: int, collate_fn,
                 device: str = "cpu", cache_hidden_states: bool = True, cache_scores: bool = True):
        super().__init__(layer_index, encoder_layers(model)[layer_index].attention.self.num_attention_heads, metric,
                         cache_scores)
        self.model = model.to(device).eval()
        self.cache_hidden_states = cache_hidden_states
        self.batches, self.labels = self._length_sorted_batches(dataset, batch_size, collate_fn, device)
        self._gates = None
        self._restore: list[tuple[nn.Module, str, nn.Module]] = []
        self._layer_cache = _LayerInputCache()

    @staticmethod
    def _length_sorted_batches(dataset, batch_size: int, collate_fn, device: str):
        """Batches of similar lengths (less padding), collated once; labels in the same order."""
        lengths = np.array([len(ids) for ids in dataset["input_ids"]])
        order = np.argsort(-lengths, kind="stable")
        batches, labels = [], []
        for start in range(0, len(order), batch_size):
            rows = [dataset[int(i)] for i in order[start:start + batch_size]]
            batch = collate_fn(rows)
            labels.append(batch.pop("labels").numpy())
            batches.append({name: tensor.to(device) for name, tensor in batch.items()})
        return batches, np.concatenate(labels)

    def __enter__(self):
        self._gates = attach_head_gates(self.model, requires_grad=False)
        if self.cache_hidden_states:
            self._fill_layer_cache()
        return self

    def __exit__(self, *exc_info):
        for parent, name, module in reversed(self._restore):
            setattr(parent, name, module)
        self._restore.clear()
        self._gates.remove()

    def _swap(self, parent: nn.Module, name: str, replacement: nn.Module) -> None:
        self._restore.append((parent, name, getattr(parent, name)))
        setattr(parent, name, replacement)

    @torch.inference_mode()
    def _fill_layer_cache(self) -> None:
        layer = encoder_layers(self.model)[self.layer_index]
        cache = self._layer_cache

        def keep_input(module, args, kwargs):
            cache.hidden_states.append(args[0] if args else kwargs["hidden_states"])

        def keep_self_attention_output(module, args, output):
            cache.self_attention_outputs.append(output[0])

        handles = [layer.register_forward_pre_hook(keep_input, with_kwargs=True),
                   layer.attention.self.register_forward_hook(keep_self_attention_output)]
        try:
            for batch in self.batches:
                self.model(**batch)
        finally:
            for handle in handles:
                handle.remove()
        layers = encoder_layers(self.model)
        for index in range(self.layer_index):
            self._swap(layers, str(index), _ReplayInput(cache, first=index == 0))
        self._swap(layer.attention, "self", _ReplaySelfAttention(cache))

    def _ready(self) -> bool:
        return self._gates is not None

    @torch.inference_mode()
    def _logits(self, pruned_positions: frozenset[int]) -> np.ndarray:
        gate = self._gates.gates[self.layer_index]
        gate.fill_(1.0)
        if pruned_positions:
            gate[list(pruned_positions)] = 0.0
        logits = []
        for index, batch in enumerate(self.batches):
            self._layer_cache.batch_index = index
            logits.append(self.model(**batch).logits.float().cpu().numpy())
        gate.fill_(1.0)
        return np.concatenate(logits)
