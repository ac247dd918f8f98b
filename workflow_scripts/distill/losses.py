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
(the record in config.compression), else by position when the counts are equal. TinyBERT requires equal counts; a
student with fewer heads (a Bort candidate: 4 or 6 against the teacher's 12) is compared head by head with the mean
of a group of the teacher's: with k = n_T / n_S (an integer, else an error), student head h against the mean of
teacher heads h k .. h k + k - 1 (consecutive groups; head order carries no meaning, so any fixed grouping is as
good). The mean is taken over pre-softmax scores: softmax of the mean is the normalized geometric mean of the
group's attention distributions, a distribution one head can represent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from workflow_scripts.core.surgery import encoder_layers, kept_head_ids

LAYER_MAPPINGS = ("uniform", "top", "bottom")


@dataclass
class IntermediateLossWeights:
    """What TinyBERT's intermediate-layer losses take, in task distillation (task_distillation.DistillLosses) and in
    general distillation (general_distillation.GeneralDistillationLosses): which layers pair up, each MSE's weight."""
    layer_mapping: str = field(metadata={"choices": list(LAYER_MAPPINGS), "help": "student layer m <- teacher g(m)"})
    embedding_weight: float = field(metadata={"help": "weight of the embedding-layer MSE"})
    hidden_weight: float = field(metadata={"help": "weight of the hidden-state MSE (summed over layers)"})
    attention_weight: float = field(metadata={"help": "weight of the attention-score MSE (summed over layers)"})


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
    if not student_ids or len(teacher_ids) % len(student_ids):
        raise ValueError(f"attention loss: student layer {student_layer} has {len(student_ids)} heads, teacher layer "
                         f"{teacher_layer} has {len(teacher_ids)}: heads pair by position when the counts match, or "
                         "each student head with the mean of a group of teacher heads when the teacher's count is a "
                         "multiple of the student's; set attention_weight to 0 to distill without attention")
    return list(range(len(student_ids))), list(range(len(teacher_ids)))


def grouped_teacher_scores(teacher_scores: torch.Tensor, student_heads: int) -> torch.Tensor:
    """(B, n_T, T, T) teacher scores -> (B, n_S, T, T): the mean over consecutive groups of k = n_T / n_S heads
    (the identity when the counts are equal)."""
    teacher_heads = teacher_scores.shape[1]
    if teacher_heads == student_heads:
        return teacher_scores
    if teacher_heads % student_heads:
        raise ValueError(f"{teacher_heads} teacher heads do not split into {student_heads} equal groups")
    return teacher_scores.unflatten(1, (student_heads, teacher_heads // student_heads)).mean(2)  # (B, n_S, T, T)


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


def intermediate_losses(student_hidden, student_scores, teacher_hidden, teacher_scores, projection: nn.Module,
                        mapping: list[int], heads: list[tuple[list[int], list[int]]],
                        attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(embedding, hidden, attention) losses of TinyBERT's intermediate layers, shared by task distillation and
    general distillation.

    student_hidden, teacher_hidden: hidden states, embeddings first ((B, T, H_S) and (B, T, H_T) each);
    student_scores, teacher_scores: pre-softmax scores per layer ((B, n, T, T), None for a layer without heads);
    mapping: the teacher layer g(m) (1-based) of each student layer; heads: head_pairs of each mapped pair.
    Hidden and attention losses are summed over the mapped layers."""
    embedding = hidden_loss(projection(student_hidden[0]), teacher_hidden[0], attention_mask)
    hidden = embedding.new_zeros(())
    attention = embedding.new_zeros(())
    for m, g in enumerate(mapping):
        hidden = hidden + hidden_loss(projection(student_hidden[m + 1]), teacher_hidden[g], attention_mask)
        student_heads, teacher_heads = heads[m]
        if student_heads:
            target = grouped_teacher_scores(teacher_scores[g - 1][:, teacher_heads], len(student_heads))
            attention = attention + attention_loss(student_scores[m][:, student_heads], target, attention_mask)
    return embedding, hidden, attention


class WidthProjection(nn.Module):
    """W_e / W_h: the student's states mapped to the teacher's width (identity when the widths are equal)."""

    def __init__(self, student_width: int, teacher_width: int):
        super().__init__()
        self.linear = nn.Linear(student_width, teacher_width) if student_width != teacher_width else None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden if self.linear is None else self.linear(hidden)
