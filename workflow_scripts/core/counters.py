"""Parameter and FLOP counts of BERT-family encoders, pruned or not, built or described by an Architecture.

Parameters of a built model are the sizes of its real tensors (tied tensors counted once), split into
  embedding  base_model.embeddings, plus the factorized-embedding projection when there is one
             (ALBERT's encoder.embedding_hidden_mapping_in, ELECTRA's embeddings_project; core/albert.py's
             embeddings.projection is inside the embeddings)
  encoder    base_model.encoder, less that projection; a tensor shared by several layers (cross-layer sharing,
             core/albert.py) counts once
  other      the remainder: pooler and task head (classifier, MLM head transform and bias, ...)

FLOPs of one forward pass at (batch_size, seq_len), 2 per multiply-accumulate of every matrix product:
  counted      per layer the Q, K, V and attention-output projections, Q K^T, attention-probs x V, the two
               FFN projections; the factorized-embedding projection (E -> hidden) when present; the pooler
               (on the first token) when the model has one.
  not counted  bias additions, softmax, attention-mask addition, scaling, LayerNorm, GELU, residual adds,
               dropout, the embedding lookups and their sum, and the task head (classifier / MLM head).
               The classification heads are at most 2*B*hidden*(hidden + labels), noise next to the encoder.
All sequences are taken at full length seq_len (no padding savings). This is the convention of
torch.utils.flop_counter.FlopCounterMode, which tests use as the reference. Every layer is counted as it is
applied: cross-layer sharing shrinks the parameters, not the FLOPs (nor the latency).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the architecture arithmetic runs in the Snakefile (Bort's search plan): no torch import there
    from torch import nn

from workflow_scripts.core.sharing import SHARED_BLOCKS, SHARING_MODES, sharing_owner  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class Architecture:
    """Shape of a BERT-style encoder. Per-layer tuples override `heads` / `intermediate` layer by layer
    (pruned models); `heads` and `hidden` still fix the head size (hidden // heads) unless head_size is given."""

    depth: int
    heads: int
    hidden: int
    intermediate: int
    vocab: int = 30522
    max_positions: int = 512
    type_vocab: int = 2
    embedding_size: int | None = None  # ALBERT/ELECTRA-style factorized embeddings; None = hidden
    heads_per_layer: tuple[int, ...] | None = None
    ffn_per_layer: tuple[int, ...] | None = None
    head_size: int | None = None
    pooler: bool = True
    num_labels: int = 0  # BERT-style linear classifier on the pooled output; 0 = no task head
    sharing: str = "none"  # cross-layer parameter sharing: none, all, attention or ffn (SHARED_BLOCKS)
    sharing_group: int | None = None  # layers per sharing group (M); None = every layer in one group

    def shares(self, layer_index: int, block: str) -> bool:
        """Whether a layer's `block` ("attention" or "ffn") is another layer's tensors (counted there)."""
        return (block in SHARED_BLOCKS[self.sharing]
                and sharing_owner(layer_index, self.sharing_group) != layer_index)

    def layer_heads(self) -> list[int]:
        return list(self.heads_per_layer) if self.heads_per_layer is not None else [self.heads] * self.depth

    def layer_ffn(self) -> list[int]:
        return list(self.ffn_per_layer) if self.ffn_per_layer is not None else [self.intermediate] * self.depth

    def attention_width(self, heads: int) -> int:
        return heads * (self.head_size or self.hidden // self.heads)


def architecture_of(model: nn.Module) -> Architecture:
    """The Architecture of a built BERT/RoBERTa/ELECTRA model, pruned or not (task head not included)."""
    config = model.config
    from workflow_scripts.core.albert import albert_options
    from workflow_scripts.core.surgery import model_structure

    structure = model_structure(model)
    options = albert_options(config)
    return Architecture(
        depth=structure["num_layers"],
        heads=config.num_attention_heads,
        hidden=config.hidden_size,
        intermediate=config.intermediate_size,
        vocab=config.vocab_size,
        max_positions=config.max_position_embeddings,
        type_vocab=config.type_vocab_size,
        embedding_size=options.embedding_size or getattr(config, "embedding_size", None),
        heads_per_layer=tuple(structure["heads_per_layer"]),
        ffn_per_layer=tuple(structure["ffn_size_by_layer"]),
        head_size=structure["head_size"],
        pooler=getattr(model.base_model, "pooler", None) is not None,
        sharing=options.sharing,
        sharing_group=options.group_size,
    )


# ----------------------------------------------------------------------------------------------------------
# parameters


def _embedding_projection(base_model: nn.Module) -> nn.Module | None:
    encoder = getattr(base_model, "encoder", None)
    projection = getattr(encoder, "embedding_hidden_mapping_in", None)  # ALBERT
    return projection if projection is not None else getattr(base_model, "embeddings_project", None)  # ELECTRA


def _unique_parameters(*modules: nn.Module | None) -> dict[int, int]:
    """id(parameter) -> numel, each shared parameter once."""
    return {id(p): p.numel() for m in modules if m is not None for p in m.parameters()}


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Parameters of a built model: total, embedding, encoder, other (pooler + task head)."""
    base_model = getattr(model, "base_model", model)
    total = _unique_parameters(model)
    embedding = _unique_parameters(base_model.embeddings, _embedding_projection(base_model))
    encoder = {k: v for k, v in _unique_parameters(base_model.encoder).items() if k not in embedding}
    counts = {"total": sum(total.values()), "embedding": sum(embedding.values()), "encoder": sum(encoder.values())}
    counts["other"] = counts["total"] - counts["embedding"] - counts["encoder"]
    return counts


def architecture_parameters(arch: Architecture) -> dict[str, int]:
    """Parameters of an Architecture without building it; same keys as count_parameters. `other` holds the
    pooler and the optional BERT-style classifier (num_labels); other heads are not modelled here."""
    width = arch.embedding_size or arch.hidden
    embedding = (arch.vocab + arch.max_positions + arch.type_vocab) * width + 2 * width  # tables + LayerNorm
    if width != arch.hidden:
        embedding += width * arch.hidden + arch.hidden  # E -> hidden projection
    encoder = sum((0 if arch.shares(index, "attention") else _attention_parameters(arch, heads))
                  + (0 if arch.shares(index, "ffn") else _ffn_parameters(arch, ffn))
                  for index, (heads, ffn) in enumerate(zip(arch.layer_heads(), arch.layer_ffn())))
    other = (arch.hidden * arch.hidden + arch.hidden) if arch.pooler else 0
    other += arch.hidden * arch.num_labels + arch.num_labels
    return {"total": embedding + encoder + other, "embedding": embedding, "encoder": encoder, "other": other}


def _attention_parameters(arch: Architecture, heads: int) -> int:
    hidden, width = arch.hidden, arch.attention_width(heads)
    return 3 * (hidden * width + width) + (width * hidden + hidden) + 2 * hidden  # QKV, output, LayerNorm


def _ffn_parameters(arch: Architecture, ffn: int) -> int:
    return (arch.hidden * ffn + ffn) + (ffn * arch.hidden + arch.hidden) + 2 * arch.hidden  # in, out, LayerNorm


# ----------------------------------------------------------------------------------------------------------
# FLOPs


def architecture_flops(arch: Architecture, batch_size: int, seq_len: int) -> dict:
    """FLOPs of one forward pass (see the module docstring for what is counted): total, embedding,
    encoder, pooler, encoder_by_layer."""
    tokens = batch_size * seq_len
    width = arch.embedding_size or arch.hidden
    embedding = 2 * tokens * width * arch.hidden if width != arch.hidden else 0
    by_layer = [_layer_flops(arch, h, ffn, batch_size, seq_len) for h, ffn in zip(arch.layer_heads(), arch.layer_ffn())]
    pooler = 2 * batch_size * arch.hidden * arch.hidden if arch.pooler else 0  # first token only
    encoder = sum(by_layer)
    return {"total": embedding + encoder + pooler, "embedding": embedding, "encoder": encoder,
            "pooler": pooler, "encoder_by_layer": by_layer}


def _layer_flops(arch: Architecture, heads: int, ffn: int, batch_size: int, seq_len: int) -> int:
    tokens, hidden, width = batch_size * seq_len, arch.hidden, arch.attention_width(heads)
    projections = 2 * tokens * hidden * width * 4  # Q, K, V: hidden -> width; output: width -> hidden
    scores_and_mix = 2 * 2 * batch_size * seq_len * seq_len * width  # Q K^T and probs x V, summed over heads
    feed_forward = 2 * tokens * hidden * ffn * 2
    return projections + scores_and_mix + feed_forward


def count_flops(model: nn.Module, batch_size: int, seq_len: int) -> dict:
    """FLOPs of one forward pass of a built (pruned or unpruned) model; task head not counted."""
    return architecture_flops(architecture_of(model), batch_size, seq_len)

