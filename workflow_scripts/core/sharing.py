"""ALBERT's cross-layer parameter sharing, as data: what the counters (in the Snakefile, without torch) and the
model surgery (core/albert.py) both read. Its own module so that the stages loading a checkpoint do not depend on
the counters' code."""
from __future__ import annotations

# Cross-layer parameter sharing (ALBERT, Lan et al. 2020): which sub-blocks of a layer the layers of a group share.
# "attention" is the self-attention and its output projection and LayerNorm; "ffn" the two feed-forward
# projections and their LayerNorm.
SHARED_BLOCKS = {"none": (), "all": ("attention", "ffn"), "attention": ("attention",), "ffn": ("ffn",)}
SHARING_MODES = tuple(SHARED_BLOCKS)


def sharing_owner(layer_index: int, group_size: int | None) -> int:
    """The layer whose tensors layer_index uses under sharing in groups of group_size consecutive layers (layers
    0..M-1 share layer 0's, M..2M-1 layer M's, ...); None: one group of every layer."""
    return layer_index - layer_index % group_size if group_size else 0
