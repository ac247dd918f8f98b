"""One architecture of Bort's search, trained briefly on the surrogate error and measured (or T, measured alike).

The candidate starts from random initialization and is trained for `steps` steps under each hyperparameter set on
the surrogate error: the cross-entropy between T's and the candidate's output distributions on masked positions.
T's outputs come from the teacher_outputs stage's cache (its top k and tail mass), or from T run in every step
(`bort.teacher_outputs.mode: online`, for streams too large to cache).
Its surrogate error e is the lowest held-out value over the sets (the FPTAS keeps the best W over the sets, and p
and i do not depend on them). Then it is measured: parameters p (embedding + encoder), FLOPs of one sequence, and
latency: the median wall-clock time of the encoder on one sequence of `seq_len` tokens, on the given threads,
after warm-up runs.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from workflow_scripts.bort.distillation import (build_student, distillation_loss, heldout_scores, masked_logits,
                                                teacher_masked_logits)
from workflow_scripts.bort.teacher_outputs import TeacherOutputs, teacher_top_k
from workflow_scripts.bort.fptas import Candidate, Vocabulary, flops_of, parameters_of
from workflow_scripts.core.counters import count_parameters
from workflow_scripts.core.io_utils import verified
from workflow_scripts.core.latency import measure_latency
from workflow_scripts.core.training import build_optimizer, linear_schedule, run_training
from workflow_scripts.data.corpus import heldout_masked_batches, load_corpus, training_batches


@dataclass
class SearchConfig:
    """How every candidate (and T) is trained and measured (params.yaml bort.fptas; mask_probability from
    bort.corpus)."""
    steps: int = field(metadata={"help": "training steps s of every candidate"})
    hyperparameter_sets: list[dict] = field(
        metadata={"help": 'JSON list of {"learning_rate": .., "batch_size": ..}: the sets Theta'})
    warmup_ratio: float = field(metadata={"help": "fraction of the steps with linear warm-up"})
    max_grad_norm: float = field(metadata={"help": "global gradient-norm clip"})
    weight_decay: float = field(metadata={"help": "AdamW weight decay (not on biases and LayerNorm weights)"})
    dropout: float = field(metadata={"help": "dropout of the candidate"})
    mask_probability: float = field(metadata={"help": "share of the tokens masked"})
    heldout_batch_size: int = field(metadata={"help": "sequences per held-out forward pass"})
    seq_len: int = field(metadata={"help": "tokens per sequence for FLOPs and latency"})
    latency_repeats: int = field(metadata={"help": "timed runs (the median is kept)"})
    latency_warmup: int = field(metadata={"help": "untimed runs first"})
    seed: int = field(metadata={"help": "seeds the candidate's initialization, batches, masks and dropout"})


@dataclass
class SurrogateTeacher:
    """Where a candidate gets T's outputs: the teacher_outputs cache, or T itself (`model`) run on every batch."""
    config: object  # T's model config: the students' family and vocabulary
    cache: TeacherOutputs | None = None
    model: object | None = None

    def training_batches(self, train_blocks, tokenizer, batch_size: int, config: "SearchConfig"):
        batches = training_batches(train_blocks, tokenizer, config.mask_probability, batch_size, config.seed)
        if self.cache is None:
            return batches
        return self.cache.attach(batches, batch_size=batch_size, seed=config.seed,
                                 mask_probability=config.mask_probability, steps=config.steps, temperature=1.0)

    @torch.no_grad()
    def outputs(self, batch: dict):
        return teacher_top_k(batch, 1.0) if self.cache is not None else masked_logits(self.model, batch)

    def heldout(self, heldout: list[dict], device: str) -> list:
        if self.cache is not None:
            return self.cache.heldout(heldout, temperature=1.0)
        return teacher_masked_logits(self.model, heldout, device)


def train_on_surrogate(student, teacher: SurrogateTeacher, train_blocks, tokenizer, hparams: dict,
                       config: SearchConfig, device: str) -> list[float]:
    """s steps of AdamW on the surrogate error (KL to T at temperature 1, same gradient as the cross-entropy)."""
    optimizer = build_optimizer(student, hparams["learning_rate"], config.weight_decay)
    scheduler = linear_schedule(optimizer, config.steps, round(config.warmup_ratio * config.steps))
    batches = teacher.training_batches(train_blocks, tokenizer, hparams["batch_size"], config)
    student.to(device).train()

    def surrogate_loss(student, batch: dict) -> torch.Tensor:
        student_logits = masked_logits(student, batch)
        loss, _ = distillation_loss(student_logits, teacher.outputs(batch), batch["labels"][batch["labels"] != -100],
                                    mlm_weight=0.0, teacher_weight=1.0, temperature=1.0)
        return loss

    history = run_training(student, batches, surrogate_loss, optimizer, total_steps=config.steps,
                           scheduler=scheduler, max_grad_norm=config.max_grad_norm, device=device)
    return history.losses


def latency_of(model, config: SearchConfig, threads: int | None) -> dict:
    """The encoder alone (what is deployed), one sequence, this job's threads."""
    return measure_latency(model.base_model, batch_size=1, seq_len=config.seq_len, warmup=config.latency_warmup,
                           repeats=config.latency_repeats, threads=threads)


def measure_teacher(teacher, heldout, teacher_logits, vocabulary: Vocabulary, config: SearchConfig,
                    threads: int | None, device: str) -> dict:
    model_config = teacher.config
    shape = Candidate(model_config.num_hidden_layers, model_config.num_attention_heads, model_config.hidden_size,
                      model_config.intermediate_size)
    counts = count_parameters(teacher.base_model)
    return {"tag": "teacher", "role": "teacher", **shape.__dict__,
            "parameters": counts["embedding"] + counts["encoder"],
            "flops": flops_of(shape, vocabulary, config.seq_len),
            **heldout_scores(teacher, heldout, teacher_logits, device),
            "latency": latency_of(teacher, config, threads)}


def measure_candidate(candidate: Candidate, teacher: SurrogateTeacher, train_blocks, heldout, teacher_logits,
                      tokenizer, vocabulary: Vocabulary, config: SearchConfig, threads: int | None, device: str,
                      logger) -> dict:
    runs, best = [], None
    for index, hparams in enumerate(config.hyperparameter_sets):
        started = time.perf_counter()
        student = build_student(teacher.config, candidate, config.dropout, config.seed)
        losses = train_on_surrogate(student, teacher, train_blocks, tokenizer, hparams, config, device)
        scores = heldout_scores(student, heldout, teacher_logits, device)
        runs.append({"hyperparameters": hparams, **scores, "train_seconds": time.perf_counter() - started,
                     "losses": losses})
        logger.info("%s set %d %s: surrogate error %.4f, MLM accuracy %.4f (%.1f s)", candidate.tag, index, hparams,
                    scores["surrogate_error"], scores["mlm_accuracy"], runs[-1]["train_seconds"])
        if best is None or scores["surrogate_error"] < runs[best[0]]["surrogate_error"]:
            best = (index, student)
    counts = count_parameters(best[1].base_model)
    built_parameters = counts["embedding"] + counts["encoder"]
    parameters = parameters_of(candidate, vocabulary)
    if built_parameters != parameters:  # the closed form ordered the space; it must be the built model's count
        raise RuntimeError(f"{candidate.tag}: built model has {built_parameters} parameters, formula {parameters}")
    best_run = runs[best[0]]
    return {"tag": candidate.tag, "role": "candidate", **candidate.__dict__, "parameters": parameters,
            "flops": flops_of(candidate, vocabulary, config.seq_len), "surrogate_error": best_run["surrogate_error"],
            "mlm_accuracy": best_run["mlm_accuracy"], "mlm_loss": best_run["mlm_loss"],
            "masked_positions": best_run["masked_positions"], "best_hyperparameter_set": best[0],
            "runs": runs, "latency": latency_of(best[1], config, threads)}


def measure(teacher_folder: str, corpus_folder: str, architecture: str | None, config: SearchConfig,
            threads: int | None, device: str, logger, teacher_outputs: str | None = None) -> dict:
    """The metrics of one candidate (architecture tag), or of T itself (architecture None). T's outputs come from
    the teacher_outputs folder when given, else from T run online."""
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(teacher_folder)
    train_blocks, heldout_blocks, _ = load_corpus(corpus_folder)
    heldout = heldout_masked_batches(heldout_blocks, tokenizer, config.mask_probability, config.heldout_batch_size,
                                     config.seed)
    model = None
    if architecture is None or teacher_outputs is None:  # T itself is measured, or runs online
        model = AutoModelForMaskedLM.from_pretrained(verified(teacher_folder)).to(device).eval()
    teacher = SurrogateTeacher(AutoConfig.from_pretrained(teacher_folder),
                               TeacherOutputs.load(teacher_outputs) if teacher_outputs else None, model)
    teacher_logits = teacher.heldout(heldout, device)
    model_config = teacher.config
    vocabulary = Vocabulary(model_config.vocab_size, model_config.max_position_embeddings,
                            model_config.type_vocab_size)
    if architecture is None:
        metrics = measure_teacher(model, heldout, teacher_logits, vocabulary, config, threads, device)
    else:
        metrics = measure_candidate(Candidate.from_tag(architecture), teacher, train_blocks, heldout, teacher_logits,
                                    tokenizer, vocabulary, config, threads, device, logger)
    metrics["latency_s"] = metrics["latency"]["median_s"]
    metrics["teacher_outputs"] = "cached" if teacher_outputs else "online"
    return metrics
