"""Structured baselines at the search's FLOPs (seed 004's comparison): keep as many heads and FFN units as the
searched architecture keeps, chosen

    random      uniformly at random over all layers (seeded)
    importance  by gradient importance, Michel et al. 2019: E_x |dL/dgate| of every head and FFN unit, each
                layer's scores normalized to unit L2 norm (Michel's per-layer normalization), ranked over all layers

Every head costs the same FLOPs in every layer, and so does every FFN unit (core/counters.py), so the same counts
give exactly the search's FLOPs.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from workflow_scripts.core.inference import make_loader
from workflow_scripts.core.surgery import attach_ffn_gates, attach_head_gates, prune_ffn_neurons, prune_heads

ARCHITECTURE_BASELINES = ("random", "importance")


def kept_counts(heads_kept: list[list[int]], ffn_kept: list[list[int]]) -> tuple[int, int]:
    return sum(map(len, heads_kept)), sum(map(len, ffn_kept))


def _top_units(scores_by_layer: list[np.ndarray], ids_by_layer: list[list[int]], count: int) -> list[list[int]]:
    """Original ids of the `count` highest-scoring units over all layers (ties: lower layer, lower id first)."""
    ranked = sorted(((-float(score), layer, unit_id) for layer, (scores, ids) in enumerate(zip(scores_by_layer,
                                                                                             ids_by_layer))
                     for score, unit_id in zip(scores, ids)))
    kept = [[] for _ in ids_by_layer]
    for _, layer, unit_id in ranked[:count]:
        kept[layer].append(unit_id)
    return [sorted(ids) for ids in kept]


def random_architecture(ids_heads: list[list[int]], ids_ffn: list[list[int]], head_count: int, ffn_count: int,
                        seed: int) -> tuple[list[list[int]], list[list[int]]]:
    rng = np.random.default_rng(seed)
    heads = _top_units([rng.random(len(ids)) for ids in ids_heads], ids_heads, head_count)
    ffn = _top_units([rng.random(len(ids)) for ids in ids_ffn], ids_ffn, ffn_count)
    return heads, ffn


def gate_importance(model: nn.Module, dataset, collate_fn, batch_size: int, device: str = "cpu"
                    ) -> tuple[list[np.ndarray], list[np.ndarray], list[list[int]], list[list[int]]]:
    """Summed |dL/dgate| over the dataset's batches (the task's cross-entropy, dropout off), per layer, for heads
    and FFN units; with the original ids of each."""
    model.to(device).eval()
    head_gates, ffn_gates = attach_head_gates(model), attach_ffn_gates(model)
    head_scores = [torch.zeros_like(g, dtype=torch.float64) for g in head_gates.gates]
    ffn_scores = [torch.zeros_like(g, dtype=torch.float64) for g in ffn_gates.gates]
    try:
        for batch in make_loader(dataset, batch_size, collate_fn, shuffle=False):
            batch = {name: tensor.to(device) for name, tensor in batch.items()}
            model(**batch).loss.backward()
            for scores, gates in ((head_scores, head_gates), (ffn_scores, ffn_gates)):
                for total, gate in zip(scores, gates.gates):
                    if gate.grad is not None:
                        total += gate.grad.abs().double()
                    gate.grad = None
        model.zero_grad(set_to_none=True)
    finally:
        head_gates.remove()
        ffn_gates.remove()
    return ([s.cpu().numpy() for s in head_scores], [s.cpu().numpy() for s in ffn_scores],
            head_gates.original_ids, ffn_gates.original_ids)


def normalize_per_layer(scores_by_layer: list[np.ndarray]) -> list[np.ndarray]:
    """Each layer's scores divided by their L2 norm (Michel et al.); empty or all-zero layers stay as they are."""
    return [s / np.linalg.norm(s) if s.size and np.linalg.norm(s) > 0 else s for s in scores_by_layer]


def importance_architecture(head_scores, ffn_scores, ids_heads, ids_ffn, head_count: int, ffn_count: int):
    return (_top_units(normalize_per_layer(head_scores), ids_heads, head_count),
            _top_units(normalize_per_layer(ffn_scores), ids_ffn, ffn_count))


def prune_to(model: nn.Module, ids_heads: list[list[int]], ids_ffn: list[list[int]], heads_kept: list[list[int]],
             ffn_kept: list[list[int]]) -> None:
    """Physically prune every head and FFN unit not kept."""
    prune_heads(model, {l: sorted(set(ids) - set(heads_kept[l])) for l, ids in enumerate(ids_heads)})
    prune_ffn_neurons(model, {l: sorted(set(ids) - set(ffn_kept[l])) for l, ids in enumerate(ids_ffn)})
