"""Agora (de Wynter 2020; Bort paper, seed 002 section 5): fine-tuning by teacher-labelled data expansion and
hyperparameter-set pruning. The loop, as the notes give it (algorithms.md section 2.2):

    while the list of hyperparameter sets is not empty:
        fine-tune one copy of the student per set; score each on the selection split
        take the best model's errors on the selection split, transform them with psi, label them with the
        teacher, and add them to the training set
        drop the worst sets

Design choices where the sources are silent (each documented in the README):
- Selection share: Agora ranks sets and finds errors on a "dev set". We carve it from the training split (a
  seeded share), so the task's dev split is only reported.
- Pick share: a second seeded share of the training split picks the model Agora returns, and does nothing else.
  The selection share cannot judge across rounds: the points Agora adds are variants of its errors there, so
  later rounds look better on it by construction.
- Removal rule ("the longest common sequence rooted at the first element" of the sorted list): sort the sets
  by score, worst first, and drop the worst together with every set tied with it (within `tie_tolerance`).
  At least one set goes per pruning step, so the loop ends after at most |sets| steps. When all sets tie, the
  first in grid order stays (the literal rule would stop before any expansion).
- Replay (the Bort README: "re-doing some iterations of Agora"): with replay r, every pruning step is preceded
  by r rounds that train, expand the data and prune nothing.
- The last round expands nothing: no set is left to train on the new points.
- Each round's model is its best set's (by selection score); the returned model is the round model that scores
  best on the pick share (ties go to the later round).
- Seeds: the run's seed (one of agora.seeds) draws the two shares and psi's choices; each model's head
  initialization, shuffling and dropout are seeded by the run's seed and its set's grid `seed` together.
- Points are labelled by the teacher only; an original label never reaches an added point.

Classification head as Bort used it: one linear layer on the pooled output (an extra hidden layer for
CoLA-like tasks), initialized uniformly, with dropout; the loss is cross-entropy, or MSE for regression
(transformers picks it from num_labels).
"""
from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch

HYPERPARAMETER_NAMES = ("learning_rate", "weight_decay", "warmup_ratio", "batch_size", "seed")


# ---- hyperparameter sets ------------------------------------------------------------------------------------

def expand_grid(grid: dict[str, list]) -> list[dict]:
    """Every combination of the grid's lists, as sets {name: value}, in a fixed order."""
    missing = [name for name in HYPERPARAMETER_NAMES if name not in grid]
    if missing:
        raise ValueError(f"hyperparameter grid lacks {', '.join(missing)} (it needs {', '.join(HYPERPARAMETER_NAMES)})")
    values = [grid[name] for name in HYPERPARAMETER_NAMES]
    return [dict(zip(HYPERPARAMETER_NAMES, combination)) for combination in itertools.product(*values)]


def set_name(hyperparameters: dict) -> str:
    """A readable, unique name: lr0.0003_wd0_wu0.1_bs16_seed0."""
    short = {"learning_rate": "lr", "weight_decay": "wd", "warmup_ratio": "wu", "batch_size": "bs", "seed": "seed"}
    return "_".join(f"{short[name]}{hyperparameters[name]:g}" for name in HYPERPARAMETER_NAMES)


def sets_to_remove(scores: dict[str, float], tie_tolerance: float = 0.0) -> list[str]:
    """The worst set and every set within `tie_tolerance` of it (worst first); never empty. When every set ties
    (a student still predicting one class scores the same under every set), all but the first set in grid order
    go: removing them all would end Agora before it ever expanded the data."""
    ordered = sorted(scores, key=lambda name: (scores[name], name))
    worst = scores[ordered[0]]
    removed = [name for name in ordered if scores[name] - worst <= tie_tolerance]
    if len(removed) == len(scores) > 1:
        removed.remove(next(iter(scores)))
    return removed


# ---- the loop ------------------------------------------------------------------------------------------------

@dataclass
class Round:
    """One finished round: what was trained, how each set scored, what was removed and added."""
    index: int                     # 0, 1, ... over the whole run
    replay_round: int              # 0 .. replay; pruning happens in the last one only
    scores: dict[str, float]       # set name -> selection score
    best_set: str
    removed: list[str]
    survivors: list[str]
    train_size: int                # training examples the round's models were trained on
    errors: int = 0                # selection-share points the best model got wrong
    added: int = 0                 # teacher-labelled points added after the round
    pick_score: float | None = None  # the best model's score on the pick share (what picks the returned model)
    details: dict = field(default_factory=dict)

    @property
    def selection_score(self) -> float:
        return self.scores[self.best_set]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, content: dict) -> "Round":
        return cls(**content)


def next_round_position(finished: list[Round], all_sets: list[str]) -> tuple[list[str], int]:
    """(sets still in play, replay round of the next round) after the finished rounds."""
    if not finished:
        return list(all_sets), 0
    last = finished[-1]
    return list(last.survivors), (0 if last.removed else last.replay_round + 1)


def run_rounds(all_sets: list[str], train_round: Callable[[int, list[str]], dict[str, float]],
               score_pick: Callable[[Round], float], expand: Callable[[Round], tuple[int, int, dict]],
               train_size: Callable[[], int], *, replay: int, tie_tolerance: float,
               finished: list[Round] | None = None,
               on_round: Callable[[Round], None] = lambda record: None) -> list[Round]:
    """Agora's loop. `train_round(index, sets)` trains the sets and scores them on the selection share;
    `score_pick(round)` scores the round's best model on the pick share; `expand(round)` adds teacher-labelled
    points and returns (errors, added, details); `on_round` persists a finished round (resume passes them back
    as `finished`, and the loop continues after the last)."""
    rounds = list(finished or [])
    sets, replay_round = next_round_position(rounds, all_sets)
    while sets:
        size = train_size()
        scores = train_round(len(rounds), sets)
        prune = replay_round == replay
        removed = sets_to_remove(scores, tie_tolerance) if prune else []
        survivors = [name for name in sets if name not in removed]
        record = Round(len(rounds), replay_round, scores, max(sets, key=lambda name: (scores[name], -sets.index(name))),
                       removed, survivors, size)
        record.pick_score = score_pick(record)
        if survivors:  # the last round's points would train nothing
            record.errors, record.added, record.details = expand(record)
        on_round(record)
        rounds.append(record)
        sets, replay_round = survivors, (0 if prune else replay_round + 1)
    return rounds


def returned_round(rounds: list[Round]) -> Round:
    """The round whose model Agora returns: the highest score on the pick share (never the selection share, which
    the added points flatter); ties go to the later round, which trained on more data."""
    return max(reversed(rounds), key=lambda record: record.pick_score)


def model_seed(run_seed: int, set_seed: int) -> int:
    """The seed of one model's head initialization, shuffling and dropout. The run's seed (agora.seeds) makes the
    runs differ; the set's grid `seed` (a hyperparameter the Bort authors searched over) makes the sets of one run
    differ. Neither overrides the other: both enter, mixed by numpy's SeedSequence."""
    return int(np.random.SeedSequence([run_seed, set_seed]).generate_state(1)[0])


# ---- the student's classification head (Bort, section 5.1) ---------------------------------------------------

def build_classifier(folder: str, num_labels: int, *, extra_layer: bool, init_range: float, dropout: float,
                     attn_implementation: str = "sdpa"):
    """A sequence classifier on any checkpoint the pipeline writes (MLM student, base model, pruned chain).

    The classification head is always new: U(-init_range, init_range) weights, zero biases, `dropout` before
    each linear layer. A pooler the checkpoint lacks (the distilled students have none) is initialized the same
    way; one it has is kept, as part of the pretrained encoder.
    """
    from transformers import AutoModelForSequenceClassification, logging as hf_logging

    from workflow_scripts.core.surgery import add_classifier_layer, load_pruned

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the new head's "missing weights" report is expected
    try:
        model = load_pruned(folder, AutoModelForSequenceClassification, attn_implementation=attn_implementation,
                            num_labels=num_labels, classifier_dropout=dropout)
    finally:
        hf_logging.set_verbosity(verbosity)
    if isinstance(model.classifier, torch.nn.Sequential):  # a checkpoint with Bort's extra layer: start plain
        model.classifier = model.classifier[-1]
        model.config.classifier_extra_layer = False
    if extra_layer:
        add_classifier_layer(model, dropout)
    new_modules = [model.classifier]
    pooler = getattr(model.base_model, "pooler", None)
    if pooler is not None and not _checkpoint_has(folder, ".pooler."):
        new_modules.append(pooler)
    for module in new_modules:
        for linear in (m for m in module.modules() if isinstance(m, torch.nn.Linear)):
            torch.nn.init.uniform_(linear.weight, -init_range, init_range)
            torch.nn.init.zeros_(linear.bias)
    return model


def _checkpoint_has(folder: str, key_part: str) -> bool:
    from safetensors import safe_open
    import os

    path = os.path.join(folder, "model.safetensors")
    if not os.path.isfile(path):
        return True  # sharded or foreign layouts: assume the pretrained parts are there
    with safe_open(path, "pt") as handle:
        return any(key_part in f".{key}" for key in handle.keys())


# ---- data ----------------------------------------------------------------------------------------------------

def encode_rows(rows: list[dict], tokenizer, text_columns, max_length: int):
    """A datasets.Dataset with the model columns of `rows` (which carry a `label`)."""
    import datasets

    texts = [[row[column] for row in rows] for column in text_columns]
    encoded = dict(tokenizer(*texts, truncation=True, max_length=max_length))
    encoded["labels"] = [row["label"] for row in rows]
    return datasets.Dataset.from_dict(encoded)


def predictions(logits: np.ndarray, num_labels: int) -> np.ndarray:
    """Class ids, or for regression the predicted values."""
    return logits[:, 0] if num_labels == 1 else logits.argmax(axis=1)


def wrong(predicted: np.ndarray, labels: np.ndarray, num_labels: int) -> np.ndarray:
    """Indices of the points predicted wrongly; a regression point is wrong when its rounded prediction and
    rounded label differ (the Bort paper's STS-B treatment, after Raffel et al.)."""
    if num_labels == 1:
        return np.flatnonzero(np.rint(predicted) != np.rint(labels))
    return np.flatnonzero(predicted != labels)


def teacher_label(logits: np.ndarray, num_labels: int) -> tuple[list, list[float]]:
    """(labels, confidence) the teacher gives: argmax class and its probability, or the regressed value."""
    if num_labels == 1:
        return [float(value) for value in logits[:, 0]], [1.0] * len(logits)
    probabilities = torch.softmax(torch.from_numpy(logits).float(), dim=1).numpy()
    return [int(label) for label in probabilities.argmax(axis=1)], [float(p) for p in probabilities.max(axis=1)]


def read_jsonl(path: str) -> list[dict]:
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


@dataclass
class TaskSplits:
    """A task's spec and its training split cut into three disjoint shares."""
    spec: dict
    train: list[dict]       # trained on; Agora adds its teacher-labelled points to these
    selection: list[dict]   # ranks the sets and gives the errors psi transforms
    pick: list[dict]        # picks the model returned (Agora's round, the baseline's epoch), nothing else


def share_indices(num_rows: int, selection_fraction: float, pick_fraction: float,
                  seed: int) -> tuple[list[int], list[int], list[int]]:
    """(train, selection, pick) indices of the training split, each sorted: one seeded permutation, the selection
    share first, then the pick share; the rest is trained on."""
    shuffled = np.random.default_rng(seed).permutation(num_rows).tolist()
    selection_size, pick_size = (max(1, round(fraction * num_rows)) for fraction in (selection_fraction, pick_fraction))
    if selection_size + pick_size >= num_rows:
        raise ValueError(f"selection fraction {selection_fraction} and pick fraction {pick_fraction} hold out "
                         f"{selection_size + pick_size} of {num_rows} training rows: nothing is left to train on")
    pick_end = selection_size + pick_size
    return sorted(shuffled[pick_end:]), sorted(shuffled[:selection_size]), sorted(shuffled[selection_size:pick_end])


def load_task_splits(raw_folder: str, selection_fraction: float, pick_fraction: float, seed: int) -> TaskSplits:
    """The task's training split in its three shares; Agora's baseline reads the same ones."""
    import os

    from workflow_scripts.core.io_utils import read_json, verify_checksums

    verify_checksums(raw_folder)
    spec = read_json(os.path.join(raw_folder, "task.json"))
    rows = read_jsonl(os.path.join(raw_folder, "train.jsonl"))
    train_ids, selection_ids, pick_ids = share_indices(len(rows), selection_fraction, pick_fraction, seed)
    return TaskSplits(spec, [rows[i] for i in train_ids], [rows[i] for i in selection_ids],
                      [rows[i] for i in pick_ids])


def score_on(model, dataset, spec: dict, batch_size: int, collate_fn, device: str,
             share: str = "selection") -> tuple[float, np.ndarray]:
    """(headline metric, logits) of `model` on a labelled dataset (`share` names it in the progress bar)."""
    from workflow_scripts.core.metrics import compute_metrics
    from workflow_scripts.core.inference import predict_logits

    logits = predict_logits(model, dataset, batch_size, collate_fn, device, description=f"{share} share")
    headline = spec["metrics"][0]
    return compute_metrics([headline], logits, np.asarray(dataset["labels"]))[headline], logits
