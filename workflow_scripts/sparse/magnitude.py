"""Unstructured magnitude pruning of a BERT-style classifier and lottery-ticket rewinding (Chen et al. 2020, "The
Lottery Ticket Hypothesis for Pre-trained BERT Networks"; docs: algorithms.md section 7).

What is pruned: in every encoder layer the weights (not the biases) of the six matrices Q, K, V, attention output
dense, intermediate dense and output dense; with `prune_pooler` also the pooler's dense weight (BERT-Tickets prunes
it; off by default here, because the pooler feeds the classifier only and is not part of the encoder the
baselines compare on). Never the embeddings, the LayerNorms or the classifier.

Masks are our own dict {parameter name: bool tensor of the parameter's shape}, True where the weight is kept, and
pruning zeroes the weights in place: no torch.nn.utils.prune reparametrization, so a checkpoint is a plain Hugging
Face folder whose pruned weights are zeros, and masks.safetensors beside it says which zeros are pruned (a later
round continues from it).

Sparsity is the fraction of the ORIGINAL prunable weights (every entry of the prunable matrices) that are pruned.
`global_magnitude_masks` ranks |w| of every prunable entry of every matrix together (global L1) and prunes the
smallest until exactly round(sparsity * N) entries are pruned; entries a previous mask pruned stay pruned, so
IMP's round k prunes the next rate * N of the original weights (10%, 20%, ... at rate 0.1; BERT-Tickets' pruning
of 1 / (10 - k) of what is left is the same count).

Rewinding (`rewind`): every weight of the backbone (`model.base_model`: embeddings, encoder layers, pooler) goes
back to the value the task fine-tune started from, the pretrained one, and the mask is applied; the classifier
keeps its fine-tuned values (BERT-Tickets rewinds every `bert.*` tensor and nothing else).
"""
from __future__ import annotations

import os

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from workflow_scripts.core.io_utils import atomic_output_dir, write_json
from workflow_scripts.core.surgery import encoder_layers
from workflow_scripts.core.training import Callback, StepState

MASKS_FILE = "masks.safetensors"
# Per encoder layer, the matrices pruned (module paths inside encoder.layer[i]).
LAYER_MATRICES = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                  "intermediate.dense", "output.dense")
POOLER_MATRIX = "pooler.dense"


def check_sparsity(sparsity: float) -> None:
    if not (isinstance(sparsity, (int, float)) and 0 <= sparsity < 1):
        raise ValueError(f"sparsity {sparsity!r} is outside [0, 1): it is the fraction of the prunable weights "
                         "pruned (0.5 prunes half of them; 1 would prune every one)")


def _submodule(root: torch.nn.Module, path: str, where: str) -> torch.nn.Module:
    module = root
    for part in path.split("."):
        module = getattr(module, part, None)
        if module is None:
            raise ValueError(f"{where} has no {path}: unstructured pruning needs a BERT-style layer with Q, K, V, "
                             "attention output, intermediate and output dense matrices (a layer whose heads were "
                             "all pruned has no Q, K, V)")
    return module


def prunable_parameters(model: torch.nn.Module, prune_pooler: bool = False) -> dict[str, torch.nn.Parameter]:
    """{parameter name as in model.state_dict(): weight} of the prunable matrices, layer by layer, then the pooler."""
    name_of = {id(parameter): name for name, parameter in model.named_parameters()}
    modules = [_submodule(layer, path, f"encoder layer {index}")
               for index, layer in enumerate(encoder_layers(model)) for path in LAYER_MATRICES]
    if prune_pooler:
        base_model = getattr(model, "base_model", model)
        if getattr(base_model, "pooler", None) is None:
            raise ValueError("prune_pooler is set but the model has no pooler")
        modules.append(_submodule(base_model, POOLER_MATRIX, "the model"))
    return {name_of[id(module.weight)]: module.weight for module in modules}


def global_magnitude_masks(model: torch.nn.Module, sparsity: float, prune_pooler: bool = False,
                           previous: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Masks pruning exactly round(sparsity * N) of the N prunable weights: those of smallest |w| over all prunable
    matrices together, after every weight `previous` pruned (which stay pruned). Ties go to the earlier entry
    (matrices in `prunable_parameters` order, entries in row-major order), so the result is deterministic."""
    check_sparsity(sparsity)
    parameters = prunable_parameters(model, prune_pooler)
    previous = previous or {}
    _check_mask_names(previous, parameters, "the previous masks")
    scores = []
    for name, weight in parameters.items():
        magnitude = weight.detach().abs().flatten().float()
        if name in previous:  # already pruned: rank below every kept weight (|w| >= 0)
            magnitude = magnitude.masked_fill(~previous[name].flatten().to(magnitude.device), -1.0)
        scores.append(magnitude.cpu())
    scores = torch.cat(scores)  # (N,)
    total = scores.numel()
    to_prune = round(sparsity * total)
    already = int((scores < 0).sum())
    if to_prune < already:
        raise ValueError(f"sparsity {sparsity:g} prunes {to_prune} weights but the previous masks already prune "
                         f"{already} ({already / total:.4f}): pruned weights stay pruned, the sparsity cannot fall")
    keep = torch.ones(total, dtype=torch.bool)
    keep[torch.argsort(scores, stable=True)[:to_prune]] = False
    masks, offset = {}, 0
    for name, weight in parameters.items():
        masks[name] = keep[offset:offset + weight.numel()].view(weight.shape).clone()
        offset += weight.numel()
    return masks


def _check_mask_names(masks: dict, parameters: dict, what: str) -> None:
    unknown = sorted(set(masks) - set(parameters))
    if unknown:
        raise ValueError(f"{what} name {len(unknown)} matrices that are not prunable here, e.g. {unknown[0]!r} "
                         "(were they made with prune_pooler on, or for another model?)")
    for name, mask in masks.items():
        if tuple(mask.shape) != tuple(parameters[name].shape):
            raise ValueError(f"{what}: {name!r} has shape {tuple(mask.shape)}, the weight "
                             f"{tuple(parameters[name].shape)}")


def _parameters_for(model: torch.nn.Module, masks: dict) -> dict[str, torch.nn.Parameter]:
    parameters = dict(model.named_parameters())
    missing = sorted(set(masks) - set(parameters))
    if missing:
        raise ValueError(f"the masks name {missing[0]!r}, which the model does not have")
    _check_mask_names(masks, {name: parameters[name] for name in masks}, "the masks")
    return {name: parameters[name] for name in masks}


@torch.no_grad()
def apply_masks(model: torch.nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero the pruned weights in place (+0.0 exactly)."""
    for name, parameter in _parameters_for(model, masks).items():
        parameter.masked_fill_(~masks[name].to(parameter.device), 0.0)


def measure_sparsity(model: torch.nn.Module, masks: dict[str, torch.Tensor]) -> dict:
    """What the weights hold, per masked matrix and over all of them: entries, entries the mask prunes, entries that
    are exactly zero, and `sparsity` = zeros / entries (the model as saved)."""
    per_matrix, totals = {}, {"entries": 0, "pruned": 0, "zeros": 0}
    for name, parameter in _parameters_for(model, masks).items():
        counts = {"entries": parameter.numel(), "pruned": int((~masks[name]).sum()),
                  "zeros": int((parameter.detach() == 0).sum())}
        per_matrix[name] = {**counts, "sparsity": counts["zeros"] / counts["entries"]}
        totals = {key: totals[key] + counts[key] for key in totals}
    return {"global": {**totals, "sparsity": totals["zeros"] / max(1, totals["entries"])}, "per_matrix": per_matrix}


def save_masks(masks: dict[str, torch.Tensor], folder: str, metadata: dict[str, str] | None = None) -> str:
    """masks.safetensors in `folder` (bool tensors, True = kept)."""
    path = os.path.join(folder, MASKS_FILE)
    save_file({name: mask.contiguous().cpu() for name, mask in masks.items()}, path,
              metadata={"meaning": "True keeps the weight, False prunes it", **(metadata or {})})
    return path


def load_masks(path: str) -> dict[str, torch.Tensor]:
    """The masks of a masks.safetensors file (or of the folder holding one)."""
    if os.path.isdir(path):
        path = os.path.join(path, MASKS_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"masks file {path} not found: a pruned checkpoint carries its {MASKS_FILE} (written "
                                "by the sparse_prune stage); without it the pruned weights cannot be kept at zero")
    with safe_open(path, "pt") as handle:
        masks = {name: handle.get_tensor(name) for name in handle.keys()}
    wrong = [name for name, mask in masks.items() if mask.dtype != torch.bool]
    if wrong:
        raise ValueError(f"masks file {path}: {wrong[0]!r} is {masks[wrong[0]].dtype}, not bool")
    return masks


class KeepMasks(Callback):
    """Pruned weights stay exactly zero while training: their gradients are zeroed as they are computed (so that
    gradient clipping and AdamW's moments see the pruned model's gradient, as with a reparametrized mask), and the
    masks are re-applied after every optimizer step. Give it to `train(..., callbacks=[...])` before training; it
    zeroes the pruned weights at once and removes its gradient hooks at the end."""

    def __init__(self, model: torch.nn.Module, masks: dict[str, torch.Tensor]):
        self.model = model
        parameters = _parameters_for(model, masks)
        self.masks = {name: mask.to(parameters[name].device) for name, mask in masks.items()}
        apply_masks(model, self.masks)
        self.hooks = [parameter.register_hook(lambda gradient, keep=self.masks[name]: gradient * keep)
                      for name, parameter in parameters.items()]

    def on_step(self, state: StepState) -> None:
        apply_masks(self.model, self.masks)

    def on_end(self, state: StepState | None) -> None:
        apply_masks(self.model, self.masks)
        for hook in self.hooks:
            hook.remove()
        self.hooks = []


@torch.no_grad()
def rewind(model: torch.nn.Module, initial_model: torch.nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """In place: every backbone tensor (`base_model`: embeddings, encoder, pooler) takes `initial_model`'s value,
    then the masks are applied; the classifier keeps the values it has. `initial_model` is the model the task
    fine-tune started from (the pretrained backbone)."""
    current, initial = model.base_model.state_dict(), initial_model.base_model.state_dict()
    if current.keys() != initial.keys():
        name = sorted(current.keys() ^ initial.keys())[0]
        raise ValueError(f"cannot rewind: {name!r} is in one backbone and not the other (the pretrained model and "
                         "the fine-tuned checkpoint must have the same architecture)")
    for name, tensor in current.items():
        if tensor.shape != initial[name].shape:
            raise ValueError(f"cannot rewind: {name!r} has shape {tuple(tensor.shape)} but "
                             f"{tuple(initial[name].shape)} in the pretrained model")
        tensor.copy_(initial[name])
    apply_masks(model, masks)


def save_sparse_checkpoint(model, tokenizer, folder: str, masks: dict[str, torch.Tensor],
                           extra_json: dict[str, dict]) -> None:
    """A Hugging Face folder (pruned weights as plain zeros) with its masks.safetensors and JSON files, atomically:
    a killed stage never leaves a checkpoint without its masks."""
    with atomic_output_dir(folder) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        save_masks(masks, staging)
        for filename, content in extra_json.items():
            write_json(os.path.join(staging, filename), content)
