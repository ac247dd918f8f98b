"""TinyBERT's distillation losses (Jiao et al. 2019; algorithms.md section 8), shared by every stage that distills
layer by layer: the two-stage fine-tune of pruned models (seed 004) and TinyBERT's task distillation (seed 001).

    embedding   MSE(E_S W_e, E_T)                     E = hidden_states[0], the embedding layer's output
    hidden      MSE(H_S^m W_h, H_T^g(m))              per student layer m, summed over layers
    attention   MSE(A_S^m, A_T^g(m))                  pre-softmax scores Q K^T / sqrt(d), summed over layers
    prediction  -softmax(z_T / t) . log_softmax(z_S / t), mean over the batch (MSE to the teacher for regression)

W_e, W_h: learnable Linear(hidden_S, hidden_T) when the widths differ (TinyBERT shares one); identity when they are
equal (a pruned model keeps the teacher's width). Padding is masked out of every MSE: TinyBERT zeroes padded keys'
scores in both models and averages over all entries; we average over the valid (query, key) pairs and tokens only,
so that the loss does not depend on how much a batch is padded.

Student heads are paired with teacher heads by their original ids when the student is a pruned copy of the teacher
(the record in config.compression), else by position (the same number of heads per mapped layer).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from workflow_scripts.core.surgery import encoder_layers, kept_head_ids

LAYER_MAPPINGS = ("uniform", "top", "bottom")


def layer_mapping(student_layers: int, teacher_layers: int, kind: str = "uniform") -> list[int]:
    """Teacher layer (1-based) of each student layer 1..M: uniform g(m) = m N / M (TinyBERT; N divisible by M),
    top g(m) = N - M + m, bottom g(m) = m."""
    if student_layers > teacher_layers:
        raise ValueError(f"a student of {student_layers} layers cannot map onto a teacher of {teacher_layers}")
    if kind == "uniform":
        if teacher_layers % student_layers:
            raise ValueError(f"uniform layer mapping needs the teacher's depth ({teacher_layers}) to be a multiple of "
                             f"the student's ({student_layers})")
        step = teacher_layers // student_layers
        return [m * step for m in range(1, student_layers + 1)]
    if kind == "top":
        return [teacher_layers - student_layers + m for m in range(1, student_layers + 1)]
    if kind == "bottom":
        return list(range(1, student_layers + 1))
    raise ValueError(f"unknown layer mapping {kind!r} (known: {', '.join(LAYER_MAPPINGS)})")


class AttentionScores:
    """Captures each layer's pre-softmax attention scores, (B, heads, T, T), from forward hooks on the query and key
    projections, whatever the attention kernel (sdpa never materializes them). Layers without heads give None.
    `with AttentionScores(model) as scores: model(...); scores.per_layer(attention_mask)`."""

    def __init__(self, model: nn.Module):
        self.layers = encoder_layers(model)
        self.outputs: dict[tuple[int, str], torch.Tensor] = {}
        self.handles = []
        for index, layer in enumerate(self.layers):
            self_attention = layer.attention.self
            if self_attention.num_attention_heads == 0:
                continue
            for name in ("query", "key"):
                self.handles.append(getattr(self_attention, name).register_forward_hook(self._keep(index, name)))

    def _keep(self, index: int, name: str):
        def hook(module, args, output):
            self.outputs[index, name] = output
        return hook

    def per_layer(self) -> list[torch.Tensor | None]:
        scores = []
        for index, layer in enumerate(self.layers):
            if (index, "query") not in self.outputs:
                scores.append(None)
                continue
            head_size = layer.attention.self.attention_head_size
            query = self.outputs[index, "query"].unflatten(-1, (-1, head_size)).transpose(1, 2)  # (B, n, T, d)
            key = self.outputs[index, "key"].unflatten(-1, (-1, head_size)).transpose(1, 2)  # (B, n, T, d)
            scores.append(query @ key.transpose(-1, -2) / math.sqrt(head_size))  # (B, n, T, T)
        return scores

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.outputs.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def head_pairs(student: nn.Module, teacher: nn.Module, student_layer: int, teacher_layer: int) -> tuple[list[int],
                                                                                                        list[int]]:
    """(student head positions, teacher head positions) compared by the attention loss for one pair of layers."""
    student_ids, teacher_ids = kept_head_ids(student, student_layer), kept_head_ids(teacher, teacher_layer)
    pruned_copy = student.config.num_attention_heads == teacher.config.num_attention_heads and (
        getattr(student.config, "compression", None) or getattr(teacher.config, "compression", None))
    if pruned_copy:
        common = [h for h in student_ids if h in set(teacher_ids)]
        return [student_ids.index(h) for h in common], [teacher_ids.index(h) for h in common]
    if len(student_ids) != len(teacher_ids):
        raise ValueError(f"attention loss: student layer {student_layer} has {len(student_ids)} heads, teacher layer "
                         f"{teacher_layer} has {len(teacher_ids)}: heads pair by position only when the counts match")
    return list(range(len(student_ids))), list(range(len(teacher_ids)))


def _pair_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    valid = attention_mask.bool()  # (B, T)
    return (valid[:, :, None] & valid[:, None, :])[:, None]  # (B, 1, T, T)


def attention_loss(student_scores: torch.Tensor, teacher_scores: torch.Tensor,
                   attention_mask: torch.Tensor) -> torch.Tensor:
    """MSE between (B, n, T, T) pre-softmax scores over the valid (query, key) pairs of every head."""
    mask = _pair_mask(attention_mask).to(student_scores.dtype)  # (B, 1, T, T)
    squared = (student_scores - teacher_scores) ** 2 * mask
    return squared.sum() / (mask.sum() * student_scores.shape[1]).clamp(min=1)


def hidden_loss(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """MSE between (B, T, H) states (the student's already projected to the teacher's width) over valid tokens."""
    mask = attention_mask.to(student_hidden.dtype)[..., None]  # (B, T, 1)
    squared = (student_hidden - teacher_hidden) ** 2 * mask
    return squared.sum() / (mask.sum() * student_hidden.shape[-1]).clamp(min=1)


def soft_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                       temperature: float = 1.0) -> torch.Tensor:
    """TinyBERT's prediction loss: mean over the batch of -softmax(z_T/t) . log_softmax(z_S/t) (no t^2 factor);
    MSE to the teacher's outputs when there is one output (regression)."""
    if student_logits.shape[-1] == 1:
        return F.mse_loss(student_logits, teacher_logits)
    targets = torch.softmax(teacher_logits / temperature, dim=-1)
    return -(targets * torch.log_softmax(student_logits / temperature, dim=-1)).sum(-1).mean()


class WidthProjection(nn.Module):
    """W_e / W_h: the student's states mapped to the teacher's width (identity when the widths are equal)."""

    def __init__(self, student_width: int, teacher_width: int):
        super().__init__()
        self.linear = nn.Linear(student_width, teacher_width) if student_width != teacher_width else None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden if self.linear is None else self.linear(hidden)
