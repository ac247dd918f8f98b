"""Bort's pretraining losses, on masked positions only, and what the search and the pretraining share: the
student built from a candidate, held-out masked-LM scores, and the Noam learning-rate schedule. The training loop
itself is core.training.run_training."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from workflow_scripts.bort.fptas import Candidate


def build_student(teacher_config, candidate: Candidate, dropout: float, seed: int):
    """A randomly initialized masked-LM of the teacher's family and vocabulary with the candidate's shape."""
    from transformers import AutoModelForMaskedLM

    config = teacher_config.__class__.from_dict({
        **teacher_config.to_dict(), "num_hidden_layers": candidate.depth, "num_attention_heads": candidate.heads,
        "hidden_size": candidate.hidden, "intermediate_size": candidate.intermediate,
        "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout,
        "architectures": None, "tie_word_embeddings": True})
    torch.manual_seed(seed)
    return AutoModelForMaskedLM.from_config(config)


def mlm_head(model) -> torch.nn.Module:
    """The module mapping hidden states to vocabulary logits (BERT: cls, RoBERTa: lm_head)."""
    for name in ("cls", "lm_head"):
        if hasattr(model, name):
            return getattr(model, name)
    raise ValueError(f"{type(model).__name__} has no masked-LM head (cls or lm_head)")


def masked_logits(model, batch: dict) -> torch.Tensor:
    """Vocabulary logits (M, V) at the M masked positions only: the vocabulary projection of every position would
    cost more than a small candidate's whole encoder."""
    hidden = model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[0]  # (B, L, H)
    return mlm_head(model)(hidden[batch["labels"] != -100])  # (M, V)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, targets: torch.Tensor,
                      mlm_weight: float, teacher_weight: float, temperature: float,
                      normalizer: float | None = None) -> tuple[torch.Tensor, dict]:
    """Bort's pretraining loss on masked positions (logits (M, V), targets (M,)):

        mlm_weight * CE(targets, z_s) + teacher_weight * tau^2 * KL(softmax(z_t / tau) || softmax(z_s / tau))

    both summed over positions and divided by `normalizer` (default M; DDP passes the global count of masked
    positions over the world size, so that averaging gradients over ranks gives the single-process mean). KL and
    the cross-entropy against the teacher differ by the teacher's entropy, a constant: the gradients are the same.
    """
    count = normalizer if normalizer is not None else student_logits.shape[0]
    # The vocabulary-wide elementwise passes cost more than a small student's encoder: each is done once.
    student_log_probs = F.log_softmax(_scaled(student_logits.float(), temperature), dim=-1)  # (M, V)
    kl = student_logits.new_zeros((), dtype=torch.float32)
    if teacher_logits is not None:  # None: MLM only
        with torch.no_grad():
            teacher_log_probs = F.log_softmax(_scaled(teacher_logits.float(), temperature), dim=-1)
            teacher_probs = teacher_log_probs.exp()
            teacher_entropy = -(teacher_probs * teacher_log_probs).sum()
        # KL(T || S) = cross-entropy(T, S) - H(T); H(T) carries no gradient.
        kl = (-(teacher_probs * student_log_probs).sum() - teacher_entropy) / count * temperature ** 2
    mlm_log_probs = student_log_probs if temperature == 1 else F.log_softmax(student_logits.float(), dim=-1)
    mlm = F.nll_loss(mlm_log_probs, targets, reduction="sum") / count
    total = mlm_weight * mlm + teacher_weight * kl
    return total, {"mlm": mlm.item(), "kl": kl.item()}


def _scaled(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return logits if temperature == 1 else logits / temperature


def soft_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy -sum p_T log p_S over positions: the surrogate error's numerator."""
    return -(F.softmax(teacher_logits.float(), -1) * F.log_softmax(student_logits.float(), -1)).sum()


@torch.no_grad()
def heldout_scores(model, batches: list[dict], teacher_logits: list[torch.Tensor] | None = None,
                   device: str = "cpu") -> dict:
    """Masked-LM accuracy and loss on fixed held-out batches, and, given the teacher's logits on the same
    positions, the surrogate error: the cross-entropy between the teacher's and the model's distributions."""
    was_training = model.training
    model.eval()
    correct = total = 0
    mlm_sum = surrogate_sum = 0.0
    for index, batch in enumerate(batches):
        batch = {name: tensor.to(device) for name, tensor in batch.items()}
        logits = masked_logits(model, batch)
        targets = batch["labels"][batch["labels"] != -100]
        correct += (logits.argmax(-1) == targets).sum().item()
        total += targets.numel()
        mlm_sum += F.cross_entropy(logits.float(), targets, reduction="sum").item()
        if teacher_logits is not None:
            surrogate_sum += soft_cross_entropy(logits, teacher_logits[index].to(device)).item()
    model.train(was_training)
    scores = {"mlm_accuracy": correct / total, "mlm_loss": mlm_sum / total, "masked_positions": total}
    if teacher_logits is not None:
        scores["surrogate_error"] = surrogate_sum / total
    return scores


@torch.no_grad()
def teacher_masked_logits(teacher, batches: list[dict], device: str = "cpu") -> list[torch.Tensor]:
    teacher.eval()
    return [masked_logits(teacher, {k: v.to(device) for k, v in batch.items()}).cpu() for batch in batches]


# ---------------------------------------------------------------------------------------------------------------
# learning-rate schedules of KD pretraining


def noam_factor(step: int, warmup_steps: int) -> float:
    """The paper's "Noam" schedule (Vaswani et al.): linear warm-up, then decay as 1/sqrt(step), normalized to
    peak at 1 at the end of the warm-up."""
    step = step + 1
    warmup_steps = max(1, warmup_steps)
    return min(step / warmup_steps, math.sqrt(warmup_steps / step))
