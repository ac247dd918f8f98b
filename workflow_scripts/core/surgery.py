"""Head and FFN-neuron surgery for BERT-family encoders (BERT, RoBERTa, ELECTRA) on transformers 5.

transformers 5 removed `prune_heads`, `head_mask` (silently ignored in forward) and `config.pruned_heads`,
so this module owns the surgery:

- Gates: multiplicative per-head / per-neuron gates attached with forward pre-hooks, no copied model code.
  `attach_head_gates` scales each head's output right before `attention.output.dense`; `attach_ffn_gates`
  scales each intermediate neuron (after the activation) right before the FFN `output.dense`. The gradient of
  a loss w.r.t. a head gate at 1.0 is Michel et al.'s (2019) head importance. Gates of 1.0 change nothing,
  bit for bit (x * 1.0 is exact in IEEE arithmetic).
- Physical pruning: `prune_heads` / `prune_ffn_neurons` slice the Linear layers. Ids always refer to the
  *original* numbering, so pruning twice works and already-pruned ids are ignored. A layer may lose all its
  heads (its attention block then adds only `output.dense.bias` before the residual LayerNorm) or all its
  FFN neurons.
- Checkpoints: `save_pruned` / `load_pruned`.

Checkpoint format (format_version 1). A pruned model is a standard Hugging Face folder whose config.json keeps
the *original* shape (num_attention_heads, intermediate_size) and carries one extra entry:

    "compression": {
      "format_version": 1,
      "heads_kept":       [null, [0, 2, 3], [], ...],   # per layer: kept original head ids, null = all
      "ffn_neurons_kept": [null, [0, 1, 5, ...], ...]   # per layer: kept original neuron ids, null = all
    }

Id lists are strictly increasing; the tensors in model.safetensors are the sliced ones, in that order. An
unpruned model has no "compression" entry (or null). The record lives on `model.config.compression` and is
updated by every prune, so even a plain `model.save_pretrained` writes a folder that `load_pruned` reads; but
plain `from_pretrained` cannot load a pruned folder (it raises on the size mismatch), which is intended. We
keep the record in config.json rather than a separate structure.json so that the folder cannot lose half of
its description when someone copies config + weights only.

A config entry "albert" records ALBERT's factorized embeddings and cross-layer sharing (core/albert.py): `load_pruned`
builds the model, applies them, then loads the file (which stores each shared tensor once) and so re-ties them. A
shared model cannot be pruned (its layers' tensors are one); a factorized one can.

A second config entry, "classifier_extra_layer": true, marks Bort's CoLA head (an extra hidden layer in front
of a sequence classifier's linear `classifier`): `add_classifier_layer` builds it and `load_pruned` rebuilds it
before loading, so such a folder loads wherever a plain classifier does.
"""

import contextlib
import logging
import os
import re
from pathlib import Path

import torch
import transformers
from torch import nn

from workflow_scripts.core.albert import albert_options, apply_albert, shared_parameter_names
from workflow_scripts.core.io_utils import load_safetensors, read_json, verify_checksums

logger = logging.getLogger(__name__)

COMPRESSION_FORMAT_VERSION = 1
GATE_FLAG = "surgery_gate_handle"  # attribute set on a Linear while a gate hook sits on its input


# ----------------------------------------------------------------------------------------------------------
# locating the encoder and reading the structure record


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The encoder's list of layers (`model.base_model.encoder.layer`) of a BERT-style model."""
    base_model = getattr(model, "base_model", model)
    layers = getattr(getattr(base_model, "encoder", None), "layer", None)
    if layers is None or not hasattr(layers[0], "attention") or not hasattr(layers[0], "intermediate"):
        raise ValueError(
            f"{type(model).__name__} is not a BERT-style encoder (expected base_model.encoder.layer[i] with "
            "attention.self / attention.output / intermediate / output); surgery supports BERT, RoBERTa, ELECTRA"
        )
    return layers


def _record(config) -> dict | None:
    return getattr(config, "compression", None)


def kept_head_ids(model: nn.Module, layer_index: int) -> list[int]:
    """Original ids of the heads still present in a layer, in the order their weights are stored."""
    record = _record(model.config)
    kept = record["heads_kept"][layer_index] if record else None
    return list(range(model.config.num_attention_heads)) if kept is None else list(kept)


def kept_neuron_ids(model: nn.Module, layer_index: int) -> list[int]:
    """Original ids of the FFN intermediate neurons still present in a layer, in storage order."""
    record = _record(model.config)
    kept = record["ffn_neurons_kept"][layer_index] if record else None
    return list(range(model.config.intermediate_size)) if kept is None else list(kept)


def _update_record(config, key: str, layer_index: int, kept_ids: list[int], original_count: int) -> None:
    record = _record(config) or {
        "format_version": COMPRESSION_FORMAT_VERSION,
        "heads_kept": [None] * config.num_hidden_layers,
        "ffn_neurons_kept": [None] * config.num_hidden_layers,
    }
    record[key][layer_index] = None if len(kept_ids) == original_count else list(kept_ids)
    config.compression = record


def model_structure(model: nn.Module) -> dict:
    """Heads kept per layer (original ids) and FFN size per layer, read from the modules and the record."""
    layers = encoder_layers(model)
    heads_kept_by_layer = [kept_head_ids(model, i) for i in range(len(layers))]
    ffn_size_by_layer = [layer.intermediate.dense.out_features for layer in layers]
    for i, layer in enumerate(layers):
        # the record and the modules must agree, or a checkpoint written now would not load back
        assert layer.attention.self.num_attention_heads == len(heads_kept_by_layer[i]), f"layer {i} heads"
        assert ffn_size_by_layer[i] == len(kept_neuron_ids(model, i)), f"layer {i} FFN size"
    return {
        "num_layers": len(layers),
        "original_num_attention_heads": model.config.num_attention_heads,
        "original_intermediate_size": model.config.intermediate_size,
        "head_size": layers[0].attention.self.attention_head_size,
        "heads_kept_by_layer": heads_kept_by_layer,
        "heads_per_layer": [len(h) for h in heads_kept_by_layer],
        "ffn_size_by_layer": ffn_size_by_layer,
    }


# ----------------------------------------------------------------------------------------------------------
# gates


class Gates(nn.Module):
    """One gate vector per encoder layer, multiplied into the input of one Linear per layer.

    `gates[l]` has shape (n_l,): n_l = heads (or FFN neurons) currently in layer l, so layers of different
    sizes work. `original_ids[l][j]` is the original id of gate j. Use as a context manager, or call
    `remove()`; `gates[l].grad` after backward is the importance of each head/neuron.
    `transform` (e.g. torch.sigmoid) maps the parameters to the gate values the hook multiplies in: the parameters
    are then logits (architecture parameters alpha: gate = sigmoid(alpha)); `values()` gives the gates.
    """

    def __init__(self, targets: list[nn.Linear], original_ids: list[list[int]], original_count: int,
                 group_size: int, init: float, requires_grad: bool, transform=None):
        super().__init__()
        self.transform = transform
        self.original_ids = original_ids
        self.original_count = original_count  # heads (neurons) per layer before any pruning
        self.group_size = group_size  # input features per gate: head_size for heads, 1 for neurons
        weight = targets[0].weight
        self.gates = nn.ParameterList(
            nn.Parameter(torch.full((len(ids),), float(init), dtype=weight.dtype, device=weight.device),
                         requires_grad=requires_grad)
            for ids in original_ids
        )
        self._targets = targets  # a plain list: the model's Linears must not become parameters of the gates
        for layer_index, target in enumerate(targets):
            if getattr(target, GATE_FLAG, None) is not None:
                raise RuntimeError(f"layer {layer_index}: a gate is already attached there; remove it first")
        for layer_index, target in enumerate(targets):
            setattr(target, GATE_FLAG, target.register_forward_pre_hook(self._hook_for(layer_index)))

    def _hook_for(self, layer_index: int):
        def scale_input(module, args):
            gate = self.value(layer_index)  # (n,)
            if gate.numel() == 0:
                return None  # empty layer: nothing to scale
            x = args[0]  # (B, T, n * group_size)
            x = x.unflatten(-1, (gate.numel(), self.group_size)) * gate.to(x.dtype)[:, None]  # (B, T, n, g)
            return (x.flatten(-2), *args[1:])
        return scale_input

    def value(self, layer_index: int) -> torch.Tensor:
        """The gate values of one layer (the parameters, or their transform)."""
        gate = self.gates[layer_index]
        return gate if self.transform is None else self.transform(gate)

    def values(self) -> list[torch.Tensor]:
        return [self.value(i) for i in range(len(self.gates))]

    def close(self, ids_by_layer: dict[int, list[int]]) -> None:
        """Set the gates of the given original ids to 0 (e.g. to simulate pruning them)."""
        with torch.no_grad():
            for layer_index, ids in ids_by_layer.items():
                present = self.original_ids[layer_index]
                for original_id in ids:
                    if original_id not in present:
                        raise ValueError(f"layer {layer_index}: id {original_id} has no gate (pruned or out of "
                                         f"range; present: {present})")
                    self.gates[layer_index][present.index(original_id)] = 0.0

    def to_matrix(self, per_layer: list[torch.Tensor] | None = None, fill: float = float("nan")) -> torch.Tensor:
        """(num_layers, original count) matrix of gate values (or of `per_layer`, e.g. grads), `fill` where
        pruned. Columns are original ids."""
        values = per_layer if per_layer is not None else [g.detach() for g in self.gates]
        matrix = torch.full((len(values), self.original_count), fill, dtype=torch.float64)
        for layer_index, (ids, v) in enumerate(zip(self.original_ids, values)):
            matrix[layer_index, ids] = v.detach().to(torch.float64).cpu()
        return matrix

    def remove(self) -> None:
        for target in self._targets:
            handle = getattr(target, GATE_FLAG, None)
            if handle is not None:
                handle.remove()
                setattr(target, GATE_FLAG, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.remove()


class HeadGates(Gates):
    """Gates on attention heads (group_size = head_size)."""


class FFNGates(Gates):
    """Gates on FFN intermediate neurons (group_size = 1)."""


def attach_head_gates(model: nn.Module, init: float = 1.0, requires_grad: bool = True, transform=None) -> HeadGates:
    """Gate every attention head's output before `attention.output.dense`; works for eager and sdpa."""
    layers = encoder_layers(model)
    return HeadGates(
        targets=[layer.attention.output.dense for layer in layers],
        original_ids=[kept_head_ids(model, i) for i in range(len(layers))],
        original_count=model.config.num_attention_heads,
        group_size=layers[0].attention.self.attention_head_size,
        init=init,
        requires_grad=requires_grad,
        transform=transform,
    )


def attach_ffn_gates(model: nn.Module, init: float = 1.0, requires_grad: bool = True, transform=None) -> FFNGates:
    """Gate every FFN intermediate neuron (after the activation) before the FFN `output.dense`."""
    layers = encoder_layers(model)
    return FFNGates(
        targets=[layer.output.dense for layer in layers],
        original_ids=[kept_neuron_ids(model, i) for i in range(len(layers))],
        original_count=model.config.intermediate_size,
        group_size=1,
        init=init,
        requires_grad=requires_grad,
        transform=transform,
    )


def remove_gates(model: nn.Module) -> None:
    """Remove every head and FFN gate hook from a model (when the Gates object is out of reach)."""
    for layer in encoder_layers(model):
        for target in (layer.attention.output.dense, layer.output.dense):
            handle = getattr(target, GATE_FLAG, None)
            if handle is not None:
                handle.remove()
                setattr(target, GATE_FLAG, None)


def _refuse_if_shared(model: nn.Module) -> None:
    # slicing one layer's Linear would give it its own tensors and leave the record saying they are shared
    sharing = albert_options(model.config).sharing
    if sharing != "none":
        raise ValueError(f"cannot prune a model whose layers share parameters (sharing {sharing!r}, "
                         "config.albert): pruning one layer would untie it from its group")


def _refuse_if_gated(*modules: nn.Module) -> None:
    # a pruned Linear is a new module: a hook on the old one would silently stop gating
    if any(getattr(m, GATE_FLAG, None) is not None for m in modules):
        raise RuntimeError("remove the gates (gates.remove() or remove_gates(model)) before pruning")


# ----------------------------------------------------------------------------------------------------------
# physical pruning


class EmptySelfAttention(nn.Module):
    """Self-attention of a layer whose heads were all pruned.

    BertSelfAttention reshapes with view(B, T, -1, head_size), which cannot infer -1 from a 0-element tensor,
    under eager and sdpa alike. This returns (B, T, 0) instead: `attention.output.dense` (in_features 0) maps
    it to its bias alone, so the block outputs LayerNorm(bias + residual). Attention weights: (B, 0, T, T)
    under eager attention, None otherwise (like sdpa).
    Used through `_empty_self_attention`, which also makes it an instance of the replaced class.
    """

    def __init__(self, config, attention_head_size: int):
        nn.Module.__init__(self)  # not the replaced class' __init__, which would build q/k/v
        self.config = config
        self.num_attention_heads = 0
        self.attention_head_size = attention_head_size
        self.all_head_size = 0

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs):
        seq_len = hidden_states.shape[-2]
        no_output = hidden_states.new_zeros(*hidden_states.shape[:-1], 0)  # (B, T, 0)
        if self.config._attn_implementation != "eager":
            return no_output, None
        return no_output, hidden_states.new_zeros(hidden_states.shape[0], 0, seq_len, seq_len)  # (B, 0, T, T)


def _empty_self_attention(self_attention: nn.Module) -> EmptySelfAttention:
    """An EmptySelfAttention that is also a BertSelfAttention (RobertaSelfAttention, ...): transformers
    records `output_attentions` by isinstance, so every layer keeps its entry in `outputs.attentions`."""
    replaced_class = type(self_attention)
    name = f"Empty{replaced_class.__name__}"
    if name not in globals():  # module-level, so that a pickled model finds the class again
        globals()[name] = type(name, (EmptySelfAttention, replaced_class), {"__module__": __name__})
    return globals()[name](self_attention.config, self_attention.attention_head_size)


def _slice_linear(linear: nn.Linear, keep_index: torch.Tensor, dim: int) -> nn.Linear:
    """New Linear keeping rows (dim=0, outputs) or columns (dim=1, inputs) `keep_index`; dtype, device and
    requires_grad preserved (transformers' prune_linear_layer drops the dtype)."""
    keep_index = keep_index.to(linear.weight.device)
    weight = linear.weight.detach().index_select(dim, keep_index).clone()  # (out', in')
    # built 1x1 on meta (no init work, no zero-element init warning), then given the sliced tensors
    sliced = nn.Linear(1, 1, bias=linear.bias is not None, device="meta")
    sliced.in_features, sliced.out_features = weight.shape[1], weight.shape[0]
    sliced.weight = nn.Parameter(weight, requires_grad=linear.weight.requires_grad)
    if linear.bias is not None:
        bias = linear.bias.detach().clone() if dim == 1 else linear.bias.detach()[keep_index].clone()
        sliced.bias = nn.Parameter(bias, requires_grad=linear.bias.requires_grad)
    return sliced


def _check_ids(ids, count: int, layer_index: int, what: str) -> None:
    bad = [i for i in ids if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < count]
    if bad:
        raise ValueError(f"layer {layer_index}: {what} ids {bad} are outside 0..{count - 1}")


def _check_layer_index(layer_index, num_layers: int) -> None:
    if not isinstance(layer_index, int) or not 0 <= layer_index < num_layers:
        raise ValueError(f"layer index {layer_index!r} is outside 0..{num_layers - 1}")


def _shrink_attention(attention: nn.Module, keep_positions: list[int]) -> None:
    """Keep heads at `keep_positions` (current storage positions) of one attention block."""
    self_attention = attention.self
    head_size = self_attention.attention_head_size
    # (len(keep) * head_size,): the feature columns of the kept heads, in storage order
    keep_index = torch.tensor([p * head_size + j for p in keep_positions for j in range(head_size)],
                              dtype=torch.long)
    if not keep_positions:
        attention.self = _empty_self_attention(self_attention)
    else:
        for name in ("query", "key", "value"):
            setattr(self_attention, name, _slice_linear(getattr(self_attention, name), keep_index, dim=0))
        self_attention.num_attention_heads = len(keep_positions)
        self_attention.all_head_size = len(keep_positions) * head_size
    attention.output.dense = _slice_linear(attention.output.dense, keep_index, dim=1)


def prune_heads(model: nn.Module, heads_to_prune: dict[int, list[int]]) -> None:
    """Remove attention heads in place. `heads_to_prune[layer]` lists *original* head ids; ids pruned
    earlier are ignored, so pruning in several rounds works. A layer may lose all its heads."""
    layers = encoder_layers(model)
    if heads_to_prune:
        _refuse_if_shared(model)
    for layer_index, head_ids in heads_to_prune.items():
        _check_layer_index(layer_index, len(layers))
        _check_ids(head_ids, model.config.num_attention_heads, layer_index, "head")
        attention = layers[layer_index].attention
        _refuse_if_gated(attention.output.dense)
        kept, pruned = kept_head_ids(model, layer_index), set(head_ids)
        still_kept = [h for h in kept if h not in pruned]
        if still_kept == kept:
            continue
        _shrink_attention(attention, [kept.index(h) for h in still_kept])
        _update_record(model.config, "heads_kept", layer_index, still_kept, model.config.num_attention_heads)


def prune_ffn_neurons(model: nn.Module, neurons_to_prune: dict[int, list[int]]) -> None:
    """Remove FFN intermediate neurons in place (rows of intermediate.dense, columns of output.dense).
    Ids are original ids; ids pruned earlier are ignored. A layer may lose all its neurons."""
    layers = encoder_layers(model)
    if neurons_to_prune:
        _refuse_if_shared(model)
    for layer_index, neuron_ids in neurons_to_prune.items():
        _check_layer_index(layer_index, len(layers))
        _check_ids(neuron_ids, model.config.intermediate_size, layer_index, "FFN neuron")
        layer = layers[layer_index]
        _refuse_if_gated(layer.output.dense)
        kept, pruned = kept_neuron_ids(model, layer_index), set(neuron_ids)
        still_kept = [n for n in kept if n not in pruned]
        if still_kept == kept:
            continue
        keep_index = torch.tensor([i for i, n in enumerate(kept) if n not in pruned], dtype=torch.long)
        layer.intermediate.dense = _slice_linear(layer.intermediate.dense, keep_index, dim=0)
        layer.output.dense = _slice_linear(layer.output.dense, keep_index, dim=1)
        _update_record(model.config, "ffn_neurons_kept", layer_index, still_kept, model.config.intermediate_size)


# ----------------------------------------------------------------------------------------------------------
# checkpoints


def validate_compression(config) -> None:
    """Raise ValueError if config.compression is malformed: wrong length, ids out of range, duplicated or
    not increasing."""
    record = _record(config)
    if record is None:
        return
    if not isinstance(record, dict) or record.get("format_version") != COMPRESSION_FORMAT_VERSION:
        raise ValueError(f"config.compression: expected a dict with format_version {COMPRESSION_FORMAT_VERSION}, "
                         f"got {record!r:.200}")
    for key, count, what in (("heads_kept", config.num_attention_heads, "head"),
                             ("ffn_neurons_kept", config.intermediate_size, "FFN neuron")):
        per_layer = record.get(key)
        if not isinstance(per_layer, list) or len(per_layer) != config.num_hidden_layers:
            raise ValueError(f"config.compression.{key} must list {config.num_hidden_layers} layers")
        for layer_index, ids in enumerate(per_layer):
            if ids is None:
                continue
            if not isinstance(ids, list):
                raise ValueError(f"layer {layer_index}: config.compression.{key} must be a list or null")
            _check_ids(ids, count, layer_index, f"compression.{key} {what}")
            if any(a >= b for a, b in zip(ids, ids[1:])):
                raise ValueError(f"layer {layer_index}: config.compression.{key} ids {ids} must be strictly "
                                 "increasing (duplicated or reordered)")


def apply_compression(model: nn.Module, record: dict) -> None:
    """Shrink a freshly built full-size model to the structure in `record` (a config.compression dict)."""
    prune_heads(model, {
        i: sorted(set(range(model.config.num_attention_heads)) - set(kept))
        for i, kept in enumerate(record["heads_kept"]) if kept is not None
    })
    prune_ffn_neurons(model, {
        i: sorted(set(range(model.config.intermediate_size)) - set(kept))
        for i, kept in enumerate(record["ffn_neurons_kept"]) if kept is not None
    })


def save_pruned(model: nn.Module, directory: str | os.PathLike, tokenizer=None) -> Path:
    """Write a Hugging Face folder (config.json with the compression record, model.safetensors, tokenizer
    files) atomically: `directory` is never a partial folder, and an existing one is replaced."""
    from workflow_scripts.core.io_utils import atomic_output_dir

    model_structure(model)  # asserts record and modules agree
    with atomic_output_dir(str(directory)) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
    return Path(directory)


EXTRA_CLASSIFIER_LAYER = "classifier_extra_layer"


def add_classifier_layer(model: nn.Module, dropout: float) -> None:
    """Put a Linear(hidden, hidden) -> tanh -> dropout in front of the model's linear `classifier` (Bort's head for
    CoLA) and record it in the config, so that the folder `save_pretrained` writes loads back through `load_pruned`."""
    classifier = getattr(model, "classifier", None)
    if not isinstance(classifier, nn.Linear):
        raise ValueError(f"{type(model).__name__} has no linear `classifier` to put an extra layer in front of "
                         f"(it has {type(classifier).__name__})")
    hidden = classifier.in_features
    model.classifier = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Dropout(dropout), classifier)
    setattr(model.config, EXTRA_CLASSIFIER_LAYER, True)


def _resolve_model_class(config, model_class):
    if model_class is not None:
        return model_class
    architectures = getattr(config, "architectures", None) or []
    # only classes that ship with transformers: never remote code
    resolved = getattr(transformers, architectures[0], None) if architectures else transformers.AutoModel
    if resolved is None or not isinstance(resolved, type) or not issubclass(resolved, transformers.PreTrainedModel):
        raise ValueError(f"config.architectures {architectures} names no transformers model class; "
                         "pass model_class=")
    return resolved


def _is_auto_class(model_class) -> bool:
    return hasattr(model_class, "_model_mapping")


def _read_safetensors(directory: Path) -> dict[str, torch.Tensor]:
    single = directory / "model.safetensors"
    if single.exists():
        return load_safetensors(single)
    index = directory / "model.safetensors.index.json"
    if not index.exists():
        raise FileNotFoundError(f"{directory}: no model.safetensors (pickled weights are not loaded)")
    shard_names = sorted(set(read_json(str(index))["weight_map"].values()))
    return {k: v for name in shard_names for k, v in load_safetensors(directory / name).items()}


def _align_base_prefix(saved: dict, model: nn.Module) -> dict:
    """Add or strip `bert.` / `roberta.` so a base-model checkpoint loads into a task model and back."""
    prefix = model.base_model_prefix + "."
    model_has = any(k.startswith(prefix) for k in model.state_dict())
    saved_has = any(k.startswith(prefix) for k in saved)
    if model_has and not saved_has:
        return {prefix + k: v for k, v in saved.items()}
    if saved_has and not model_has:
        return {k[len(prefix):]: v for k, v in saved.items() if k.startswith(prefix)}
    return saved


def _layer_of(key: str) -> str:
    match = re.search(r"\.layer\.(\d+)\.", key)
    return f"layer {match.group(1)}" if match else "outside the encoder layers"


def _describe_layer(model: nn.Module, key: str) -> str:
    match = re.search(r"\.layer\.(\d+)\.", key)
    if not match:
        return ""
    i = int(match.group(1))
    return (f"; the recorded structure of layer {i} keeps heads {kept_head_ids(model, i)} of "
            f"{model.config.num_attention_heads} and {len(kept_neuron_ids(model, i))} of "
            f"{model.config.intermediate_size} FFN neurons")


def _check_tensors(saved: dict, model: nn.Module, same_class: bool) -> None:
    expected = model.state_dict()
    for key, tensor in saved.items():
        if key in expected and tuple(tensor.shape) != tuple(expected[key].shape):
            raise ValueError(f"{_layer_of(key)}: tensor '{key}' has shape {tuple(tensor.shape)} in the checkpoint "
                             f"but {tuple(expected[key].shape)} is expected{_describe_layer(model, key)}")
    tied = set(getattr(model, "all_tied_weights_keys", {}) or {})  # stored once, under the source key
    tied |= set(shared_parameter_names(model))  # cross-layer sharing: stored under the group's first layer
    for key in expected.keys() - saved.keys() - tied:
        in_body = ".encoder." in f".{key}" or ".embeddings." in f".{key}"
        if same_class or in_body:
            raise ValueError(f"{_layer_of(key)}: tensor '{key}' is missing from the checkpoint"
                             f"{_describe_layer(model, key)}")
        logger.warning("%s: not in the checkpoint, left newly initialized", key)
    unexpected = saved.keys() - expected.keys()
    if unexpected and same_class:
        key = sorted(unexpected)[0]
        raise ValueError(f"{_layer_of(key)}: tensor '{key}' is in the checkpoint but not in the model "
                         f"({len(unexpected)} such tensors){_describe_layer(model, key)}")


def load_pruned(directory: str | os.PathLike, model_class=None, attn_implementation: str | None = None,
                **config_overrides) -> nn.Module:
    """Load a folder written by `save_pruned` (or any standard HF folder) in eval mode.

    model_class: a transformers model class or Auto class; default: config.architectures[0].
    A pruned or ALBERT-style folder (config.albert: factorized embeddings, cross-layer sharing) is built from its
    config, given the recorded options (sharing re-tied), shrunk to the recorded structure, and loaded strictly from
    model.safetensors; with a different model_class than the saved one (e.g. MaskedLM -> SequenceClassification)
    the encoder must still load completely, task-head tensors missing from the file stay newly initialized
    and those of the old head are dropped. Shapes disagreeing with the record raise ValueError naming the
    layer and tensor. An unpruned folder goes through `from_pretrained`. Never uses remote code or
    ignore_mismatched_sizes.
    """
    directory = Path(directory)
    verify_checksums(directory)  # a truncated or altered file raises here, naming it
    config = transformers.AutoConfig.from_pretrained(directory, trust_remote_code=False, **config_overrides)
    model_class = _resolve_model_class(config, model_class)
    build_kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    if _is_auto_class(model_class):
        build_kwargs["trust_remote_code"] = False
    record = _record(config)
    extra_layer = getattr(config, EXTRA_CLASSIFIER_LAYER, False)
    albert = albert_options(config)  # raises on a malformed record
    if record is None and not extra_layer and albert.is_default:
        return model_class.from_pretrained(directory, config=config, **build_kwargs)
    if record is not None:
        validate_compression(config)
    config.compression = None  # the model is built full-size, then shrunk (which rewrites the record)
    if not albert.is_default:
        config.albert = None  # ... and plain, then factorized and shared (which rewrites this record)
    if _is_auto_class(model_class):
        model = model_class.from_config(config, **build_kwargs)
    else:
        model = model_class._from_config(config, **build_kwargs)
    apply_albert(model, albert)
    if record is not None:
        apply_compression(model, record)
    if extra_layer and hasattr(model, "classifier"):  # an MLM or base class built from it has no classifier
        add_classifier_layer(model, config.classifier_dropout or config.hidden_dropout_prob)
    saved = _align_base_prefix(_read_safetensors(directory), model)
    saved_architectures = getattr(config, "architectures", None) or []
    same_class = not saved_architectures or saved_architectures[0] == type(model).__name__
    _check_tensors(saved, model, same_class)
    model.load_state_dict({k: v for k, v in saved.items() if k in model.state_dict()}, strict=False)
    return model.eval()


@contextlib.contextmanager
def gated(model: nn.Module, heads: bool = True, ffn: bool = False, init: float = 1.0):
    """`with gated(model) as (head_gates, ffn_gates): ...` attaches gates and removes them on exit."""
    head_gates = attach_head_gates(model, init) if heads else None
    try:
        ffn_gates = attach_ffn_gates(model, init) if ffn else None
        try:
            yield head_gates, ffn_gates
        finally:
            if ffn_gates is not None:
                ffn_gates.remove()
    finally:
        if head_gates is not None:
            head_gates.remove()
