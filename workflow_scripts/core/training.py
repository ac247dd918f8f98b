"""The one training loop: initial fine-tuning, per-layer fine-tuning, final fine-tuning with early stopping,
KD pretraining and Agora all call `train`, differing only in data, schedule and loss.

Matches the run_glue.py recipe the AUBER paper used: AdamW (no decay on biases and LayerNorm weights), linear
warm-up then linear decay to 0, global gradient-norm clipping.
"""
from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

logger = logging.getLogger("workflow_scripts")


@dataclass
class TrainingConfig:
    epochs: int
    learning_rate: float
    batch_size: int
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    max_grad_norm: float = 1.0
    adam_epsilon: float = 1e-8
    seed: int = 0
    # Early stopping (off when evaluate_every_steps is 0): evaluate the selection score every N optimizer steps
    # on a split carved from training data, stop after `patience` evaluations without improvement, keep the best.
    evaluate_every_steps: int = 0
    patience: int = 0


@dataclass
class TrainingHistory:
    losses: list[float] = field(default_factory=list)                      # one per optimizer step
    selection_scores: list[tuple[int, float]] = field(default_factory=list)  # (step, score)
    best_step: int | None = None
    stopped_early: bool = False

    def to_json(self) -> dict:
        return {"losses": self.losses, "selection_scores": self.selection_scores,
                "best_step": self.best_step, "stopped_early": self.stopped_early}


def default_loss(model, batch: dict) -> torch.Tensor:
    return model(**batch).loss


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_optimizer(model, config: TrainingConfig) -> torch.optim.Optimizer:
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and (n.endswith("bias") or "LayerNorm" in n)]
    no_decay_ids = {id(p) for p in no_decay}
    decay = [p for p in model.parameters() if p.requires_grad and id(p) not in no_decay_ids]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.learning_rate, eps=config.adam_epsilon)


def linear_schedule(optimizer, total_steps: int, warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_loader(dataset, batch_size: int, collate_fn, shuffle: bool, seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate_fn, generator=generator)


def train(model, train_dataset, config: TrainingConfig, collate_fn, device: str = "cpu",
          loss_fn: Callable = default_loss, selection_score: Callable[[object], float] | None = None,
          description: str = "train") -> TrainingHistory:
    """Train in place; with early stopping, the model ends with the weights of its best evaluation."""
    seed_everything(config.seed)
    model.to(device).train()
    loader = make_loader(train_dataset, config.batch_size, collate_fn, shuffle=True, seed=config.seed)
    total_steps = config.epochs * len(loader)
    optimizer = build_optimizer(model, config)
    scheduler = linear_schedule(optimizer, total_steps, math.ceil(config.warmup_ratio * total_steps))
    early_stopping = config.evaluate_every_steps > 0 and selection_score is not None
    history, best_state, evaluations_without_gain = TrainingHistory(), None, 0
    progress = tqdm(total=total_steps, desc=description, unit="step", dynamic_ncols=True)
    for epoch in range(config.epochs):
        for batch in loader:
            batch = {name: tensor.to(device) for name, tensor in batch.items()}
            loss = loss_fn(model, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            history.losses.append(loss.item())
            progress.update()
            progress.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.4f}")
            step = len(history.losses)
            if early_stopping and step % config.evaluate_every_steps == 0:
                score = selection_score(model)
                model.train()
                history.selection_scores.append((step, score))
                if history.best_step is None or score > max(s for _, s in history.selection_scores[:-1]):
                    history.best_step, best_state, evaluations_without_gain = step, copy.deepcopy(model.state_dict()), 0
                else:
                    evaluations_without_gain += 1
                if evaluations_without_gain >= config.patience:
                    history.stopped_early = True
                    break
        else:
            logger.info("epoch %d/%d done, mean loss %.4f", epoch + 1, config.epochs,
                        float(np.mean(history.losses[-len(loader):])))
            continue
        break
    progress.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    return history


@torch.no_grad()
def predict_logits(model, dataset, batch_size: int, collate_fn, device: str = "cpu",
                   description: str = "evaluate") -> np.ndarray:
    """Logits (N, num_labels) in dataset order, in eval mode."""
    model.to(device).eval()
    loader = make_loader(dataset, batch_size, collate_fn, shuffle=False)
    outputs = []
    for batch in tqdm(loader, desc=description, unit="batch", dynamic_ncols=True):
        batch = {name: tensor.to(device) for name, tensor in batch.items() if name != "labels"}
        outputs.append(model(**batch).logits.float().cpu().numpy())
    return np.concatenate(outputs)
