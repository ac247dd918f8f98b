"""Differentiable architecture pruning with a FLOPs target (seed 004; DAP-BERT's choices where the seed is silent,
algorithms.md section 6).

Architecture parameters alpha: one per attention head (L x H) and one per FFN unit (L x I), attached through the
project's gates with mask = sigmoid(alpha) (core/surgery.py). They start at `alpha_init` (5: masks 0.993).

    E[cost]  FLOPs of the soft architecture: the counters' FLOPs (core/counters.py) with sum(mask) heads and
             sum(mask) FFN units per layer, at `seq_len`; differentiable in alpha, exact at 0/1 masks
    F        E[cost] / FLOPs of the unpruned model
    L_cost   log E[cost] if F > (1 + t) R;  0 if (1 - t) R <= F <= (1 + t) R;  -log E[cost] if F < (1 - t) R
    L_arch   MSE(student logits, teacher logits) + lambda_cost L_cost     (teacher: the unpruned fine-tuned model)

Weights W (AdamW) train on the MSE alone (L_cost does not depend on them); alpha (SGD) on L_arch, with only the
`update_fraction` largest-magnitude gradient entries of each alpha tensor (one tensor per layer and kind; `global`:
ranked over all of them) applied, by their sign as DAP-BERT does (`alpha_update: sign`) or as they are (`raw`).
The target R moves from 1 to the final ratio over the first `ramp_fraction` of the steps (linear, the seed; or
multiplicative, DAP-BERT's demo), then stays.

At the end the architecture is made discrete: units whose mask exceeds `keep_threshold` (DAP-BERT: 0.99) are kept,
then units are dropped (lowest alpha first) or added back (highest alpha first) until the FLOPs are within the band
(1 +- t) R, and the model is physically pruned, with each kept unit's mask folded into the weights it feeds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from workflow_scripts.core.counters import Architecture, architecture_flops, architecture_of
from workflow_scripts.core.training import Callback, StepState, run_training, seed_everything
from workflow_scripts.core.surgery import attach_ffn_gates, attach_head_gates, encoder_layers, prune_ffn_neurons, \
    prune_heads
from workflow_scripts.distill.task_distillation import training_setup
from workflow_scripts.distill.teacher_cache import ROW_KEY, IndexedRows, TeacherCache, model_inputs

RATIO_SCHEDULES = ("linear", "multiplicative", "fixed")
GRADIENT_FILTERS = ("per_tensor", "global", "none")
ALPHA_UPDATES = ("sign", "raw")


@dataclass
class SearchConfig:
    """The architecture search (params.yaml dap.search) and its target ratio (the rule's {ratio})."""
    target_ratio: float = field(metadata={"help": "final FLOPs of the pruned model / FLOPs of the unpruned one"})
    tolerance: float = field(metadata={"help": "t: the cost loss is 0 while the ratio is within (1 +- t) x target"})
    cost_weight: float = field(metadata={"help": "lambda_cost of L_arch = MSE + lambda_cost L_cost"})
    ratio_schedule: str = field(metadata={"choices": list(RATIO_SCHEDULES),
                                          "help": "how the target moves from 1 to the final ratio (fixed: final at once)"})
    ramp_fraction: float = field(metadata={"help": "share of the steps over which the target moves; then it stays"})
    alpha_init: float = field(metadata={"help": "initial alpha of every unit (mask sigmoid(alpha))"})
    alpha_learning_rate: float = field(metadata={"help": "SGD learning rate of alpha"})
    update_fraction: float = field(metadata={"help": "share of alpha's gradient entries applied per step (largest |g|)"})
    gradient_filter: str = field(metadata={"choices": list(GRADIENT_FILTERS),
                                           "help": "rank gradients per alpha tensor, over all of them, or apply all"})
    alpha_update: str = field(metadata={"choices": list(ALPHA_UPDATES),
                                        "help": "sign: step by the sign of the kept entries (DAP-BERT); raw: as they are"})
    keep_threshold: float = field(metadata={"help": "a unit is kept when its mask exceeds this (before the band fix)"})
    seq_len: int = field(metadata={"help": "sequence length of the FLOPs counts"})


def target_ratio_at(step: int, total_steps: int, config: SearchConfig) -> float:
    """R after `step` optimizer steps (0 .. total_steps)."""
    if config.ratio_schedule == "fixed":
        return config.target_ratio
    ramp_steps = max(1, round(config.ramp_fraction * total_steps))
    progress = min(1.0, step / ramp_steps)
    if config.ratio_schedule == "linear":
        return 1.0 - (1.0 - config.target_ratio) * progress
    return config.target_ratio ** progress  # multiplicative: x R^(1/ramp_steps) per step


def cost_loss(expected_cost: torch.Tensor, ratio: torch.Tensor | float, target: float, tolerance: float) -> torch.Tensor:
    """The seed's three-branch cost loss (equation 4) of the expected FLOPs."""
    if ratio > (1 + tolerance) * target:
        return torch.log(expected_cost)
    if ratio < (1 - tolerance) * target:
        return -torch.log(expected_cost)
    return expected_cost.new_zeros(())


def filter_gradients(gradients: list[torch.Tensor], update_fraction: float, mode: str, sign: bool) -> list[torch.Tensor]:
    """Zero all but the `update_fraction` largest-|g| entries (per tensor, or ranked globally), then take the sign
    if asked. mode `none` keeps every entry."""
    if mode == "none":
        kept = gradients
    elif mode == "per_tensor":
        kept = [_top_entries(g, _count(g.numel(), update_fraction)) for g in gradients]
    else:
        flat = torch.cat([g.reshape(-1) for g in gradients])
        threshold = _kth_largest(flat.abs(), _count(flat.numel(), update_fraction))
        kept = [torch.where(g.abs() >= threshold, g, torch.zeros_like(g)) for g in gradients]
    return [torch.sign(g) for g in kept] if sign else kept


def _count(numel: int, fraction: float) -> int:
    return min(numel, max(1, math.ceil(fraction * numel))) if numel else 0


def _kth_largest(values: torch.Tensor, k: int) -> torch.Tensor:
    return torch.topk(values, k).values[-1] if k else values.new_tensor(float("inf"))


def _top_entries(gradient: torch.Tensor, k: int) -> torch.Tensor:
    if k == 0:
        return gradient
    kept = torch.zeros_like(gradient)
    index = torch.topk(gradient.abs(), k).indices
    kept[index] = gradient[index]
    return kept


class SoftArchitecture(nn.Module):
    """alpha of every head and FFN unit of a (possibly already pruned) model, attached as sigmoid gates."""

    def __init__(self, model: nn.Module, alpha_init: float):
        super().__init__()
        self.base = architecture_of(model)
        self.heads = attach_head_gates(model, init=alpha_init, transform=torch.sigmoid)
        self.ffn = attach_ffn_gates(model, init=alpha_init, transform=torch.sigmoid)

    def alphas(self) -> list[nn.Parameter]:
        return [*self.heads.gates, *self.ffn.gates]

    def expected_flops(self, seq_len: int) -> torch.Tensor:
        """The counters' FLOPs (batch 1) with sum(sigmoid(alpha)) heads and FFN units per layer."""
        soft = Architecture(**{**self.base.__dict__,
                               "heads_per_layer": tuple(mask.sum() for mask in self.heads.values()),
                               "ffn_per_layer": tuple(mask.sum() for mask in self.ffn.values())})
        return architecture_flops(soft, 1, seq_len)["total"]

    def open_units(self, threshold: float) -> tuple[int, int]:
        with torch.no_grad():
            return (sum(int((m > threshold).sum()) for m in self.heads.values()),
                    sum(int((m > threshold).sum()) for m in self.ffn.values()))

    def remove(self) -> None:
        self.heads.remove()
        self.ffn.remove()


class SearchOptimizer:
    """AdamW on the weights and filtered SGD on alpha, stepped together (what run_training sees as one optimizer).
    Counts the alpha entries each step changed: the evidence that the architecture was searched."""

    def __init__(self, weights_optimizer: torch.optim.Optimizer, alphas: list[nn.Parameter], config: SearchConfig):
        self.weights_optimizer, self.alphas, self.config = weights_optimizer, alphas, config
        self.alpha_optimizer = torch.optim.SGD(alphas, lr=config.alpha_learning_rate)
        self.alpha_entries_updated: list[int] = []

    @property
    def param_groups(self):  # what the learning-rate schedule drives: the weights' rate
        return self.weights_optimizer.param_groups

    def step(self) -> None:
        gradients = [a.grad if a.grad is not None else torch.zeros_like(a) for a in self.alphas]
        filtered = filter_gradients(gradients, self.config.update_fraction, self.config.gradient_filter,
                                    sign=self.config.alpha_update == "sign")
        for alpha, gradient in zip(self.alphas, filtered):
            alpha.grad = gradient
        self.alpha_entries_updated.append(int(sum((g != 0).sum() for g in filtered)))
        self.weights_optimizer.step()
        self.alpha_optimizer.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.weights_optimizer.zero_grad(set_to_none=set_to_none)
        self.alpha_optimizer.zero_grad(set_to_none=set_to_none)


class SearchObjective:
    """loss_fn of run_training: L_arch on a batch, with the target of the current step."""

    def __init__(self, teacher_logits, soft: SoftArchitecture, full_flops: float, total_steps: int,
                 config: SearchConfig):
        self.teacher_logits, self.soft, self.full_flops = teacher_logits, soft, full_flops
        self.total_steps, self.config, self.step = total_steps, config, 0

    def __call__(self, model, batch: dict):
        teacher_logits = self.teacher_logits(batch[ROW_KEY]).to(batch["input_ids"].device)
        distillation = torch.mean((model(**model_inputs(batch)).logits - teacher_logits) ** 2)
        expected = self.soft.expected_flops(self.config.seq_len)
        ratio = expected / self.full_flops
        target = target_ratio_at(self.step, self.total_steps, self.config)
        cost = cost_loss(expected, ratio.detach(), target, self.config.tolerance)
        self.step += 1
        details = {"mse": distillation.item(), "cost_loss": cost.item(), "soft_ratio": ratio.item(), "target": target}
        return distillation + self.config.cost_weight * cost, details


# ---- discretization ---------------------------------------------------------------------------------------------

@dataclass
class Unit:
    kind: str        # "head" or "ffn"
    layer: int
    original_id: int
    alpha: float


def _units(soft: SoftArchitecture) -> list[Unit]:
    units = []
    for kind, gates in (("head", soft.heads), ("ffn", soft.ffn)):
        for layer, (ids, alpha) in enumerate(zip(gates.original_ids, gates.gates)):
            units += [Unit(kind, layer, i, float(a)) for i, a in zip(ids, alpha.detach().tolist())]
    return units


def flops_of(base: Architecture, kept: set[tuple[str, int, int]], seq_len: int) -> int:
    heads = [sum(1 for kind, layer, _ in kept if kind == "head" and layer == l) for l in range(base.depth)]
    ffn = [sum(1 for kind, layer, _ in kept if kind == "ffn" and layer == l) for l in range(base.depth)]
    arch = Architecture(**{**base.__dict__, "heads_per_layer": tuple(heads), "ffn_per_layer": tuple(ffn)})
    return architecture_flops(arch, 1, seq_len)["total"]


def discretize(soft: SoftArchitecture, full_flops: float, config: SearchConfig) -> dict:
    """Kept units that meet the target within the tolerance: thresholded masks, then dropped lowest-alpha first or
    added back highest-alpha first. Returns {"heads_kept", "ffn_kept" (original ids per layer), "flops", "ratio",
    "adjusted" (units dropped / added by the band fix)}."""
    units = sorted(_units(soft), key=lambda u: u.alpha)  # ascending: the first is the least wanted
    threshold_logit = math.log(config.keep_threshold / (1 - config.keep_threshold))
    kept = {(u.kind, u.layer, u.original_id) for u in units if u.alpha > threshold_logit}
    upper, lower = (1 + config.tolerance) * config.target_ratio * full_flops, \
        (1 - config.tolerance) * config.target_ratio * full_flops
    unit_flops = _unit_flops(soft.base, config.seq_len)
    flops, dropped, added = flops_of(soft.base, kept, config.seq_len), 0, 0
    for unit in units:  # too many FLOPs: drop the lowest alpha first
        if flops <= upper:
            break
        if (unit.kind, unit.layer, unit.original_id) in kept:
            kept.discard((unit.kind, unit.layer, unit.original_id))
            flops, dropped = flops - unit_flops[unit.kind], dropped + 1
    for unit in reversed(units):  # too few: add back the highest alpha first, if it fits under the band
        if flops >= lower:
            break
        key = (unit.kind, unit.layer, unit.original_id)
        if key not in kept and flops + unit_flops[unit.kind] <= upper:
            kept.add(key)
            flops, added = flops + unit_flops[unit.kind], added + 1
    if not lower <= flops <= upper:
        raise ValueError(f"no architecture within the band: {flops / full_flops:.4f} of the FLOPs for a target of "
                         f"{config.target_ratio} +- {config.tolerance} (widen dap.search.tolerance)")
    heads_kept = [sorted(i for kind, layer, i in kept if kind == "head" and layer == l) for l in range(soft.base.depth)]
    ffn_kept = [sorted(i for kind, layer, i in kept if kind == "ffn" and layer == l) for l in range(soft.base.depth)]
    return {"heads_kept": heads_kept, "ffn_kept": ffn_kept, "flops": int(flops), "ratio": flops / full_flops,
            "adjusted": {"dropped": dropped, "added": added}}


def _unit_flops(base: Architecture, seq_len: int) -> dict[str, int]:
    """FLOPs one head (one FFN unit) adds to a layer: the counters are linear in both."""
    one_layer = Architecture(**{**base.__dict__, "depth": 1, "heads_per_layer": (0,), "ffn_per_layer": (0,),
                                "pooler": False})
    empty = architecture_flops(one_layer, 1, seq_len)["total"]
    with_head = architecture_flops(Architecture(**{**one_layer.__dict__, "heads_per_layer": (1,)}), 1, seq_len)
    with_unit = architecture_flops(Architecture(**{**one_layer.__dict__, "ffn_per_layer": (1,)}), 1, seq_len)
    return {"head": with_head["total"] - empty, "ffn": with_unit["total"] - empty}


def fold_and_prune(model: nn.Module, soft: SoftArchitecture, heads_kept: list[list[int]],
                   ffn_kept: list[list[int]]) -> None:
    """Multiply each kept unit's mask into the columns it feeds (attention.output.dense, output.dense), remove the
    gates, and physically prune everything else: the pruned model computes what the soft one did on its kept units."""
    layers = encoder_layers(model)
    with torch.no_grad():
        for gates, target_of in ((soft.heads, lambda layer: layer.attention.output.dense),
                                 (soft.ffn, lambda layer: layer.output.dense)):
            for layer, values in zip(layers, gates.values()):
                if values.numel():
                    weight = target_of(layer).weight  # (hidden, n * group_size)
                    weight.mul_(values.repeat_interleave(gates.group_size)[None, :].to(weight.dtype))
    soft.remove()
    prune_heads(model, {l: sorted(set(ids) - set(heads_kept[l])) for l, ids in enumerate(soft.heads.original_ids)})
    prune_ffn_neurons(model, {l: sorted(set(ids) - set(ffn_kept[l])) for l, ids in enumerate(soft.ffn.original_ids)})


# ---- the search ------------------------------------------------------------------------------------------------

class _Trajectory(Callback):
    """Every `every_steps` steps: the target, the soft ratio, the MSE and the units open (mask > 0.5)."""

    def __init__(self, soft: SoftArchitecture, every_steps: int):
        self.soft, self.every_steps, self.points = soft, every_steps, []

    def on_step(self, state: StepState) -> None:
        if state.step % self.every_steps and state.step != state.total_steps:
            return
        heads_open, ffn_open = self.soft.open_units(0.5)
        self.points.append({"step": state.step, **{k: state.details[k] for k in ("target", "soft_ratio", "mse",
                                                                                   "cost_loss")},
                            "heads_open": heads_open, "ffn_units_open": ffn_open})


def search_architecture(student: nn.Module, teacher: nn.Module, dataset, collate_fn, training, config: SearchConfig,
                        device: str = "cpu") -> dict:
    """Search alpha and W together on `dataset` (the student, a copy of the teacher, is pruned in place) and return
    the record of the search: the architecture, its FLOPs, the trajectory and the alpha updates taken."""
    seed_everything(training.seed)
    teacher.to(device).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    student.to(device).train()
    full_flops = architecture_flops(architecture_of(student), 1, config.seq_len)["total"]
    cache = TeacherCache(teacher, dataset, collate_fn, training.batch_size, device, states=False)
    soft = SoftArchitecture(student, config.alpha_init).to(device)
    batches, weights_optimizer, scheduler, total_steps = training_setup(student, IndexedRows(dataset), collate_fn,
                                                                        training)
    optimizer = SearchOptimizer(weights_optimizer, soft.alphas(), config)
    objective = SearchObjective(cache.batch_logits, soft, full_flops, total_steps, config)
    trajectory = _Trajectory(soft, max(1, total_steps // 20))
    history = run_training(student, batches, objective, optimizer, total_steps=total_steps, scheduler=scheduler,
                           max_grad_norm=training.max_grad_norm, device=device, callbacks=[trajectory],
                           description="architecture search")
    alpha_by_layer = {"heads": [a.detach().cpu().tolist() for a in soft.heads.gates],
                      "ffn": [a.detach().cpu().tolist() for a in soft.ffn.gates]}
    architecture = discretize(soft, full_flops, config)
    fold_and_prune(student.cpu(), soft, architecture["heads_kept"], architecture["ffn_kept"])
    return {"full_flops": int(full_flops), "architecture": architecture, "trajectory": trajectory.points,
            "steps": total_steps, "alpha_entries_updated": sum(optimizer.alpha_entries_updated),
            "steps_with_alpha_updates": sum(1 for n in optimizer.alpha_entries_updated if n),
            "final_soft_ratio": history.step_details[-1]["soft_ratio"], "losses": history.losses,
            "alpha": alpha_by_layer}
