"""The teacher's outputs on every training row, computed once per stage and read in every epoch.

A distillation stage (and the architecture search) runs the frozen teacher in eval mode on the same rows every
epoch: its logits, hidden states and attention scores never change, so they are computed once, row by row at the
row's own length (batches sorted by length: little padding), and gathered for each training batch by row index,
zero-padded to the batch's length (padding is masked out of every loss). On CPU the teacher's forward is about half
of an intermediate-distillation step of a 30%-FLOPs student; caching removes it from every epoch but the first.

Rows reach the losses with their index: `IndexedRows` adds a "row" entry to each example. When the per-row states
would exceed `max_bytes` (GLUE's large tasks) only the logits are cached and the states are computed online.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from workflow_scripts.core.inference import make_loader
from workflow_scripts.distill.losses import AttentionScores

ROW_KEY = "row"
MAX_CACHE_BYTES = 2 * 1024 ** 3


class IndexedRows(torch.utils.data.Dataset):
    """A dataset's examples with their position under "row"."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return {**self.dataset[index], ROW_KEY: index}


def model_inputs(batch: dict) -> dict:
    return {name: tensor for name, tensor in batch.items() if name not in ("labels", ROW_KEY)}


class TeacherCache:
    """logits (N, C) always; hidden states [(t_i, H)] * (L+1) and attention scores [(n, t_i, t_i) or None] * L per
    row when `states` is asked for and fits in `max_bytes`."""

    def __init__(self, teacher: nn.Module, dataset, collate_fn, batch_size: int, device: str, states: bool,
                 max_bytes: int = MAX_CACHE_BYTES):
        lengths = [sum(dataset[i]["attention_mask"]) for i in range(len(dataset))]
        self.states = states and self._state_bytes(teacher, lengths) <= max_bytes
        order = sorted(range(len(dataset)), key=lambda i: lengths[i])
        self.logits: torch.Tensor | None = None
        self.hidden: list[list[torch.Tensor]] = [[] for _ in range(len(dataset))]
        self.scores: list[list[torch.Tensor | None]] = [[] for _ in range(len(dataset))]
        self._fill(teacher, torch.utils.data.Subset(dataset, order), order, lengths, collate_fn, batch_size, device)

    @staticmethod
    def _state_bytes(teacher: nn.Module, lengths: list[int]) -> int:
        config = teacher.config
        tokens, pairs = sum(lengths), sum(t * t for t in lengths)
        return 4 * (tokens * (config.num_hidden_layers + 1) * config.hidden_size
                    + pairs * config.num_hidden_layers * config.num_attention_heads)

    @torch.no_grad()
    def _fill(self, teacher, ordered, order, lengths, collate_fn, batch_size, device) -> None:
        teacher.eval()
        capture = AttentionScores(teacher) if self.states else None
        logits, start = [], 0
        try:
            for batch in make_loader(ordered, batch_size, collate_fn, shuffle=False):
                inputs = {name: t.to(device) for name, t in model_inputs(batch).items()}
                output = teacher(**inputs, output_hidden_states=self.states)
                logits.append(output.logits.float().cpu())
                if self.states:
                    self._keep_states(output.hidden_states, capture.per_layer(), order[start:start + len(logits[-1])],
                                      lengths)
                start += len(logits[-1])
        finally:
            if capture is not None:
                capture.close()
        self.logits = torch.empty(len(order), logits[0].shape[-1])
        self.logits[order] = torch.cat(logits)

    def _keep_states(self, hidden_states, scores, rows: list[int], lengths: list[int]) -> None:
        for position, row in enumerate(rows):
            length = lengths[row]
            self.hidden[row] = [h[position, :length].cpu() for h in hidden_states]
            self.scores[row] = [None if s is None else s[position, :, :length, :length].cpu() for s in scores]

    def batch_logits(self, rows: torch.Tensor) -> torch.Tensor:
        return self.logits[rows.cpu()]

    def batch_hidden(self, rows: torch.Tensor, length: int) -> list[torch.Tensor]:
        """(B, length, H) per hidden state, embeddings first."""
        per_row = [self.hidden[row] for row in rows.tolist()]  # (t_i, H) each
        return [torch.stack([F.pad(states[i], (0, 0, 0, length - states[i].shape[0])) for states in per_row])
                for i in range(len(per_row[0]))]

    def batch_scores(self, rows: torch.Tensor, length: int) -> list[torch.Tensor | None]:
        """(B, n, length, length) per layer (None for a layer without heads)."""
        per_row = [self.scores[row] for row in rows.tolist()]  # (n, t_i, t_i) each

        def padded(scores: torch.Tensor) -> torch.Tensor:
            missing = length - scores.shape[-1]
            return F.pad(scores, (0, missing, 0, missing))
        return [None if per_row[0][i] is None else torch.stack([padded(scores[i]) for scores in per_row])
                for i in range(len(per_row[0]))]
