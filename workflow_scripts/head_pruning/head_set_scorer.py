"""Exact mini-dev scores of a BERT classifier with a set of one layer's heads switched off, computed cheaply.

AUBER asks for the score of many head sets of the same layer l (every reward is a score difference). Everything
below layer l, and layer l's per-head attention context, does not depend on the set, so it is computed once. A
set then costs: layer l's output projection of the masked context and its FFN, the layers above l, and, in the
last layer, only the [CLS] position's query, attention, output projection and FFN (nothing else reaches the
classifier; keys and values still need every position). Scores are cached per set for the whole search.

Rows are packed by exact length: every group of equal-length rows is a dense (rows, T, hidden) block with no
padding, so attention needs no mask and no work is spent on padding. The arithmetic is the model's own (the same
Linear, LayerNorm and activation modules, eval mode), so the scores equal a gated forward pass of the model up to
float rounding; `tests/head_pruning/test_head_set_scorer.py` compares them with `PrunedHeadsScorer`, the generic
reference, which is used for models this path does not support (`supports`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from workflow_scripts.core.surgery import encoder_layers
from workflow_scripts.head_pruning.layerwise import HeadSetScores, PrunedHeadsScorer


def supports(model) -> bool:
    """BERT-style sequence classifiers: `bert` with absolute positions and a pooler, a `classifier` on top."""
    base = getattr(model, "bert", None)
    return (base is not None and getattr(base, "pooler", None) is not None and hasattr(model, "classifier")
            and getattr(model.config, "position_embedding_type", "absolute") in (None, "absolute"))


@dataclass
class PackedRows:
    """Rows grouped by length. Token t of a group's row r sits at offset + r * length + t of the packed matrix."""
    offsets: list[int]
    rows: list[int]
    lengths: list[int]
    cls_positions: torch.Tensor  # (N,) packed index of each row's first token, in packed row order

    def blocks(self, packed: torch.Tensor):
        """(rows, T, width) views of each group of a (tokens, width) matrix."""
        for offset, rows, length in zip(self.offsets, self.rows, self.lengths):
            yield packed[offset:offset + rows * length].view(rows, length, -1)


def pack_rows(dataset) -> tuple[PackedRows, dict[str, torch.Tensor], np.ndarray, list[int]]:
    """Group a tokenized dataset by length: (layout, packed input_ids/token_type_ids, labels and dataset row of each
    packed row)."""
    lengths = np.array([len(ids) for ids in dataset["input_ids"]])
    order = np.argsort(-lengths, kind="stable")
    columns = {name: dataset[name] for name in ("input_ids", "token_type_ids") if name in dataset.column_names}
    labels = np.asarray(dataset["labels"])[order]
    offsets, rows, group_lengths, packed = [], [], [], {name: [] for name in columns}
    offset = 0
    for length in sorted(set(lengths.tolist()), reverse=True):
        members = [int(i) for i in order if lengths[i] == length]
        offsets.append(offset)
        rows.append(len(members))
        group_lengths.append(int(length))
        for name, values in columns.items():
            packed[name].extend(token for i in members for token in values[i])
        offset += len(members) * int(length)
    cls_positions = torch.tensor([o + r * t for o, n, t in zip(offsets, rows, group_lengths) for r in range(n)])
    tensors = {name: torch.tensor(values, dtype=torch.long) for name, values in packed.items()}
    return PackedRows(offsets, rows, group_lengths, cls_positions), tensors, labels, order.tolist()


def _heads(self_attention) -> tuple[int, int]:
    return self_attention.num_attention_heads, self_attention.attention_head_size


def attention_context(layer, hidden: torch.Tensor, layout: PackedRows, query_rows: torch.Tensor | None = None):
    """Per-head attention context (tokens, heads * head_size) of a packed layer input, before the output
    projection. With `query_rows` (packed indices of each row's first token) only those rows' queries are used:
    (rows, heads * head_size)."""
    self_attention = layer.attention.self
    num_heads, head_size = _heads(self_attention)
    if num_heads == 0:
        count = hidden.shape[0] if query_rows is None else len(query_rows)
        return hidden.new_zeros(count, 0)
    keys, values = self_attention.key(hidden), self_attention.value(hidden)
    queries = self_attention.query(hidden if query_rows is None else hidden[query_rows])
    contexts = []
    query_offset = 0
    for block_k, block_v, rows, length, offset in zip(layout.blocks(keys), layout.blocks(values), layout.rows,
                                                      layout.lengths, layout.offsets):
        if query_rows is None:
            block_q = queries[offset:offset + rows * length].view(rows, length, num_heads, head_size)
        else:
            block_q = queries[query_offset:query_offset + rows].view(rows, 1, num_heads, head_size)
            query_offset += rows
        split = (rows, length, num_heads, head_size)
        context = F.scaled_dot_product_attention(block_q.transpose(1, 2), block_k.view(split).transpose(1, 2),
                                                 block_v.view(split).transpose(1, 2))  # (rows, heads, Tq, size)
        contexts.append(context.transpose(1, 2).reshape(-1, num_heads * head_size))
    return torch.cat(contexts)


def layer_after_attention(layer, context: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """The rest of a BERT layer: output projection, add & norm, FFN, add & norm (dropout is off in eval)."""
    attention_output = layer.attention.output
    attended = attention_output.LayerNorm(attention_output.dense(context) + residual)
    intermediate = layer.intermediate.intermediate_act_fn(layer.intermediate.dense(attended))
    return layer.output.LayerNorm(layer.output.dense(intermediate) + attended)


class HeadSetScorer(HeadSetScores):
    """Head-set scores of `model` on `dataset` as `PrunedHeadsScorer` computes them, at a fraction of the cost. Use
    as a context manager (nothing is attached to the model)."""

    def __init__(self, model, layer_index: int, dataset, metric: str, cache_scores: bool = True):
        if not supports(model):
            raise ValueError(f"{type(model).__name__} is not a BERT classifier with absolute positions and a pooler")
        self.layers = encoder_layers(model)
        num_heads, self.head_size = _heads(self.layers[layer_index].attention.self)
        super().__init__(layer_index, num_heads, metric, cache_scores)
        self.model = model.eval()
        self.layout, self.inputs, self.labels, self.row_order = pack_rows(dataset)
        self._layer_input = self._context = None

    @property
    def is_last_layer(self) -> bool:
        return self.layer_index == len(self.layers) - 1

    def __enter__(self):
        self._prepare()
        return self

    def __exit__(self, *exc_info):
        self._layer_input = self._context = None

    @torch.inference_mode()
    def _prepare(self) -> None:
        """Layer l's input and its per-head context, computed once (only [CLS] rows if l is the last layer)."""
        device = next(self.model.parameters()).device
        embeddings = self.model.bert.embeddings
        blocks = []
        for offset, rows, length in zip(self.layout.offsets, self.layout.rows, self.layout.lengths):
            span = slice(offset, offset + rows * length)
            block_inputs = {name: values[span].view(rows, length).to(device) for name, values in self.inputs.items()}
            blocks.append(embeddings(**block_inputs).reshape(rows * length, -1))
        hidden = torch.cat(blocks)
        for layer in self.layers[:self.layer_index]:
            hidden = layer_after_attention(layer, attention_context(layer, hidden, self.layout), hidden)
        layer = self.layers[self.layer_index]
        query_rows = self.layout.cls_positions.to(device) if self.is_last_layer else None
        self._context = attention_context(layer, hidden, self.layout, query_rows)
        self._layer_input = hidden if query_rows is None else hidden[query_rows]

    @torch.inference_mode()
    def logits(self, pruned_positions) -> torch.Tensor:
        """(rows, labels) logits in packed row order (`row_order` maps them to dataset rows)."""
        context = self._context
        if pruned_positions:
            keep = torch.ones(self.num_heads, 1, dtype=context.dtype, device=context.device)
            keep[list(pruned_positions)] = 0.0
            context = (context.view(-1, self.num_heads, self.head_size) * keep).view(context.shape)
        hidden = layer_after_attention(self.layers[self.layer_index], context, self._layer_input)
        if not self.is_last_layer:
            for layer in self.layers[self.layer_index + 1:-1]:
                hidden = layer_after_attention(layer, attention_context(layer, hidden, self.layout), hidden)
            last, cls = self.layers[-1], self.layout.cls_positions.to(hidden.device)
            hidden = layer_after_attention(last, attention_context(last, hidden, self.layout, cls), hidden[cls])
        pooled = self.model.bert.pooler.activation(self.model.bert.pooler.dense(hidden))
        return self.model.classifier(pooled)

    def _ready(self) -> bool:
        return self._context is not None

    def _logits(self, pruned_positions: frozenset[int]) -> np.ndarray:
        return self.logits(pruned_positions).float().cpu().numpy()


def head_set_scorer(model, layer_index: int, dataset, metric: str, batch_size: int, collate_fn, device: str,
                    cache: bool = True):
    """The scorer a search uses: HeadSetScorer where the model is supported, the generic PrunedHeadsScorer otherwise;
    `cache=False` gives the naive reference (a full forward pass of the whole model for every score)."""
    if cache and supports(model):
        return HeadSetScorer(model.to(device), layer_index, dataset, metric)
    return PrunedHeadsScorer(model, layer_index, dataset, metric, batch_size, collate_fn, device,
                             cache_hidden_states=cache, cache_scores=cache)
