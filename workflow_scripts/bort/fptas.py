"""Bort (de Wynter & Perry 2020): the FPTAS over BERT sub-architectures (search space, W-coefficient, intervals).

Search space: every <D, A, H, I> in params.yaml's `bort.search_space` with H divisible by A. Each candidate is
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
from dataclasses import dataclass

from workflow_scripts.core.counters import Architecture, architecture_flops, architecture_parameters

REPRESENTATIVES = ("first", "middle", "last")


@dataclass(frozen=True)
class Candidate:
    """One point <D, A, H, I> of the search space."""

    depth: int
    heads: int
    hidden: int
    intermediate: int

    @property
    def tag(self) -> str:
        """The name of its Snakemake job and folder: D4_A8_H768_I1024."""
        return f"D{self.depth}_A{self.heads}_H{self.hidden}_I{self.intermediate}"

    @classmethod
    def from_tag(cls, tag: str) -> "Candidate":
        try:
            depth, heads, hidden, intermediate = (int(part[1:]) for part in tag.split("_"))
        except ValueError:
            raise ValueError(f"not an architecture tag: {tag!r} (expected D<depth>_A<heads>_H<hidden>_I<ffn>)") from None
        return cls(depth, heads, hidden, intermediate)

    def architecture(self, vocab: int, max_positions: int, type_vocab: int) -> Architecture:
        # An MLM encoder: no pooler (Bort has none; the task head is added at fine-tuning)
        return Architecture(depth=self.depth, heads=self.heads, hidden=self.hidden, intermediate=self.intermediate,
                            vocab=vocab, max_positions=max_positions, type_vocab=type_vocab, pooler=False)


@dataclass(frozen=True)
class Vocabulary:
    """What every candidate shares with the teacher: its token tables' sizes (they dominate small models)."""

    vocab: int
    max_positions: int
    type_vocab: int


def search_space(values: dict) -> tuple[list[Candidate], list[Candidate]]:
    """(valid, skipped): every combination of the listed depth, heads, hidden, intermediate; those whose hidden
    size is not divisible by the heads are skipped."""
    combinations = [Candidate(*combination) for combination in itertools.product(
        values["depth"], values["heads"], values["hidden"], values["intermediate"])]
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
