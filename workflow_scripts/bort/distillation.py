"""Bort's pretraining losses, on masked positions only, and what the search and the pretraining share: the
student built from a candidate, held-out masked-LM scores, and the Noam learning-rate schedule. The training loop
itself is core.training.run_training. With a sentence objective (sop or nsp; data.corpus.sentence_pairs) the
student also has a binary head on [CLS] (sentence_classifier), and held-out pairs are scored by
heldout_sentence_scores."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from workflow_scripts.bort.fptas import Candidate
from workflow_scripts.core.albert import AlbertOptions, apply_albert


def build_student(teacher_config, candidate: Candidate, dropout: float, seed: int, sentence_head: bool = False):
    """A randomly initialized masked-LM of the teacher's family and vocabulary with the candidate's shape and its
    ALBERT options (factorized embeddings, cross-layer sharing: core/albert.py, applied after construction).

    sentence_head: the family's pretraining model instead (BERT: BertForPreTraining, whose pooler and
    `cls.seq_relationship` classify [CLS] into 2 classes; ALBERT: AlbertForPreTraining's sop_classifier), for the
    sentence objectives. Its folder loads as a masked LM (the head's tensors are left out) and as a sequence
    classifier (the pooler is reused, the classifier is new) as the plain student's does.
    """
    from transformers import AutoModelForMaskedLM, AutoModelForPreTraining

    config = teacher_config.__class__.from_dict({
        **teacher_config.to_dict(), "num_hidden_layers": candidate.depth, "num_attention_heads": candidate.heads,
        "hidden_size": candidate.hidden, "intermediate_size": candidate.intermediate,
        "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout,
        "architectures": None, "tie_word_embeddings": True})
    if sentence_head and getattr(config, "type_vocab_size", 0) < 2:
        raise ValueError(f"a sentence objective needs segment (token type) embeddings for A and B; T's config has "
                         f"type_vocab_size {getattr(config, 'type_vocab_size', None)} (RoBERTa has 1): use a "
                         f"BERT-family T or bort.pretrain.sentence_objective none")
    torch.manual_seed(seed)
    if not sentence_head:
        return apply_albert(AutoModelForMaskedLM.from_config(config), AlbertOptions(**candidate.albert_options))
    model = apply_albert(AutoModelForPreTraining.from_config(config), AlbertOptions(**candidate.albert_options))
    sentence_classifier(model)  # raises when the family's pretraining model has no sentence head
    return model


def sentence_classifier(model) -> torch.nn.Module:
    """The module mapping the pooled [CLS] state (B, H) to the two sentence-pair logits (B, 2)."""
    head = getattr(model, "cls", None)
    if head is not None and hasattr(head, "seq_relationship"):  # BertForPreTraining
        return head.seq_relationship
    if hasattr(model, "sop_classifier"):  # AlbertForPreTraining (dropout, then the linear layer)
        return model.sop_classifier
    raise ValueError(f"{type(model).__name__} has no sentence-pair head (BERT's cls.seq_relationship or ALBERT's "
                     f"sop_classifier); the sentence objectives need a BERT or ALBERT family student")


def mlm_head(model) -> torch.nn.Module:
    """The module mapping hidden states to vocabulary logits (BERT: cls, RoBERTa: lm_head)."""
    for name in ("cls", "lm_head"):
        if hasattr(model, name):
            head = getattr(model, name)
            # BertForPreTraining's cls also holds the sentence head; its masked-LM part is `predictions`
            return head.predictions if hasattr(head, "seq_relationship") else head
    raise ValueError(f"{type(model).__name__} has no masked-LM head (cls or lm_head)")


def _encoder_inputs(batch: dict) -> dict:
    """What the encoder reads of a batch: token_type_ids only where the batch has them (sentence pairs), so that a
    plain batch runs exactly as before."""
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if "token_type_ids" in batch:
        inputs["token_type_ids"] = batch["token_type_ids"]
    return inputs


def masked_logits(model, batch: dict) -> torch.Tensor:
    """Vocabulary logits (M, V) at the M masked positions only: the vocabulary projection of every position would
    cost more than a small candidate's whole encoder."""
    hidden = model.base_model(**_encoder_inputs(batch))[0]  # (B, L, H)
    return mlm_head(model)(hidden[batch["labels"] != -100])  # (M, V)


def pretraining_logits(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(vocabulary logits at the masked positions (M, V), sentence-pair logits (B, 2)) of a sentence-pair batch,
    from one encoder pass: the pair logits come from the pooled [CLS] state (the pooler, then the sentence head)."""
    outputs = model.base_model(**_encoder_inputs(batch))
    hidden, pooled = outputs[0], outputs[1]  # (B, L, H), (B, H)
    return mlm_head(model)(hidden[batch["labels"] != -100]), sentence_classifier(model)(pooled)


def sentence_loss(sentence_logits: torch.Tensor, sentence_labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the pair logits (B, 2) against labels (B,) (0 in order, 1 negative). Under DDP every
    rank holds an equal share of the batch, so the mean of the ranks' means is the single-process mean."""
    return F.cross_entropy(sentence_logits.float(), sentence_labels)


@dataclass
class TeacherTopK:
    """T's output at M masked positions, as the teacher_outputs stage stores it: the ids and raw logits of its k
    largest logits (M, k), and at `temperature` the log-sum-exp of all logits / tau and of the others (the tail)
    / tau, (M,) each. The tail is one bucket of known mass: exp(tail_logsumexp - logsumexp)."""
    ids: torch.Tensor
    logits: torch.Tensor
    logsumexp: torch.Tensor
    tail_logsumexp: torch.Tensor
    temperature: float


Teacher = torch.Tensor | TeacherTopK  # full logits (M, V), T run online, or its cached top-k


def teacher_cross_entropy(student_log_probs: torch.Tensor, teacher: Teacher,
                          temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross-entropy of the student from T, T's entropy), both summed over positions, at `temperature`
    (student_log_probs: log-softmax of the student's logits / tau, (M, V)).

    With full logits these are exact. With T's top k they are taken over k + 1 buckets: T's k most likely tokens
    and the tail, whose mass is exact for both distributions (T's from the stored tail log-sum-exp, the student's
    from its own logits outside those k). The bucketed KL never exceeds the full one and equals it when k = V.
    """
    if isinstance(teacher, torch.Tensor):
        with torch.no_grad():
            teacher_log_probs = F.log_softmax(_scaled(teacher.float(), temperature), dim=-1)
            teacher_probs = teacher_log_probs.exp()
        return -(teacher_probs * student_log_probs).sum(), -(teacher_probs * teacher_log_probs).sum()
    if not math.isclose(teacher.temperature, temperature):
        raise ValueError(f"T's cached outputs are at temperature {teacher.temperature}, the loss asks {temperature}")
    ids = teacher.ids.long()
    teacher_log_probs = _scaled(teacher.logits.float(), temperature) - teacher.logsumexp[:, None]  # (M, k)
    teacher_probs = teacher_log_probs.exp()
    cross_entropy = -(teacher_probs * student_log_probs.gather(1, ids)).sum()
    entropy = -(teacher_probs * teacher_log_probs).sum()
    if ids.shape[1] < student_log_probs.shape[1]:  # a tail exists (with k = V its log-sum-exp would be -inf)
        teacher_tail_log_mass = teacher.tail_logsumexp - teacher.logsumexp  # (M,)
        student_tail_log_mass = torch.logsumexp(student_log_probs.scatter(1, ids, float("-inf")), dim=-1)  # (M,)
        teacher_tail_mass = teacher_tail_log_mass.exp()
        cross_entropy = cross_entropy - (teacher_tail_mass * student_tail_log_mass).sum()
        entropy = entropy - torch.special.xlogy(teacher_tail_mass, teacher_tail_mass).sum()
    return cross_entropy, entropy


def distillation_loss(student_logits: torch.Tensor, teacher: Teacher | None, targets: torch.Tensor,
                      mlm_weight: float, teacher_weight: float, temperature: float,
                      normalizer: float | None = None) -> tuple[torch.Tensor, dict]:
    """Bort's pretraining loss on masked positions (logits (M, V), targets (M,)):

        mlm_weight * CE(targets, z_s) + teacher_weight * tau^2 * KL(softmax(z_t / tau) || softmax(z_s / tau))

    both summed over positions and divided by `normalizer` (default M; DDP passes the global count of masked
    positions over the world size, so that averaging gradients over ranks gives the single-process mean). The
    teacher is its full logits or its cached top k (teacher_cross_entropy); None: MLM only.
    """
    count = normalizer if normalizer is not None else student_logits.shape[0]
    # The vocabulary-wide elementwise passes cost more than a small student's encoder: each is done once.
    student_log_probs = F.log_softmax(_scaled(student_logits.float(), temperature), dim=-1)  # (M, V)
    kl = student_logits.new_zeros((), dtype=torch.float32)
    if teacher is not None:
        cross_entropy, teacher_entropy = teacher_cross_entropy(student_log_probs, teacher, temperature)
        # KL(T || S) = cross-entropy(T, S) - H(T); H(T) carries no gradient.
        kl = (cross_entropy - teacher_entropy.detach()) / count * temperature ** 2
    mlm_log_probs = student_log_probs if temperature == 1 else F.log_softmax(student_logits.float(), dim=-1)
    mlm = F.nll_loss(mlm_log_probs, targets, reduction="sum") / count
    total = mlm_weight * mlm + teacher_weight * kl
    return total, {"mlm": mlm.item(), "kl": kl.item()}


def _scaled(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return logits if temperature == 1 else logits / temperature


def surrogate_cross_entropy(student_logits: torch.Tensor, teacher: Teacher) -> torch.Tensor:
    """Summed cross-entropy -sum p_T log p_S over positions at temperature 1: the surrogate error's numerator."""
    cross_entropy, _ = teacher_cross_entropy(F.log_softmax(student_logits.float(), -1), teacher, 1.0)
    return cross_entropy


@torch.no_grad()
def heldout_scores(model, batches: list[dict], teacher_outputs: list[Teacher] | None = None,
                   device: str = "cpu") -> dict:
    """Masked-LM accuracy and loss on fixed held-out batches, and, given T's outputs on the same positions (full
    logits or cached top k, one per batch), the surrogate error: the cross-entropy between T's and the model's
    distributions."""
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
        if teacher_outputs is not None:
            surrogate_sum += surrogate_cross_entropy(logits, _to_device(teacher_outputs[index], device)).item()
    model.train(was_training)
    scores = {"mlm_accuracy": correct / total, "mlm_loss": mlm_sum / total, "masked_positions": total}
    if teacher_outputs is not None:
        scores["surrogate_error"] = surrogate_sum / total
    return scores


@torch.no_grad()
def heldout_sentence_scores(model, batches: list[dict], device: str = "cpu") -> dict:
    """Sentence-order (or next-sentence) accuracy and mean loss on fixed held-out pair batches
    (data.corpus.heldout_pair_batches), and the number of pairs."""
    was_training = model.training
    model.eval()
    correct = total = 0
    loss_sum = 0.0
    for batch in batches:
        batch = {name: tensor.to(device) for name, tensor in batch.items()}
        _, logits = pretraining_logits(model, batch)
        labels = batch["sentence_labels"]
        correct += (logits.argmax(-1) == labels).sum().item()
        total += labels.numel()
        loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum").item()
    model.train(was_training)
    return {"accuracy": correct / total, "loss": loss_sum / total, "pairs": total}


def _to_device(teacher: Teacher, device: str) -> Teacher:
    if isinstance(teacher, torch.Tensor):
        return teacher.to(device)
    return TeacherTopK(teacher.ids.to(device), teacher.logits.to(device), teacher.logsumexp.to(device),
                       teacher.tail_logsumexp.to(device), teacher.temperature)


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
