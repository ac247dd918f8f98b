"""Stage fptas_candidate_train: one architecture of Bort's search, trained briefly and measured.

    python -m workflow_scripts.stages.fptas_candidate --teacher models/bort/teacher --corpus data/corpus/tokenized \
        --architecture D2_A4_H128_I256 --output models/bort/fptas/candidates/D2_A4_H128_I256/metrics.json ...

The candidate starts from random initialization and is trained for --steps steps under each hyperparameter set
on the surrogate error: the cross-entropy between T's and the candidate's output distributions on masked
positions. Its surrogate error e is the lowest held-out value over the sets (the FPTAS keeps the best W over the
sets, and p and i do not depend on them). Then it is measured: parameters p (embedding + encoder), FLOPs of one
sequence, and latency: the median wall-clock time of the encoder on one sequence of --seq-len tokens, on this
job's threads, after warm-up runs. With --teacher-only the same measurements are taken of T itself (no training).
"""
from __future__ import annotations

import json
import time

import torch

from workflow_scripts.pipeline.cli import stage_parser, start_stage
from workflow_scripts.data.corpus import heldout_masked_batches, load_corpus, training_batches
from workflow_scripts.core.counters import count_parameters
from workflow_scripts.bort.distillation import (build_student, distillation_loss, heldout_scores, masked_logits, optimizer_step,
                           teacher_masked_logits)
from workflow_scripts.bort.fptas import Candidate, Vocabulary, flops_of, parameters_of
from workflow_scripts.core.io_utils import write_json
from workflow_scripts.core.latency import measure_latency
from workflow_scripts.core.training import linear_schedule


def add_search_args(parser) -> None:
    group = parser.add_argument_group("search (from params.yaml: bort.fptas)")
    group.add_argument("--steps", type=int, required=True, help="training steps s of every candidate")
    group.add_argument("--hyperparameter-sets", type=json.loads, required=True,
                       help='JSON list of {"learning_rate": .., "batch_size": ..}: the sets Theta')
    group.add_argument("--warmup-ratio", type=float, default=0.0)
    group.add_argument("--max-grad-norm", type=float, default=1.0)
    group.add_argument("--weight-decay", type=float, default=0.01)
    group.add_argument("--dropout", type=float, default=0.1)
    group.add_argument("--mask-probability", type=float, required=True)
    group.add_argument("--heldout-batch-size", type=int, default=32)
    group.add_argument("--seq-len", type=int, required=True, help="tokens per sequence for FLOPs and latency")
    group.add_argument("--latency-repeats", type=int, default=20)
    group.add_argument("--latency-warmup", type=int, default=3)
    group.add_argument("--seed", type=int, default=0)


def train_on_surrogate(student, teacher, train_blocks, tokenizer, hparams: dict, args, device) -> list[float]:
    """s steps of AdamW on the surrogate error (KL to T at temperature 1, same gradient as the cross-entropy)."""
    from workflow_scripts.core.training import TrainingConfig, build_optimizer

    config = TrainingConfig(epochs=1, learning_rate=hparams["learning_rate"], batch_size=hparams["batch_size"],
                            weight_decay=args.weight_decay, max_grad_norm=args.max_grad_norm, seed=args.seed)
    optimizer = build_optimizer(student, config)
    scheduler = linear_schedule(optimizer, args.steps, round(args.warmup_ratio * args.steps))
    batches = training_batches(train_blocks, tokenizer, args.mask_probability, hparams["batch_size"], args.seed)
    student.to(device).train()
    losses = []
    for _ in range(args.steps):
        batch = {name: tensor.to(device) for name, tensor in next(batches).items()}
        with torch.no_grad():
            teacher_logits = masked_logits(teacher, batch)
        student_logits = masked_logits(student, batch)
        loss, _ = distillation_loss(student_logits, teacher_logits, batch["labels"][batch["labels"] != -100],
                                    mlm_weight=0.0, teacher_weight=1.0, temperature=1.0)
        optimizer_step(loss, student.parameters(), optimizer, scheduler, args.max_grad_norm)
        losses.append(loss.item())
    return losses


def latency_of(model, args) -> dict:
    """The encoder alone (what is deployed), one sequence, this job's threads."""
    return measure_latency(model.base_model, batch_size=1, seq_len=args.seq_len, warmup=args.latency_warmup,
                           repeats=args.latency_repeats, threads=args.threads)


def measure_teacher(teacher, heldout, teacher_logits, vocabulary: Vocabulary, args, device) -> dict:
    config = teacher.config
    shape = Candidate(config.num_hidden_layers, config.num_attention_heads, config.hidden_size,
                      config.intermediate_size)
    counts = count_parameters(teacher.base_model)
    return {"tag": "teacher", "role": "teacher", **shape.__dict__,
            "parameters": counts["embedding"] + counts["encoder"], "flops": flops_of(shape, vocabulary, args.seq_len),
            **heldout_scores(teacher, heldout, teacher_logits, device), "latency": latency_of(teacher, args)}


def measure_candidate(candidate: Candidate, teacher, train_blocks, heldout, teacher_logits, tokenizer,
                      vocabulary: Vocabulary, args, device, logger) -> dict:
    runs, best = [], None
    for index, hparams in enumerate(args.hyperparameter_sets):
        started = time.perf_counter()
        student = build_student(teacher.config, candidate, args.dropout, args.seed)
        losses = train_on_surrogate(student, teacher, train_blocks, tokenizer, hparams, args, device)
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
            "flops": flops_of(candidate, vocabulary, args.seq_len), "surrogate_error": best_run["surrogate_error"],
            "mlm_accuracy": best_run["mlm_accuracy"], "mlm_loss": best_run["mlm_loss"],
            "masked_positions": best_run["masked_positions"], "best_hyperparameter_set": best[0],
            "runs": runs, "latency": latency_of(best[1], args)}


def main(argv=None) -> None:
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    parser = stage_parser(__doc__)
    parser.add_argument("--teacher", required=True, help="masked-LM folder written by teacher_prep")
    parser.add_argument("--corpus", required=True, help="folder written by prepare_corpus")
    parser.add_argument("--output", required=True, help="metrics.json to write")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--architecture", help="D<depth>_A<heads>_H<hidden>_I<intermediate>")
    which.add_argument("--teacher-only", action="store_true", help="measure T itself")
    add_search_args(parser)
    args = parser.parse_args(argv)
    logger, device = start_stage(args)

    tokenizer = AutoTokenizer.from_pretrained(args.teacher)
    teacher = AutoModelForMaskedLM.from_pretrained(args.teacher).to(device).eval()
    train_blocks, heldout_blocks, _ = load_corpus(args.corpus)
    heldout = heldout_masked_batches(heldout_blocks, tokenizer, args.mask_probability, args.heldout_batch_size,
                                     args.seed)
    teacher_logits = teacher_masked_logits(teacher, heldout, device)
    config = teacher.config
    vocabulary = Vocabulary(config.vocab_size, config.max_position_embeddings, config.type_vocab_size)
    if args.teacher_only:
        metrics = measure_teacher(teacher, heldout, teacher_logits, vocabulary, args, device)
    else:
        candidate = Candidate.from_tag(args.architecture)
        metrics = measure_candidate(candidate, teacher, train_blocks, heldout, teacher_logits, tokenizer, vocabulary,
                                    args, device, logger)
    metrics["latency_s"] = metrics["latency"]["median_s"]
    write_json(args.output, metrics)
    logger.info("%s: %d parameters, %.2f MFLOPs, %.2f ms, surrogate error %.4f", metrics["tag"], metrics["parameters"],
                metrics["flops"] / 1e6, metrics["latency_s"] * 1e3, metrics["surrogate_error"])


if __name__ == "__main__":
    main()
