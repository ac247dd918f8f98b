"""The one training loop. Every trainer of the workflow runs `run_training`: the fine-tunes (initial, per-layer,
final with early stopping) through `train`, Agora and its plain baseline, Bort's KD/MLM pretraining, the FPTAS
candidates, the teacher's masked-LM head and Voita's head gates. They differ in arguments only: the loss, the
parameters and optimizer, the schedule, the batches and the callbacks.

One optimizer step of `run_training`:

    batch = next(batches)                         # what the step trains on (under DDP: this rank's slice)
    for micro_batch in split(batch, grad_accumulation):
        loss_fn(model, micro_batch).backward()    # weighted by the micro-batch's share of the rows
    clip_grad_norm_(model.parameters(), max_grad_norm); optimizer.step(); scheduler.step(); zero_grad()
    callback.on_step(state) for every callback    # progress, early stopping, held-out curve, checkpoints

With `count_fn` (KD pretraining: the masked positions) the loss is normalized by the step's count summed over the
micro-batches and the DDP ranks, divided by the world size: loss_fn receives it and returns a sum divided by it,
so averaging gradients over ranks and adding them over micro-batches gives the single-process gradient of the
whole batch.

The fine-tunes follow the run_glue.py recipe the AUBER paper used: AdamW (no decay on biases and LayerNorm
weights), linear warm-up then linear decay to 0, global gradient-norm clipping.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from workflow_scripts.core.inference import make_loader, predict_logits

logger = logging.getLogger("workflow_scripts")


@dataclass
class OptimizationConfig:
    """How a model is optimized: AdamW, linear warm-up then linear decay, a clipped global gradient norm, seeded
    (the distillation stages' recipe; the fine-tunes' adds early stopping)."""
    epochs: int = field(metadata={"help": "passes over the training set"})
    learning_rate: float = field(metadata={"help": "peak AdamW learning rate"})
    batch_size: int = field(metadata={"help": "examples per optimizer step"})
    weight_decay: float = field(metadata={"help": "AdamW weight decay (not on biases and LayerNorm weights)"})
    warmup_ratio: float = field(metadata={"help": "fraction of the steps with linear warm-up (then linear decay)"})
    max_grad_norm: float = field(metadata={"help": "global gradient-norm clip"})
    seed: int = field(metadata={"help": "seeds a new head's initialization, shuffling and dropout"})


@dataclass
class TrainingConfig(OptimizationConfig):
    """The fine-tunes' recipe (params.yaml finetune_initial, finetune_layer, finetune_final; Agora's sets)."""
    adam_epsilon: float = field(metadata={"help": "AdamW epsilon"})
    # Early stopping (off when evaluate_every_steps is 0): evaluate the selection score every N optimizer steps
    # on a split carved from training data, stop after `patience` evaluations without improvement, keep the best.
    evaluate_every_steps: int = field(metadata={"help": "optimizer steps between early-stopping evaluations (0: off)"})
    patience: int = field(metadata={"help": "evaluations without a gain before early stopping"})


@dataclass
class TrainingHistory:
    losses: list[float] = field(default_factory=list)                      # one per optimizer step of this run
    selection_scores: list[tuple[int, float]] = field(default_factory=list)  # (step, score)
    best_step: int | None = None
    stopped_early: bool = False
    step_details: list[dict] = field(default_factory=list)  # what loss_fn reported besides the loss, per step

    def to_json(self) -> dict:
        return {"losses": self.losses, "selection_scores": self.selection_scores,
                "best_step": self.best_step, "stopped_early": self.stopped_early}


@dataclass
class StepState:
    """What callbacks see after each optimizer step; a callback sets `stop` to end training after this step."""
    step: int            # optimizer steps done, counting those before a resume
    total_steps: int
    loss: float          # this step's loss
    details: dict        # what loss_fn reported besides the loss
    history: TrainingHistory
    stop: bool = False


class Callback:
    """Hooks of run_training, called in the order the callbacks are given."""

    def on_step(self, state: StepState) -> None:
        pass

    def on_end(self, state: StepState | None) -> None:
        pass


class Periodic(Callback):
    """`action(state)` every `every_steps` steps; `at_last` also after the last step, `not_at_last` never then
    (a checkpoint of the finished run would only be moved into its output)."""

    def __init__(self, every_steps: int, action: Callable[[StepState], None], at_last: bool = False,
                 not_at_last: bool = False):
        self.every_steps, self.action, self.at_last, self.not_at_last = every_steps, action, at_last, not_at_last

    def on_step(self, state: StepState) -> None:
        last = state.step == state.total_steps
        due = (self.every_steps > 0 and state.step % self.every_steps == 0) or (self.at_last and last)
        if due and not (self.not_at_last and last):
            self.action(state)


class EarlyStopping(Callback):
    """Score the model every `every_steps` steps; stop after `patience` scores without a gain; at the end the
    model gets the weights of its best score back. The scores go to the history (selection_scores, best_step)."""

    def __init__(self, model, selection_score: Callable[[object], float], every_steps: int, patience: int):
        self.model, self.selection_score = model, selection_score
        self.every_steps, self.patience = every_steps, patience
        self.best_state, self.evaluations_without_gain = None, 0

    def on_step(self, state: StepState) -> None:
        if state.step % self.every_steps:
            return
        history = state.history
        score = self.selection_score(self.model)
        self.model.train()
        history.selection_scores.append((state.step, score))
        if history.best_step is None or score > max(s for _, s in history.selection_scores[:-1]):
            history.best_step, self.best_state, self.evaluations_without_gain = \
                state.step, copy.deepcopy(self.model.state_dict()), 0
        else:
            self.evaluations_without_gain += 1
        if self.evaluations_without_gain >= self.patience:
            history.stopped_early = state.stop = True

    def on_end(self, state: StepState | None) -> None:
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)


def default_loss(model, batch: dict) -> torch.Tensor:
    return model(**batch).loss


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def parameter_groups(model, weight_decay: float) -> list[dict]:
    """build_optimizer's two groups, in model order: decay on the weights, none on biases and LayerNorm weights."""
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and (n.endswith("bias") or "LayerNorm" in n)]
    no_decay_ids = {id(p) for p in no_decay}
    decay = [p for p in model.parameters() if p.requires_grad and id(p) not in no_decay_ids]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model, learning_rate: float, weight_decay: float, adam_epsilon: float = 1e-8) -> torch.optim.AdamW:
    """AdamW with two groups: decay on the weights, none on biases and LayerNorm weights."""
    return torch.optim.AdamW(parameter_groups(model, weight_decay), lr=learning_rate, eps=adam_epsilon)


def linear_schedule(optimizer, total_steps: int, warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def epoch_batches(loader: DataLoader, epochs: int) -> Iterable:
    """`epochs` passes over one shuffling loader (each pass draws its order from the loader's generator)."""
    for _ in range(epochs):
        yield from loader


def split_batch(batch: dict, parts: int) -> list[dict]:
    """`parts` micro-batches of consecutive rows (fewer when the batch has fewer rows)."""
    pieces = {name: torch.tensor_split(tensor, parts) for name, tensor in batch.items()}
    micro_batches = [{name: pieces[name][index] for name in batch} for index in range(parts)]
    return [micro for micro in micro_batches if len(next(iter(micro.values())))]


# ---- DDP ------------------------------------------------------------------------------------------------------

@dataclass
class Distributed:
    """This process under torchrun (rank, world size, device); (0, 1, device) otherwise."""
    rank: int
    world_size: int
    device: str

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """The module under DistributedDataParallel when there are several processes (it syncs every call)."""
        if self.world_size == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(module, device_ids=[int(self.device.split(":")[1])] if ":" in self.device
                                       else None)

    def close(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()


def distributed_setup(device: str) -> Distributed:
    """Join the process group torchrun describes (NCCL on CUDA, gloo on CPU), one GPU per local rank."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed(0, 1, device)
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Distributed(torch.distributed.get_rank(), world_size, device)


def global_count(count: torch.Tensor, world_size: int) -> float:
    """A count summed over the ranks (float64, so that any count is exact)."""
    count = count.to(torch.float64)
    if world_size > 1:
        torch.distributed.all_reduce(count)
    return count.item()


# ---- the loop -------------------------------------------------------------------------------------------------

def run_training(model, batches: Iterable[dict], loss_fn: Callable, optimizer, *, total_steps: int,
                 scheduler=None, max_grad_norm: float | None = None, grad_accumulation: int = 1,
                 device: str = "cpu", start_step: int = 0, count_fn: Callable[[dict], torch.Tensor] | None = None,
                 world_size: int = 1, callbacks: Iterable[Callback] = (), description: str | None = None,
                 history: TrainingHistory | None = None) -> TrainingHistory:
    """Optimizer steps start_step+1 .. total_steps (fewer when a callback stops), in place.

    model: what loss_fn calls and whose parameters are clipped (a DDP module: micro-batches but the last skip
        the gradient sync). Train/eval mode is the caller's: it is left as it is.
    batches: one batch (a dict of tensors) per optimizer step, starting with step start_step + 1; moved to device.
    loss_fn(model, batch) -> loss or (loss, details); with count_fn, loss_fn(model, batch, normalizer).
    grad_accumulation: the batch is split into this many micro-batches, one forward and backward each.
    scheduler, max_grad_norm: None for none. description: a progress bar with this title.
    """
    history = history if history is not None else TrainingHistory()
    batches, callbacks = iter(batches), list(callbacks)
    progress = tqdm(total=total_steps, initial=start_step, desc=description, unit="step",
                    dynamic_ncols=True) if description else None
    state = None
    for step in range(start_step, total_steps):
        batch = {name: tensor.to(device) for name, tensor in next(batches).items()}
        normalizer = global_count(count_fn(batch), world_size) / world_size if count_fn is not None else None
        micro_batches = [batch] if grad_accumulation == 1 else split_batch(batch, grad_accumulation)
        rows = len(next(iter(batch.values())))
        step_loss, micro_details = 0.0, []
        for index, micro_batch in enumerate(micro_batches):
            syncing = index == len(micro_batches) - 1 or not hasattr(model, "no_sync")
            with contextlib.nullcontext() if syncing else model.no_sync():
                output = loss_fn(model, micro_batch) if normalizer is None else loss_fn(model, micro_batch, normalizer)
                loss, details = output if isinstance(output, tuple) else (output, {})
                if len(micro_batches) > 1 and normalizer is None:  # mean losses: weight by the share of rows
                    loss = loss * (len(next(iter(micro_batch.values()))) / rows)
                loss.backward()
            step_loss = loss.item() if len(micro_batches) == 1 else step_loss + loss.item()
            micro_details.append(details)
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        details = micro_details[0] if len(micro_details) == 1 else \
            {key: float(np.mean([d[key] for d in micro_details])) for key in micro_details[0]}
        history.losses.append(step_loss)
        if details:
            history.step_details.append(details)
        state = StepState(step + 1, total_steps, step_loss, details, history)
        if progress is not None:
            progress.update()
            progress.set_postfix(loss=f"{step_loss:.4f}")
        for callback in callbacks:
            callback.on_step(state)
        if state.stop:
            break
    if progress is not None:
        progress.close()
    for callback in callbacks:
        callback.on_end(state)
    return history


def trainer_state(step: int, optimizer, scheduler=None, **extra) -> dict:
    """What a resumed run needs besides the weights: the optimizer, the schedule and the CPU random state."""
    return {"step": step, "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None, "rng": torch.get_rng_state(),
            **extra}


def restore_trainer_state(state: dict, optimizer, scheduler=None) -> int:
    """Load a `trainer_state` into the optimizer and schedule, restore the random state; the step it was at."""
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    return state["step"]


# ---- fine-tuning: epochs over a shuffled loader ---------------------------------------------------------------

class _EpochLog(Callback):
    def __init__(self, steps_per_epoch: int, epochs: int):
        self.steps_per_epoch, self.epochs = steps_per_epoch, epochs

    def on_step(self, state: StepState) -> None:
        if state.step % self.steps_per_epoch == 0 and not state.stop:
            logger.info("epoch %d/%d done, mean loss %.4f", state.step // self.steps_per_epoch, self.epochs,
                        float(np.mean(state.history.losses[-self.steps_per_epoch:])))


def train(model, train_dataset, config: TrainingConfig, collate_fn, device: str = "cpu",
          loss_fn: Callable = default_loss, selection_score: Callable[[object], float] | None = None,
          description: str = "train", grad_accumulation: int = 1,
          callbacks: Iterable[Callback] = ()) -> TrainingHistory:
    """`config.epochs` passes over the shuffled training set, in place; with early stopping (evaluate_every_steps
    and a selection_score), the model ends with the weights of its best evaluation. `callbacks` run after each
    step before early stopping's (sparse.magnitude.KeepMasks: what is scored and kept is the masked model)."""
    seed_everything(config.seed)
    model.to(device).train()
    loader = make_loader(train_dataset, config.batch_size, collate_fn, shuffle=True, seed=config.seed)
    total_steps = config.epochs * len(loader)
    optimizer = build_optimizer(model, config.learning_rate, config.weight_decay, config.adam_epsilon)
    scheduler = linear_schedule(optimizer, total_steps, math.ceil(config.warmup_ratio * total_steps))
    callbacks = list(callbacks)
    if config.evaluate_every_steps > 0 and selection_score is not None:
        callbacks.append(EarlyStopping(model, selection_score, config.evaluate_every_steps, config.patience))
    callbacks.append(_EpochLog(len(loader), config.epochs))
    return run_training(model, epoch_batches(loader, config.epochs), loss_fn, optimizer, total_steps=total_steps,
                        scheduler=scheduler, max_grad_norm=config.max_grad_norm, grad_accumulation=grad_accumulation,
                        device=device, callbacks=callbacks, description=description)


def training_rows(num_train: int, train_indices_file: str | None, early_stopping_fraction: float,
                  seed: int) -> tuple[list[int], list[int]]:
    """(rows to train on, rows held out for early stopping), as indices of the training split: all rows, or the
    mini_train rows of a prune_layer output's mini_split.json, less a seeded `early_stopping_fraction`."""
    from workflow_scripts.core.io_utils import read_json

    rows = read_json(train_indices_file)["mini_train"] if train_indices_file else list(range(num_train))
    if early_stopping_fraction == 0:
        return rows, []
    shuffled = np.random.default_rng(seed).permutation(rows).tolist()
    held_out = max(1, round(early_stopping_fraction * len(rows)))
    if held_out >= len(rows):
        raise ValueError(f"--early-stopping-fraction {early_stopping_fraction} leaves no training rows")
    return sorted(shuffled[held_out:]), sorted(shuffled[:held_out])


def headline_score(dataset, task: dict, batch_size: int, collate_fn, device: str) -> Callable[[object], float]:
    """A selection_score for early stopping: the task's headline metric (accuracy, MCC, ...) on `dataset`."""
    from workflow_scripts.core.metrics import compute_metrics

    labels = np.asarray(dataset["labels"])

    def score(model) -> float:
        logits = predict_logits(model, dataset, batch_size, collate_fn, device, description="early-stopping split")
        return compute_metrics(task["metrics"][:1], logits, labels)[task["metrics"][0]]
    return score
