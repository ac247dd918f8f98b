"""Bort (de Wynter & Perry 2020): the FPTAS over BERT sub-architectures (search space, W-coefficient, intervals).

Search space: every <D, A, H, I> in params.yaml's `bort.search_space` with H divisible by A, and optionally
ALBERT's options (core/albert.py): a factorized embedding size E (`embedding_size`; null = H) and cross-layer
parameter sharing (`sharing`: none, all, attention, ffn, each over all layers or in groups of M). Each candidate is
trained briefly from random initialization against the maximum point T and measured; the W-coefficient

    W(xi) = (1 - p(xi) / p(T)) * (1 - i(xi) / i(T)) / e(xi)

scalarizes parameters p, inference cost i and surrogate error e (higher is better).

The FPTAS's interval step is not public beyond "partition the space every epsilon architectures and pick the best
of these partitioned architectures". Our reading: order the space as the AB^nC property does (increasing
parameters, then FLOPs), cut it into consecutive intervals of `epsilon` architectures, train one representative per
interval (its first, middle or last member: `bort.fptas.representative`), and return the trained representative
with the largest W. epsilon = 1 trains every valid architecture (the exhaustive search); a larger epsilon divides
the training cost by epsilon, which is the 1/epsilon in the FPTAS's running time.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from workflow_scripts.core.counters import SHARING_MODES, Architecture, architecture_flops, architecture_parameters

REPRESENTATIVES = ("first", "middle", "last")
# The tag's suffixes for ALBERT's options: _E<embedding size>, _S<sharing mode>[<group size>]
OPTION_SUFFIXES = r"(_E\d+)?(_S(" + "|".join(SHARING_MODES[1:]) + r")\d*)?"
TAG_PATTERN = re.compile(r"D(\d+)_A(\d+)_H(\d+)_I(\d+)(?:_E(\d+))?(?:_S(" + "|".join(SHARING_MODES[1:]) + r")(\d+)?)?")


@dataclass(frozen=True)
class Candidate:
    """One point <D, A, H, I> of the search space, with ALBERT's options: the factorized embedding size E (None: the
    hidden size) and cross-layer sharing (mode; layers per group M, None: all layers in one group). The options are
    kept in one canonical form, so that one architecture has one tag: E equal to H is None, and so is a group of the
    whole depth or more, or any group without sharing."""

    depth: int
    heads: int
    hidden: int
    intermediate: int
    embedding_size: int | None = None
    sharing: str = "none"
    sharing_group: int | None = None

    def __post_init__(self):
        if self.sharing not in SHARING_MODES:
            raise ValueError(f"sharing must be one of {', '.join(SHARING_MODES)}, got {self.sharing!r}")
        for name in ("embedding_size", "sharing_group"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        if self.embedding_size == self.hidden:
            object.__setattr__(self, "embedding_size", None)
        if self.sharing == "none" or (self.sharing_group is not None and self.sharing_group >= self.depth):
            object.__setattr__(self, "sharing_group", None)

    @property
    def tag(self) -> str:
        """The name of its Snakemake job and folder: D4_A8_H768_I1024, then _E128 for a factorized embedding size
        and _Sall / _Sattention2 / _Sffn2 for sharing over every layer or in groups of 2."""
        tag = f"D{self.depth}_A{self.heads}_H{self.hidden}_I{self.intermediate}"
        if self.embedding_size is not None:
            tag += f"_E{self.embedding_size}"
        if self.sharing != "none":
            tag += f"_S{self.sharing}{self.sharing_group or ''}"
        return tag

    @classmethod
    def from_tag(cls, tag: str) -> "Candidate":
        match = TAG_PATTERN.fullmatch(tag)
        if match is None:
            raise ValueError(f"not an architecture tag: {tag!r} (expected D<depth>_A<heads>_H<hidden>_I<ffn>, then "
                             f"optionally _E<embedding size> and _S<{'|'.join(SHARING_MODES[1:])}>[<group size>])")
        depth, heads, hidden, intermediate, embedding_size, sharing, group = match.groups()
        candidate = cls(int(depth), int(heads), int(hidden), int(intermediate),
                        int(embedding_size) if embedding_size else None, sharing or "none",
                        int(group) if group else None)
        if candidate.tag != tag:
            raise ValueError(f"architecture tag {tag!r} is not in canonical form: write {candidate.tag!r} (an "
                             "embedding size equal to the hidden size, or a group of the whole depth, has no suffix)")
        return candidate

    @property
    def albert_options(self) -> dict:
        """Keyword arguments of core.albert.AlbertOptions."""
        return {"embedding_size": self.embedding_size, "sharing": self.sharing, "group_size": self.sharing_group}

    def architecture(self, vocab: int, max_positions: int, type_vocab: int) -> Architecture:
        # An MLM encoder: no pooler (Bort has none; the task head is added at fine-tuning)
        return Architecture(depth=self.depth, heads=self.heads, hidden=self.hidden, intermediate=self.intermediate,
                            vocab=vocab, max_positions=max_positions, type_vocab=type_vocab, pooler=False,
                            embedding_size=self.embedding_size, sharing=self.sharing, sharing_group=self.sharing_group)


def sharing_entry(entry) -> tuple[str, int | None]:
    """(mode, group size) of one `bort.search_space.sharing` entry: a mode (every layer in one group) or
    {mode: .., group_size: M}."""
    if isinstance(entry, dict):
        return entry["mode"], entry["group_size"]
    return entry, None


@dataclass(frozen=True)
class Vocabulary:
    """What every candidate shares with the teacher: its token tables' sizes (they dominate small models)."""

    vocab: int
    max_positions: int
    type_vocab: int


def search_space(values: dict) -> tuple[list[Candidate], list[Candidate]]:
    """(valid, skipped): every combination of the listed depth, heads, hidden, intermediate, and the optional
    embedding_size (default [null]: E = H) and sharing (default [none]); those whose hidden size is not divisible
    by the heads are skipped. Combinations naming the same architecture (E = H and null; a group of the whole depth
    or more and none) count once, in the order of their first occurrence."""
    combinations = dict.fromkeys(
        Candidate(depth, heads, hidden, intermediate, embedding_size, *sharing_entry(sharing))
        for depth, heads, hidden, intermediate, embedding_size, sharing in itertools.product(
            values["depth"], values["heads"], values["hidden"], values["intermediate"],
            values.get("embedding_size") or [None], values.get("sharing") or ["none"]))
    valid = [c for c in combinations if c.hidden % c.heads == 0]
    return valid, [c for c in combinations if c.hidden % c.heads]


def parameters_of(candidate: Candidate, vocabulary: Vocabulary) -> int:
    """p: embedding and encoder parameters (the MLM head is training scaffolding, shared by every candidate)."""
    counts = architecture_parameters(candidate.architecture(**vocabulary.__dict__))
    return counts["embedding"] + counts["encoder"]


def flops_of(candidate: Candidate, vocabulary: Vocabulary, seq_len: int) -> int:
    """FLOPs of one sequence of seq_len tokens through the encoder (the deterministic inference cost)."""
    return architecture_flops(candidate.architecture(**vocabulary.__dict__), 1, seq_len)["total"]


def abnc_order(candidates: list[Candidate], vocabulary: Vocabulary, seq_len: int) -> list[Candidate]:
    """The order the AB^nC property induces: increasing parameters, then FLOPs (ties by the tag, for stability)."""
    return sorted(candidates, key=lambda c: (parameters_of(c, vocabulary), flops_of(c, vocabulary, seq_len), c.tag))


def interval_representatives(ordered: list, epsilon: int, representative: str = "first") -> list:
    """One member of each run of `epsilon` consecutive architectures of the ordered space."""
    if epsilon < 1:
        raise ValueError(f"epsilon must be a positive number of architectures, got {epsilon}")
    if representative not in REPRESENTATIVES:
        raise ValueError(f"representative must be one of {', '.join(REPRESENTATIVES)}, got {representative!r}")
    intervals = [ordered[start:start + epsilon] for start in range(0, len(ordered), epsilon)]
    position = {"first": lambda n: 0, "middle": lambda n: (n - 1) // 2, "last": lambda n: n - 1}[representative]
    return [interval[position(len(interval))] for interval in intervals]


def w_coefficient(parameters: float, inference: float, error: float, teacher_parameters: float,
                  teacher_inference: float) -> float:
    """W = (1 - p/p(T)) (1 - i/i(T)) / e; a candidate as large or as slow as T scores <= 0."""
    if error <= 0:
        raise ValueError(f"the surrogate error must be positive, got {error}")
    return (1 - parameters / teacher_parameters) * (1 - inference / teacher_inference) / error


def rank_by_w(measured: list[dict], teacher: dict, inference_key: str) -> list[dict]:
    """Each measured candidate (parameters, <inference_key>, surrogate_error) with its W, best first."""
    scored = [{**row, "w_coefficient": w_coefficient(row["parameters"], row[inference_key], row["surrogate_error"],
                                                     teacher["parameters"], teacher[inference_key])}
              for row in measured]
    return sorted(scored, key=lambda row: (-row["w_coefficient"], row["tag"]))


# ---------------------------------------------------------------------------------------------------------------
# the DAG's view: which candidates are trained


@dataclass(frozen=True)
class SearchPlan:
    """What the DAG builds: the candidates to train (interval representatives of the valid space, in AB^nC
    order), the number of valid architectures, the skipped combinations (H not divisible by A), and the reference
    architectures (trained and shown, never chosen)."""

    to_train: list
    valid: int
    skipped: list
    references: list


def model_vocabulary(model_params: dict) -> tuple[int, int, int]:
    """(vocabulary size, position table size, token types) of the model params.yaml names: what every candidate
    shares with the teacher, needed to order the search space before any job runs."""
    from workflow_scripts.core.models import model_config_values

    keys = ["vocab_size", "max_position_embeddings", "type_vocab_size"]
    return tuple(model_config_values(model_params["name"], keys, "to order the search space"))


def search_plan(params: dict) -> SearchPlan:
    bort = params["bort"]
    valid, skipped = search_space(bort["search_space"])
    vocabulary = Vocabulary(*model_vocabulary(params["model"]))
    ordered = abnc_order(valid, vocabulary, bort["fptas"]["seq_len"])
    to_train = interval_representatives(ordered, bort["fptas"]["epsilon"], bort["fptas"]["representative"])
    references = [Candidate(**reference) for reference in bort["fptas"]["references"]]
    return SearchPlan(to_train, len(valid), skipped, references)


def search_space_candidates(params: dict) -> list[Candidate]:
    """The candidates the search trains (one `fptas_candidate_train` job each)."""
    return search_plan(params).to_train
