"""ALBERT's two parameter reductions (Lan et al. 2020) as options of the BERT-family models transformers builds
(BERT, RoBERTa; ELECTRA for sharing), applied after construction. transformers 5 has no such option for BERT, and
its AlbertModel has neither RoBERTa's embeddings nor sharing of the attention or the FFN alone.

    model = AutoModelForMaskedLM.from_config(config)
    apply_albert(model, AlbertOptions(embedding_size=128, sharing="all", group_size=2))
    model.save_pretrained(folder)                     # one copy of each shared tensor
    model = load_pruned(folder, AutoModelForMaskedLM)  # core/surgery.py: rebuilt, factorized and re-tied, one call

Factorized embeddings (embedding size E): the word, position and token-type tables and their LayerNorm have width E,
and a Linear E -> H (`embeddings.projection`) follows them, so the embeddings hold V x E + E x H parameters instead
of V x H. A masked-LM head becomes ALBERT's: its transform maps H -> E (LayerNorm at width E) and its decoder E -> V
is tied to the E-wide word embeddings.

Cross-layer sharing (mode, group size M): layers 0..M-1 use layer 0's tensors, M..2M-1 layer M's, ...
(M = None: every layer uses layer 0's). Mode `all` shares the whole layer, `attention` the self-attention with its
output projection and LayerNorm, `ffn` the two feed-forward projections with their LayerNorm. The layers stay
distinct modules whose Parameters are the same objects, so per-layer hooks (surgery's gates) still see one layer
each; one optimizer step moves every layer of a group. Sharing shrinks parameters, not FLOPs or latency: every
layer is still applied (core/counters.py).

Checkpoint record (config.json), next to surgery's "compression":

    "albert": {"format_version": 1, "embedding_size": 128, "sharing": "all", "group_size": 2}

safetensors refuses aliased tensors, so each shared tensor is written once, under its group's first layer: the
shared names are declared to transformers' save_pretrained as tied keys of the base model, which drops them.
`load_pruned` (and so `load_for_classification`) reads the record, builds the model, applies the options again and
loads the file, which re-ties. Plain `from_pretrained` cannot load a factorized folder (shapes differ) and must not
be used on a shared one (it would leave the dropped tensors newly initialized).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from workflow_scripts.core.sharing import SHARED_BLOCKS, SHARING_MODES, sharing_owner

ALBERT_FORMAT_VERSION = 1
RECORD_KEY = "albert"
# The submodules of a BERT layer that make up each shareable block
BLOCK_MODULES = {"attention": ("attention",), "ffn": ("intermediate", "output")}


@dataclass(frozen=True)
class AlbertOptions:
    """Factorized embedding size (None: the hidden size) and cross-layer sharing (mode, layers per group; None: one
    group of every layer)."""

    embedding_size: int | None = None
    sharing: str = "none"
    group_size: int | None = None

    def __post_init__(self):
        if self.sharing not in SHARING_MODES:
            raise ValueError(f"sharing must be one of {', '.join(SHARING_MODES)}, got {self.sharing!r}")
        for name in ("embedding_size", "group_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")

    @property
    def is_default(self) -> bool:
        return self.embedding_size is None and self.sharing == "none"

    def record(self) -> dict:
        return {"format_version": ALBERT_FORMAT_VERSION, "embedding_size": self.embedding_size,
                "sharing": self.sharing, "group_size": self.group_size}


def albert_options(config) -> AlbertOptions:
    """The options recorded in a model config (the defaults when it has no record); ValueError if malformed."""
    record = getattr(config, RECORD_KEY, None)
    if record is None:
        return AlbertOptions()
    if not isinstance(record, dict) or record.get("format_version") != ALBERT_FORMAT_VERSION:
        raise ValueError(f"config.{RECORD_KEY}: expected a dict with format_version {ALBERT_FORMAT_VERSION}, "
                         f"got {record!r:.200}")
    unknown = set(record) - {"format_version", "embedding_size", "sharing", "group_size"}
    if unknown:
        raise ValueError(f"config.{RECORD_KEY}: unknown entries {sorted(unknown)}")
    try:
        return AlbertOptions(record.get("embedding_size"), record.get("sharing", "none"), record.get("group_size"))
    except ValueError as error:
        raise ValueError(f"config.{RECORD_KEY}: {error}") from None


def apply_albert(model: nn.Module, options: AlbertOptions) -> nn.Module:
    """Factorize the embeddings and share layers in place, and record the options in model.config (nothing
    happens with the default options). New tensors are initialized as transformers initializes BERT's, from the
    global torch RNG."""
    if options.is_default:
        return model
    if not albert_options(model.config).is_default:
        raise ValueError(f"{type(model).__name__} already has ALBERT options ({model.config.albert}); build it "
                         "anew to apply others")
    if options.embedding_size is not None and options.embedding_size != model.config.hidden_size:
        factorize_embeddings(model, options.embedding_size)
    if options.sharing != "none":
        share_layers(model, options.sharing, options.group_size)
    setattr(model.config, RECORD_KEY, options.record())
    return model


# ----------------------------------------------------------------------------------------------------------
# factorized embeddings


class ProjectedEmbeddings:
    """Mixin over a BERT-style embeddings class: its output (B, L, E) projected to the hidden size (B, L, H)."""

    def forward(self, *args, **kwargs) -> torch.Tensor:
        return self.projection(super().forward(*args, **kwargs))


def _factorized_class(embeddings_class: type) -> type:
    """ProjectedEmbeddings over the given class, which it stays an instance of (transformers' weight init and
    output recording look modules up by class)."""
    name = f"Factorized{embeddings_class.__name__}"
    if name not in globals():  # module-level, so that a pickled model finds the class again
        globals()[name] = type(name, (ProjectedEmbeddings, embeddings_class), {"__module__": __name__})
    return globals()[name]


def _initialize(module: nn.Module, std: float) -> None:
    """transformers' BERT initialization: normal(0, initializer_range) weights, zero biases and padding rows,
    LayerNorm at 1 and 0."""
    with torch.no_grad():
        for child in module.modules():
            if isinstance(child, (nn.Linear, nn.Embedding)):
                child.weight.normal_(0.0, std)
            if isinstance(child, nn.Embedding) and child.padding_idx is not None:
                child.weight[child.padding_idx].zero_()
            if isinstance(child, (nn.Linear, nn.LayerNorm)) and child.bias is not None:
                child.bias.zero_()
            if isinstance(child, nn.LayerNorm):
                child.weight.fill_(1.0)


def factorize_embeddings(model: nn.Module, embedding_size: int) -> None:
    """Embeddings of width E followed by a Linear E -> H, and a masked-LM head E -> V tied to them."""
    config = model.config
    base = model.base_model
    embeddings = base.embeddings
    if hasattr(config, "embedding_size"):  # ELECTRA, ALBERT: the family factorizes by its own config
        raise ValueError(f"{type(model).__name__} has its own embedding_size in its config: set that instead")
    if not all(hasattr(embeddings, name) for name in ("word_embeddings", "position_embeddings",
                                                      "token_type_embeddings", "LayerNorm")):
        raise ValueError(f"{type(model).__name__}: factorized embeddings need BERT-style embeddings (word, position "
                         "and token-type tables and a LayerNorm)")
    narrow_config = copy.deepcopy(config)
    narrow_config.hidden_size = embedding_size
    reference = embeddings.word_embeddings.weight
    factorized = _factorized_class(type(embeddings))(narrow_config)
    factorized.projection = nn.Linear(embedding_size, config.hidden_size)
    _initialize(factorized, config.initializer_range)
    base.embeddings = factorized.to(device=reference.device, dtype=reference.dtype).train(embeddings.training)
    _narrow_mlm_head(model, embedding_size)


def _mlm_prediction_head(model: nn.Module) -> nn.Module | None:
    """BERT's cls.predictions or RoBERTa's lm_head (dense, LayerNorm, decoder, bias), or None (no MLM head)."""
    predictions = getattr(getattr(model, "cls", None), "predictions", None)
    return predictions if predictions is not None else getattr(model, "lm_head", None)


def _narrow_mlm_head(model: nn.Module, embedding_size: int) -> None:
    head = _mlm_prediction_head(model)
    if head is None:  # a classifier or the bare encoder
        return
    config = model.config
    transform = getattr(head, "transform", head)  # BERT: head.transform.{dense, LayerNorm}; RoBERTa: head.*
    norm_name = "LayerNorm" if hasattr(transform, "LayerNorm") else "layer_norm"
    reference = head.decoder.weight
    transform.dense = nn.Linear(config.hidden_size, embedding_size)
    setattr(transform, norm_name, nn.LayerNorm(embedding_size, eps=config.layer_norm_eps))
    head.decoder = nn.Linear(embedding_size, config.vocab_size)
    for module in (transform.dense, getattr(transform, norm_name), head.decoder):
        _initialize(module, config.initializer_range)
        module.to(device=reference.device, dtype=reference.dtype).train(head.training)
    head.decoder.bias = head.bias  # as transformers ties them
    if getattr(config, "tie_word_embeddings", True):
        head.decoder.weight = model.base_model.embeddings.word_embeddings.weight  # (V, E)


# ----------------------------------------------------------------------------------------------------------
# cross-layer sharing


def _shared_tensors(layers, sharing: str, group_size: int | None):
    """(layer index, its group's first layer, child module name, parameter name under it) of every tensor a layer
    takes from its group's first layer."""
    for index in range(len(layers)):
        owner = sharing_owner(index, group_size)
        if owner == index:
            continue
        for block in SHARED_BLOCKS[sharing]:
            for child in BLOCK_MODULES[block]:
                for name, _ in getattr(layers[owner], child).named_parameters():
                    yield index, owner, child, name


def share_layers(model: nn.Module, sharing: str, group_size: int | None) -> dict[str, str]:
    """Tie the `sharing` blocks of every layer to its group's first layer (the first layer's tensors are kept).
    Returns {target: source} names under base_model, which are also declared to save_pretrained as tied keys, so
    that each shared tensor is written once."""
    from workflow_scripts.core.surgery import encoder_layers

    if sharing not in SHARED_BLOCKS or sharing == "none":
        raise ValueError(f"sharing must be one of {', '.join(SHARING_MODES[1:])}, got {sharing!r}")
    if getattr(model.config, "compression", None):
        raise ValueError("cannot share the layers of a pruned model (config.compression): their heads and FFN "
                         "neurons differ from layer to layer")
    layers = encoder_layers(model)
    pairs = {}
    for index, owner, child, name in list(_shared_tensors(layers, sharing, group_size)):
        module_name, _, parameter_name = name.rpartition(".")
        target = getattr(layers[index], child).get_submodule(module_name)
        setattr(target, parameter_name, getattr(layers[owner], child).get_parameter(name))
        pairs[f"encoder.layer.{index}.{child}.{name}"] = f"encoder.layer.{owner}.{child}.{name}"
    base = model.base_model
    # transformers' save_pretrained drops the targets of tied keys from the file (safetensors refuses aliases)
    base._tied_weights_keys = {**(getattr(base, "_tied_weights_keys", None) or {}), **pairs}
    return pairs


def shared_parameter_names(model: nn.Module) -> dict[str, str]:
    """{target: source}: the state-dict names (of `model`, prefix included) a checkpoint stores under another
    layer's name, per the model's recorded options."""
    options = albert_options(model.config)
    if options.sharing == "none":
        return {}
    base = model.base_model
    prefix = "" if base is model else f"{model.base_model_prefix}."
    return {f"{prefix}encoder.layer.{index}.{child}.{name}": f"{prefix}encoder.layer.{owner}.{child}.{name}"
            for index, owner, child, name in _shared_tensors(base.encoder.layer, options.sharing, options.group_size)}
