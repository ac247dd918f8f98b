"""What does a distillation step cost against an MLM-only step? Bort's pretraining of one architecture on the
pipeline's own teacher and corpus, measured side by side on the same batches:

  mlm            the masked-LM loss alone
  kd_online      KD with T run on every batch (the earlier default; `bort.teacher_outputs.mode: online`)
  kd_cached      KD reading T's top-k outputs from the teacher_outputs stage's folder (the default)
  tinybert       TinyBERT's general distillation (objective tinybert): T run on every batch for its hidden states
                 and attention scores, the embedding, hidden and attention MSEs through the projection W

    .venv/bin/python -m benchmarks.kd_step_cost [--architecture D2_A4_H128_I256] [--steps 30] [--threads 1]

It needs what `snakemake models/bort/teacher_outputs` builds (models/bort/teacher, models/bort/teacher_outputs,
data/corpus/tokenized). The variants are timed in interleaved rounds (mlm, kd_online, kd_cached, tinybert, mlm, ...)
so that load from other processes hits all of them alike; each variant's step time is the median of its per-round means,
and the ratios to mlm are printed. Each round trains a fresh student from the same initialization, so the variants
see the same batches and the same model sizes.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer  # noqa: E402

from workflow_scripts.bort.distillation import build_student, distillation_loss, masked_logits  # noqa: E402
from workflow_scripts.bort.fptas import Candidate  # noqa: E402
from workflow_scripts.bort.teacher_outputs import TeacherOutputs, teacher_top_k  # noqa: E402
from workflow_scripts.core.latency import cpu_model_name  # noqa: E402
from workflow_scripts.core.training import build_optimizer  # noqa: E402
from workflow_scripts.data.corpus import load_corpus, training_batches  # noqa: E402
from workflow_scripts.distill.general_distillation import (GeneralDistillationLosses,  # noqa: E402
                                                           TransformerDistillation)
from workflow_scripts.pipeline.params import load_params  # noqa: E402

VARIANTS = ("mlm", "kd_online", "kd_cached", "tinybert")


def step_seconds(variant: str, args, teacher, cache, train_blocks, tokenizer) -> float:
    """Mean seconds per optimizer step of one fresh student over args.steps steps (the first one untimed)."""
    student = build_student(AutoConfig.from_pretrained(args.teacher), Candidate.from_tag(args.architecture), 0.1, 0)
    distiller = TransformerDistillation(student, teacher, GeneralDistillationLosses("uniform", 1.0, 1.0, 1.0, 0.0)) \
        if variant == "tinybert" else None
    trained = distiller if distiller is not None else student
    optimizer = build_optimizer(trained, 1e-3, 0.01)
    batches = training_batches(train_blocks, tokenizer, 0.15, args.batch_size, 0)
    if variant == "kd_cached":
        batches = cache.attach(batches, batch_size=args.batch_size, seed=0, mask_probability=0.15,
                               steps=args.steps + 1, temperature=args.temperature)
    student.train()
    started = None
    for step, batch in zip(range(args.steps + 1), batches):
        if step == 1:
            started = time.perf_counter()
        if distiller is not None:
            loss, _ = distiller(batch["input_ids"], batch["attention_mask"], batch["labels"])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trained.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            continue
        targets = batch["labels"][batch["labels"] != -100]
        logits = masked_logits(student, batch)
        if variant == "mlm":
            teacher_outputs, weights = None, (1.0, 0.0)
        elif variant == "kd_online":
            with torch.no_grad():
                teacher_outputs = masked_logits(teacher, batch)
            weights = (0.1, 0.5)
        else:
            teacher_outputs, weights = teacher_top_k(batch, args.temperature), (0.1, 0.5)
        loss, _ = distillation_loss(logits, teacher_outputs, targets, *weights, args.temperature)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if distiller is not None:
        distiller.close()
    return (time.perf_counter() - started) / args.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="models/bort/teacher", help="teacher_prep's folder")
    parser.add_argument("--teacher-outputs", default="models/bort/teacher_outputs", help="teacher_outputs' folder")
    parser.add_argument("--corpus", default="data/corpus/tokenized", help="prepare_corpus' folder")
    parser.add_argument("--architecture", default="D2_A4_H128_I256", help="the student's <D, A, H, I> tag")
    parser.add_argument("--batch-size", type=int, default=32, help="a batch size the cache holds a stream of")
    parser.add_argument("--temperature", type=float, default=None,
                        help="a temperature the cache holds (default: bort.pretrain.temperature of params.yaml)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per variant per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds over the variants")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a pretraining job's)")
    args = parser.parse_args()
    if args.temperature is None:  # the project's validated params, the one source of the pretraining temperature
        args.temperature = float(load_params()["bort"]["pretrain"]["temperature"])

    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(args.teacher)
    teacher = AutoModelForMaskedLM.from_pretrained(args.teacher).eval()
    cache = TeacherOutputs.load(args.teacher_outputs)
    train_blocks, _, _ = load_corpus(args.corpus)
    times = {variant: [] for variant in VARIANTS}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            times[variant].append(step_seconds(variant, args, teacher, cache, train_blocks, tokenizer))
    print(f"{cpu_model_name()}, {args.threads} thread(s), {args.architecture}, batch {args.batch_size}, "
          f"top-{cache.info['top_k']} cache, {args.rounds} rounds of {args.steps} steps")
    mlm = statistics.median(times["mlm"])
    print(f"{'variant':<10} {'s/step':>8} {'x mlm':>7}   per-round means")
    for variant in VARIANTS:
        median = statistics.median(times[variant])
        rounds = ", ".join(f"{value:.4f}" for value in times[variant])
        print(f"{variant:<10} {median:>8.4f} {median / mlm:>7.2f}   {rounds}")


if __name__ == "__main__":
    main()
