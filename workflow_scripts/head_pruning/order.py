"""The order in which a chain prunes the encoder's layers. Pure Python: the Snakefile reads it to build the chains'
DAG, and every snakemake call (each `dvc repro` stage is one) would otherwise import torch for it."""
from __future__ import annotations

LAYER_ORDERS = ("bottom_up", "top_down")


def processing_order(num_layers: int, layer_order: str) -> list[int]:
    """Layer indices in the order they are pruned: bottom_up (paper) or top_down (AUBER-Reverse)."""
    if layer_order not in LAYER_ORDERS:
        raise ValueError(f"layer_order must be one of {LAYER_ORDERS}, got {layer_order!r}")
    layers = list(range(num_layers))
    return layers if layer_order == "bottom_up" else layers[::-1]
