"""Head scores of AUBER's competitors (algorithms.md section 4); every method prunes its lowest-scored heads.

- random:     a seeded uniform draw.
- confidence: the mean, over the non-padding tokens of the scoring rows, of the head's largest attention weight
              in that token's row (Voita et al.); read from attention probabilities, so the pass runs with the
              eager kernel. [CLS] and [SEP] count as tokens, padding never does.
- michel:     I_h = E_x |dL(x)/d xi_h|, xi_h a gate on head h's output at 1 (Michel et al.). The gate is one per
              example, so the gradient of the summed loss is each example's own; divided by the number of examples,
              then each layer is divided by its L2 norm (the authors' --normalize_pruning_by_layer, exponent 2),
              which matters only when heads of several layers are ranked together.
- voita:      hard-concrete gates (l = -0.1, r = 1.1, temperature beta) on the heads, trained on the task loss plus
              lambda * L0 penalty with the model's weights frozen (every method gets the same per-layer fine-tune
              afterwards, so only the ranking is used); score = log alpha, the most open heads are kept.

`score_heads` returns {layer: scores over the heads currently in the layer (storage positions)}.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from workflow_scripts.core.surgery import encoder_layers, kept_head_ids
from workflow_scripts.core.inference import make_loader
from workflow_scripts.core.training import run_training

COMPETITORS = ("random", "confidence", "michel", "voita")
LAYER_NORM_EPSILON = 1e-20  # the authors' code adds it to the per-layer norm


def _heads_in(model, layer_index: int) -> int:
    return encoder_layers(model)[layer_index].attention.self.num_attention_heads


def _batches(dataset, batch_size: int, collate_fn, device: str):
    for batch in make_loader(dataset, batch_size, collate_fn, shuffle=False):
        yield {name: tensor.to(device) for name, tensor in batch.items()}


def random_scores(model, layers: list[int], seed: int) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {layer: rng.random(_heads_in(model, layer)) for layer in layers}


@torch.no_grad()
def confidence_scores(model, layers: list[int], dataset, batch_size: int, collate_fn,
                      device: str = "cpu") -> dict[int, np.ndarray]:
    """Mean over non-padding query tokens of max_k attention[h, q, k]."""
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")  # sdpa never materializes the probabilities
    try:
        model.to(device).eval()
        sums = {layer: torch.zeros(_heads_in(model, layer), dtype=torch.float64) for layer in layers}
        tokens = 0
        for batch in _batches(dataset, batch_size, collate_fn, device):
            batch.pop("labels", None)
            attentions = model(**batch, output_attentions=True).attentions  # per layer: (B, H, T, T)
            query_mask = batch["attention_mask"].to(torch.float64)           # (B, T), 0 on padding
            tokens += int(query_mask.sum())
            for layer in layers:
                largest = attentions[layer].max(dim=-1).values.to(torch.float64)  # (B, H, T)
                sums[layer] += (largest * query_mask[:, None, :]).sum(dim=(0, 2)).cpu()
        return {layer: (sums[layer] / tokens).numpy() for layer in layers}
    finally:
        model.set_attn_implementation(previous)


class _PerExampleHeadGates:
    """A gate per (example, head) on the head outputs of some layers, multiplied in before attention.output.dense
    (as surgery's gates are), so that d(sum of losses)/d gate[b, h] is example b's own gradient."""

    def __init__(self, model, layers: list[int]):
        self.layers = layers
        self.gates: dict[int, torch.Tensor] = {}
        self._handles = []
        for layer in layers:
            attention = encoder_layers(model)[layer].attention
            self._handles.append(attention.output.dense.register_forward_pre_hook(
                self._hook(layer, attention.self.attention_head_size)))

    def _hook(self, layer: int, head_size: int):
        def scale(module, args):
            x = args[0]                                              # (B, T, H * head_size)
            gate = torch.ones(x.shape[0], x.shape[-1] // head_size, dtype=x.dtype, device=x.device,
                              requires_grad=True)
            self.gates[layer] = gate
            return (x.unflatten(-1, (gate.shape[1], head_size)) * gate[:, None, :, None]).flatten(-2), *args[1:]
        return scale

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def per_example_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The task's loss per example: cross-entropy, or squared error for a regression head (one output)."""
    if logits.shape[-1] == 1:
        return (logits.squeeze(-1) - labels.to(logits.dtype)) ** 2
    return F.cross_entropy(logits, labels, reduction="none")


def michel_scores(model, layers: list[int], dataset, batch_size: int, collate_fn, device: str = "cpu",
                  normalize_by_layer: bool = True) -> dict[int, np.ndarray]:
    model.to(device).eval()
    totals = {layer: torch.zeros(_heads_in(model, layer), dtype=torch.float64) for layer in layers}
    examples = 0
    gates = _PerExampleHeadGates(model, [layer for layer in layers if _heads_in(model, layer) > 0])
    try:
        for batch in _batches(dataset, batch_size, collate_fn, device):
            labels = batch.pop("labels")
            per_example_loss(model(**batch).logits, labels).sum().backward()
            for layer in gates.layers:
                totals[layer] += gates.gates[layer].grad.abs().sum(dim=0).to(torch.float64).cpu()
            examples += len(labels)
            model.zero_grad(set_to_none=True)
    finally:
        gates.remove()
    scores = {}
    for layer in layers:
        importance = totals[layer] / examples
        if normalize_by_layer:
            importance = importance / (importance.pow(2).sum().sqrt() + LAYER_NORM_EPSILON)
        scores[layer] = importance.numpy()
    return scores


# ---- Voita et al.: hard-concrete gates with an L0 penalty -----------------------------------------------------

@dataclass
class ConcreteGateConfig:
    """Voita's hard-concrete gates: competitors.voita.* in params.yaml; the stretch interval and eps are constants
    of the method (Louizos et al. 2018)."""
    penalty: float                 # lambda of the L0 penalty
    temperature: float             # beta
    log_alpha_init: float          # initial log alpha of every gate
    learning_rate: float           # Adam, on log alpha only
    epochs: int                    # passes over mini-train
    batch_size: int
    stretch_low: float = -0.1      # l
    stretch_high: float = 1.1      # r
    eps: float = 1e-6


class HardConcreteGates(torch.nn.Module):
    """One input-independent gate per head (Louizos et al. 2018, as Voita et al. use it)."""

    def __init__(self, num_heads: int, config: ConcreteGateConfig):
        super().__init__()
        self.config = config
        self.log_alpha = torch.nn.Parameter(torch.full((num_heads,), float(config.log_alpha_init)))

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Training: s = sigmoid((log u - log(1-u) + log alpha) / beta), stretched to (l, r) and clipped to [0, 1]."""
        c = self.config
        u = torch.rand(self.log_alpha.shape, generator=generator).clamp(c.eps, 1 - c.eps).to(self.log_alpha)
        s = torch.sigmoid((u.log() - (1 - u).log() + self.log_alpha) / c.temperature)
        return (s * (c.stretch_high - c.stretch_low) + c.stretch_low).clamp(0.0, 1.0)

    def deterministic(self) -> torch.Tensor:
        """Evaluation: sigmoid(log alpha), stretched and clipped (no noise, no temperature)."""
        c = self.config
        return (torch.sigmoid(self.log_alpha) * (c.stretch_high - c.stretch_low) + c.stretch_low).clamp(0.0, 1.0)

    def open_probability(self) -> torch.Tensor:
        """P(gate != 0) = sigmoid(log alpha - beta * log(-l / r)), clipped to [eps, 1 - eps]: the L0 relaxation."""
        c = self.config
        shift = c.temperature * math.log(-c.stretch_low / c.stretch_high)
        return torch.sigmoid(self.log_alpha - shift).clamp(c.eps, 1 - c.eps)


def voita_scores(model, layers: list[int], dataset, collate_fn, device: str, config: ConcreteGateConfig,
                 seed: int) -> tuple[dict[int, np.ndarray], dict]:
    """log alpha of every head after training the gates of `layers` on the task loss + lambda * L0 (the per-layer
    sums averaged over the gated layers, as the authors' code does); the model's own weights stay frozen.
    Adam on the gates, no clipping, no schedule; epoch e shuffles with seed + (steps before it)."""
    layers = [layer for layer in layers if _heads_in(model, layer) > 0]
    model.to(device).eval()
    frozen = [p for p in model.parameters() if p.requires_grad]
    for parameter in frozen:
        parameter.requires_grad_(False)
    gates = torch.nn.ModuleDict({str(layer): HardConcreteGates(_heads_in(model, layer), config)
                                 for layer in layers}).to(device)
    generator = torch.Generator().manual_seed(seed)
    current: dict[int, torch.Tensor] = {}
    handles = []
    for layer in layers:
        attention = encoder_layers(model)[layer].attention
        head_size = attention.self.attention_head_size

        def scale(module, args, layer=layer, head_size=head_size):
            x = args[0]
            return (x.unflatten(-1, (-1, head_size)) * current[layer][:, None].to(x.dtype)).flatten(-2), *args[1:]
        handles.append(attention.output.dense.register_forward_pre_hook(scale))
    optimizer = torch.optim.Adam([gate.log_alpha for gate in gates.values()], lr=config.learning_rate)
    steps_per_epoch = math.ceil(len(dataset) / config.batch_size)

    def shuffled_epochs():
        for epoch in range(config.epochs):
            yield from make_loader(dataset, config.batch_size, collate_fn, shuffle=True,
                                   seed=seed + epoch * steps_per_epoch)

    def gated_loss(gates, batch: dict):
        labels = batch.pop("labels")
        for layer in layers:
            current[layer] = gates[str(layer)].sample(generator)
        task_loss = per_example_loss(model(**batch).logits, labels).mean()
        penalty = torch.stack([gate.open_probability().sum() for gate in gates.values()]).mean()
        return task_loss + config.penalty * penalty, {"task_loss": round(task_loss.item(), 5),
                                                      "l0": round(penalty.item(), 4)}

    try:
        history = run_training(gates, shuffled_epochs(), gated_loss, optimizer,
                               total_steps=config.epochs * steps_per_epoch, device=device).step_details
    finally:
        for handle in handles:
            handle.remove()
        for parameter in frozen:
            parameter.requires_grad_(True)
    scores = {layer: gates[str(layer)].log_alpha.detach().cpu().double().numpy() for layer in layers}
    closed = {layer: int((gates[str(layer)].deterministic() == 0).sum()) for layer in layers}
    return scores, {"closed_at_evaluation": closed, "steps": len(history),
                    "first_step": history[0] if history else None, "last_step": history[-1] if history else None}


def score_heads(method: str, model, layers: list[int], scoring_rows, training_rows, batch_size: int, collate_fn,
                device: str, seed: int, voita: ConcreteGateConfig | None = None) -> tuple[dict[int, np.ndarray], dict]:
    """Scores of the heads of `layers` (low = pruned first) and what the method logged."""
    if method == "random":
        return random_scores(model, layers, seed), {}
    if method == "confidence":
        return confidence_scores(model, layers, scoring_rows, batch_size, collate_fn, device), {}
    if method == "michel":
        return michel_scores(model, layers, scoring_rows, batch_size, collate_fn, device), {}
    if method == "voita":
        return voita_scores(model, layers, training_rows, collate_fn, device, voita, seed)
    raise ValueError(f"unknown head-scoring method {method!r} (known: {', '.join(COMPETITORS)})")


def lowest_positions(scores: np.ndarray, count: int) -> list[int]:
    """Positions of the `count` lowest scores (ties: lower position first)."""
    if not 0 <= count <= len(scores):
        raise ValueError(f"cannot prune {count} of {len(scores)} heads")
    return sorted(np.argsort(scores, kind="stable")[:count].tolist())


def global_plan(model, scores: dict[int, np.ndarray], total: int) -> dict[int, list[int]]:
    """One ranking over every head of every layer: the `total` lowest, never a layer's last head. Returns
    {layer: original head ids}."""
    candidates = sorted((float(value), layer, position) for layer, values in scores.items()
                        for position, value in enumerate(values))
    heads_left = {layer: len(values) for layer, values in scores.items()}
    chosen: dict[int, list[int]] = {layer: [] for layer in scores}
    for _, layer, position in candidates:
        if sum(len(ids) for ids in chosen.values()) == total:
            break
        if heads_left[layer] > 1:
            chosen[layer].append(kept_head_ids(model, layer)[position])
            heads_left[layer] -= 1
    placed = sum(len(ids) for ids in chosen.values())
    if placed < total:
        raise ValueError(f"cannot prune {total} heads while keeping one per layer (at most {placed})")
    return {layer: sorted(ids) for layer, ids in chosen.items()}
