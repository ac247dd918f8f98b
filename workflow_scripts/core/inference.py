"""Batches of a tokenized dataset and a classifier's logits over them: what training and evaluation share. Kept
apart from the training loop so that evaluation does not depend on (and rerun with) training code."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm


def make_loader(dataset, batch_size: int, collate_fn, shuffle: bool, seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate_fn, generator=generator)


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
