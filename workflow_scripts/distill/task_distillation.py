"""Task distillation of a student classifier from a fine-tuned teacher, in TinyBERT's two stages:

    intermediate   embedding + hidden-state + attention losses (losses.py), the student's classifier untouched
    prediction     soft cross-entropy to the teacher's logits at a temperature
    labels         cross-entropy to the gold labels instead (MSE for regression), the teacher unused: the
                   ablations of TinyBERT's prediction-layer distillation ("No Pred") and of the whole task
                   distillation ("No TD": the intermediate stage skipped, this one the plain fine-tune)

Both run the project's one training loop (core/training.py) over the task's training rows: AdamW, linear warm-up
and decay, gradient clipping. The teacher (eval mode, frozen) runs once over the rows before training: its outputs
are cached and read by row index in every epoch (teacher_cache.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from workflow_scripts.core.inference import make_loader
from workflow_scripts.core.training import (Callback, build_optimizer, epoch_batches, linear_schedule, run_training,
                                            seed_everything, OptimizationConfig, TrainingHistory)
from workflow_scripts.distill.losses import (AttentionScores, IntermediateLossWeights, WidthProjection, head_pairs,
                                             intermediate_losses, layer_mapping, soft_cross_entropy)
from workflow_scripts.distill.teacher_cache import ROW_KEY, IndexedRows, TeacherCache, model_inputs

OBJECTIVES = ("intermediate", "prediction", "labels")


@dataclass
class DistillLosses(IntermediateLossWeights):
    """TinyBERT's losses: which layers pair up, their weights, the prediction temperature."""
    temperature: float = field(metadata={"help": "temperature of the prediction soft cross-entropy"})


class DistillationPair(nn.Module):
    """The student and the projections trained with it (what the optimizer and the gradient clip see); the teacher
    is held outside the module tree, frozen."""

    def __init__(self, student: nn.Module, teacher: nn.Module):
        super().__init__()
        self.student = student
        self.projection = WidthProjection(student.config.hidden_size, teacher.config.hidden_size)
        self._teacher = [teacher]

    @property
    def teacher(self) -> nn.Module:
        return self._teacher[0]


class IntermediateObjective:
    """loss_fn of run_training for the intermediate stage (embedding, hidden states, attention scores)."""

    def __init__(self, pair: DistillationPair, losses: DistillLosses, cache: TeacherCache):
        student, teacher = pair.student, pair.teacher
        self.cache = cache
        student_depth, teacher_depth = student.config.num_hidden_layers, teacher.config.num_hidden_layers
        self.mapping = layer_mapping(student_depth, teacher_depth, losses.layer_mapping)
        # Without the attention loss, heads need not pair (any counts go).
        self.heads = [head_pairs(student, teacher, m, g - 1) if losses.attention_weight else ([], [])
                      for m, g in enumerate(self.mapping)]
        self.losses = losses
        self.student_scores = AttentionScores(student)
        self.teacher_scores = None if cache.states else AttentionScores(teacher)

    def _teacher_states(self, pair: DistillationPair, batch: dict, inputs: dict):
        if self.cache.states:
            rows, length, device = batch[ROW_KEY], batch["input_ids"].shape[1], batch["input_ids"].device
            return ([h.to(device) for h in self.cache.batch_hidden(rows, length)],
                    [None if s is None else s.to(device) for s in self.cache.batch_scores(rows, length)])
        with torch.no_grad():
            hidden = pair.teacher(**inputs, output_hidden_states=True).hidden_states
            return hidden, self.teacher_scores.per_layer()

    def __call__(self, pair: DistillationPair, batch: dict):
        inputs, mask = model_inputs(batch), batch["attention_mask"]
        teacher_hidden, teacher_scores = self._teacher_states(pair, batch, inputs)
        student_hidden = pair.student(**inputs, output_hidden_states=True).hidden_states
        embedding, hidden, attention = intermediate_losses(
            student_hidden, self.student_scores.per_layer(), teacher_hidden, teacher_scores, pair.projection,
            self.mapping, self.heads, mask)
        loss = (self.losses.embedding_weight * embedding + self.losses.hidden_weight * hidden
                + self.losses.attention_weight * attention)
        return loss, {"embedding": embedding.item(), "hidden": float(hidden.detach()), "attention": attention.item()}

    def close(self) -> None:
        self.student_scores.close()
        if self.teacher_scores is not None:
            self.teacher_scores.close()


class PredictionObjective:
    """loss_fn of run_training for the prediction stage (cache None: the gold labels' cross-entropy instead)."""

    def __init__(self, losses: DistillLosses, cache: TeacherCache | None):
        self.temperature, self.cache = losses.temperature, cache

    def __call__(self, pair: DistillationPair, batch: dict):
        logits = pair.student(**model_inputs(batch)).logits
        if self.cache is None:
            labels = batch["labels"]
            loss = nn.functional.mse_loss(logits.squeeze(-1), labels.to(logits.dtype)) if logits.shape[-1] == 1 \
                else nn.functional.cross_entropy(logits, labels)
            return loss, {"label_loss": loss.item()}
        teacher_logits = self.cache.batch_logits(batch[ROW_KEY]).to(batch["input_ids"].device)
        loss = soft_cross_entropy(logits, teacher_logits, self.temperature)
        return loss, {"soft_cross_entropy": loss.item()}

    def close(self) -> None:
        pass


def training_setup(model: nn.Module, dataset, collate_fn, training: OptimizationConfig):
    """(batches, optimizer, scheduler, total steps) of `training.epochs` passes over a shuffled dataset."""
    loader = make_loader(dataset, training.batch_size, collate_fn, shuffle=True, seed=training.seed)
    total_steps = training.epochs * len(loader)
    optimizer = build_optimizer(model, training.learning_rate, training.weight_decay)
    scheduler = linear_schedule(optimizer, total_steps, math.ceil(training.warmup_ratio * total_steps))
    return epoch_batches(loader, training.epochs), optimizer, scheduler, total_steps


def distill(student: nn.Module, teacher: nn.Module, dataset, collate_fn, objective: str, training: OptimizationConfig,
            losses: DistillLosses, device: str = "cpu", callbacks: list[Callback] = ()) -> TrainingHistory:
    """One stage of task distillation of `student` (in place) from `teacher` on `dataset`'s rows."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown distillation objective {objective!r} (known: {', '.join(OBJECTIVES)})")
    seed_everything(training.seed)
    pair = DistillationPair(student, teacher).to(device)
    teacher.to(device).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    if objective == "intermediate" and not (losses.embedding_weight or losses.hidden_weight
                                            or losses.attention_weight):
        raise ValueError("intermediate distillation with every loss weight at 0 would not train: skip the stage")
    cache = None if objective == "labels" else TeacherCache(teacher, dataset, collate_fn, training.batch_size, device,
                                                            states=objective == "intermediate")
    student.train()
    loss_fn = IntermediateObjective(pair, losses, cache) if objective == "intermediate" else \
        PredictionObjective(losses, cache)
    batches, optimizer, scheduler, total_steps = training_setup(pair, IndexedRows(dataset), collate_fn, training)
    try:
        return run_training(pair, batches, loss_fn, optimizer, total_steps=total_steps, scheduler=scheduler,
                            max_grad_norm=training.max_grad_norm, device=device, callbacks=callbacks,
                            description=f"distill ({objective})")
    finally:
        loss_fn.close()
