"""What the head-scoring stages read from params.yaml besides AUBER's agent: the mini-dev split and scoring batch
(prune_layer and global_ranking), and the competitors' settings."""
from __future__ import annotations

from dataclasses import dataclass, field

from workflow_scripts.head_pruning.competitors import ConcreteGateConfig


@dataclass
class ScoringConfig:
    mini_dev_fraction: float = field(metadata={"help": "share of the training set in mini-dev (paper 1:2 -> 0.6667)"})
    batch_size: int = field(metadata={"help": "examples per forward pass when scoring (evaluate.batch_size)"})
    attn_implementation: str = field(metadata={"help": "attention kernel", "choices": ["sdpa", "eager"]})


@dataclass
class CompetitorConfig:
    """competitors.* (flat, as the rule passes them): how confidence/michel score and how Voita's gates train."""
    score_max_examples: int | None = field(metadata={"help": "score heads on N seeded mini-dev rows (null: all)"})
    voita_penalty: float = field(metadata={"help": "lambda of the L0 penalty"})
    voita_temperature: float = field(metadata={"help": "hard-concrete temperature beta"})
    voita_log_alpha_init: float = field(metadata={"help": "initial log alpha of every gate"})
    voita_learning_rate: float = field(metadata={"help": "Adam rate of the gates"})
    voita_epochs: int = field(metadata={"help": "passes over mini-train"})
    voita_batch_size: int = field(metadata={"help": "examples per gate update"})

    def voita(self) -> ConcreteGateConfig:
        return ConcreteGateConfig(penalty=self.voita_penalty, temperature=self.voita_temperature,
                                  log_alpha_init=self.voita_log_alpha_init, learning_rate=self.voita_learning_rate,
                                  epochs=self.voita_epochs, batch_size=self.voita_batch_size)
