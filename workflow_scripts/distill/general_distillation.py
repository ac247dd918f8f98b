"""TinyBERT's general distillation (Jiao et al. 2019, the first of its two stages): a student masked LM learns T's
intermediate layers on unlabelled text, with no prediction-layer loss.

    loss = embedding_weight * MSE(E_S W, E_T) + hidden_weight * sum_m MSE(H_S^m W, H_T^g(m))
           + attention_weight * sum_m MSE(A_S^m, A_T^g(m)) [+ mlm_weight * CE_MLM, ours, 0 by default]

with the losses, layer mapping and head pairing of losses.py (the same functions task distillation uses): W one
learnable Linear(hidden_S, hidden_T) shared by the embeddings and every layer (TinyBERT's fit_dense), A the
pre-softmax scores, a student head against the mean of its group of T's heads when it has fewer (losses.py).

It is objective `tinybert` of Bort's pretraining (bort/pretrain.py): the same corpus stream as `kd` and `mlm` (BERT's
masked sequences, as TinyBERT's pregenerated pretraining instances are), the same optimizer, schedule and steps. T
runs in every step: its hidden states and attention scores are not in the teacher_outputs cache (top-k logits only).
TinyBERT has no MLM term, so the student's MLM head (its transform; the decoder is tied to the word embeddings) is
not trained unless mlm_weight > 0, and its held-out MLM accuracy then says little.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from workflow_scripts.bort.distillation import mlm_head
from workflow_scripts.distill.losses import (AttentionScores, IntermediateLossWeights, WidthProjection, head_pairs,
                                             intermediate_losses, layer_mapping)

LOSS_NAMES = ("embedding", "hidden", "attention", "mlm")


@dataclass
class GeneralDistillationLosses(IntermediateLossWeights):
    """bort.pretrain.tinybert: the layer mapping and the weights of TinyBERT's intermediate losses."""
    mlm_weight: float = field(metadata={"help": "weight of an MLM loss on the masked positions (TinyBERT: 0)"})

    def __post_init__(self):
        if not (self.embedding_weight or self.hidden_weight or self.attention_weight or self.mlm_weight):
            raise ValueError("general distillation with every loss weight at 0 would not train")


class TransformerDistillation(nn.Module):
    """The student masked LM and the projection W trained with it; forward(input_ids, attention_mask, labels) ->
    (loss, {term: value}). T is held outside the module tree (frozen, eval mode), so that the optimizer, the
    gradient clip and a checkpoint's trainer state see the student and W only."""

    def __init__(self, student: nn.Module, teacher: nn.Module, losses: GeneralDistillationLosses):
        super().__init__()
        self.student = student
        self.projection = WidthProjection(student.config.hidden_size, teacher.config.hidden_size)
        self._teacher = [teacher.eval().requires_grad_(False)]
        self.losses = losses
        self.mapping = layer_mapping(student.config.num_hidden_layers, teacher.config.num_hidden_layers,
                                     losses.layer_mapping)
        self.heads = [head_pairs(student, teacher, m, g - 1) if losses.attention_weight else ([], [])
                      for m, g in enumerate(self.mapping)]
        self.student_scores = AttentionScores(student)
        self.teacher_scores = AttentionScores(teacher)

    @property
    def teacher(self) -> nn.Module:
        return self._teacher[0]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor):
        with torch.no_grad():
            teacher_hidden = self.teacher.base_model(input_ids=input_ids, attention_mask=attention_mask,
                                                     output_hidden_states=True).hidden_states  # (L_T + 1) x (B, T, H_T)
            teacher_scores = self.teacher_scores.per_layer()  # L_T x (B, n_T, T, T)
        student_hidden = self.student.base_model(input_ids=input_ids, attention_mask=attention_mask,
                                                 output_hidden_states=True).hidden_states  # (L_S + 1) x (B, T, H_S)
        embedding, hidden, attention = intermediate_losses(
            student_hidden, self.student_scores.per_layer(), teacher_hidden, teacher_scores, self.projection,
            self.mapping, self.heads, attention_mask)
        terms = {"embedding": embedding, "hidden": hidden, "attention": attention}
        loss = (self.losses.embedding_weight * embedding + self.losses.hidden_weight * hidden
                + self.losses.attention_weight * attention)
        if self.losses.mlm_weight:
            masked = labels != -100
            logits = mlm_head(self.student)(student_hidden[-1][masked])  # (M, V)
            terms["mlm"] = F.cross_entropy(logits.float(), labels[masked])
            loss = loss + self.losses.mlm_weight * terms["mlm"]
        return loss, {name: float(value.detach()) for name, value in terms.items()}

    def close(self) -> None:
        self.student_scores.close()
        self.teacher_scores.close()
