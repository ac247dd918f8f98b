"""What does a sentence objective add to a pretraining step? Bort's MLM pretraining of one architecture on the
pipeline's corpus, measured side by side:

  mlm        plain blocks, the masked-LM loss alone (bort.pretrain.sentence_objective: none)
  mlm_sop    sentence pairs, MLM + ALBERT's sentence-order loss (the student with its head on [CLS])
  mlm_nsp    sentence pairs, MLM + BERT's next-sentence loss

    .venv/bin/python -m benchmarks.sentence_objective_cost [--architecture D2_A4_H128_I256] [--steps 150] [--threads 1]

It needs data/corpus/tokenized (`snakemake data/corpus/tokenized`) and reads the student's vocabulary and family
from --model (MiniLM by default: T's config before teacher_prep). Each step includes making its batch (the pairs
are built on the fly), the forward and backward passes and the AdamW step, as kd_pretrain does. The three students
(the same seed) train in lockstep, one step each in turn (mlm, mlm_sop, mlm_nsp, mlm, ...), so that load from other
processes hits the three alike; printed per variant: the median step time, the fastest step, the median of its
per-step ratios to the mlm step beside it, and the median time to make a batch.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import AutoConfig, AutoTokenizer  # noqa: E402

from workflow_scripts.bort.distillation import (build_student, distillation_loss, masked_logits,  # noqa: E402
                                                pretraining_logits, sentence_loss)
from workflow_scripts.bort.fptas import Candidate  # noqa: E402
from workflow_scripts.core.latency import cpu_model_name  # noqa: E402
from workflow_scripts.core.models import minilm_folder  # noqa: E402
from workflow_scripts.core.training import build_optimizer  # noqa: E402
from workflow_scripts.data.corpus import load_corpus, training_batches  # noqa: E402

VARIANTS = {"mlm": "none", "mlm_sop": "sop", "mlm_nsp": "nsp"}
WARM_UP_STEPS = 2  # untimed


def train_step(student, optimizer, batches, sentence_objective: str) -> tuple[float, float]:
    """(seconds of the whole step, seconds of making its batch) of one optimizer step."""
    started = time.perf_counter()
    batch = next(batches)  # the pairs are made here
    made = time.perf_counter()
    targets = batch["labels"][batch["labels"] != -100]
    if sentence_objective != "none":
        logits, pair_logits = pretraining_logits(student, batch)
    else:
        logits = masked_logits(student, batch)
    loss, _ = distillation_loss(logits, None, targets, 1.0, 0.0, 1.0)
    if sentence_objective != "none":
        loss = loss + sentence_loss(pair_logits, batch["sentence_labels"])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - started, made - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(minilm_folder()), help="a folder with the student's family config "
                        "and tokenizer (T's, or models/bort/teacher)")
    parser.add_argument("--corpus", default="data/corpus/tokenized", help="prepare_corpus' folder")
    parser.add_argument("--architecture", default="D2_A4_H128_I256", help="the student's <D, A, H, I> tag")
    parser.add_argument("--batch-size", type=int, default=32, help="sequences per step (bort.pretrain.batch_size)")
    parser.add_argument("--steps", type=int, default=150, help="timed steps per variant")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a pretraining job's)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model_config = AutoConfig.from_pretrained(args.model)
    train_blocks, _, _ = load_corpus(args.corpus)
    runs = {}
    for variant, sentence_objective in VARIANTS.items():
        student = build_student(model_config, Candidate.from_tag(args.architecture), 0.1, 0,
                                sentence_head=sentence_objective != "none")
        student.train()
        runs[variant] = (student, build_optimizer(student, 1e-3, 0.01),
                         training_batches(train_blocks, tokenizer, 0.15, args.batch_size, 0,
                                          sentence_objective=sentence_objective))
    step_times = {variant: [] for variant in VARIANTS}
    batch_times = {variant: [] for variant in VARIANTS}
    for step in range(WARM_UP_STEPS + args.steps):
        for variant, (student, optimizer, batches) in runs.items():
            seconds, batch_seconds = train_step(student, optimizer, batches, VARIANTS[variant])
            if step >= WARM_UP_STEPS:
                step_times[variant].append(seconds)
                batch_times[variant].append(batch_seconds)
    print(f"{cpu_model_name()}, {args.threads} thread(s), {args.architecture}, batch {args.batch_size} x "
          f"{train_blocks['input_ids'].shape[1]} tokens, {args.steps} steps each, in lockstep")
    print(f"{'variant':<10} {'s/step':>8} {'fastest':>8} {'x mlm':>7} {'batch ms':>9}")
    for variant in VARIANTS:
        ratios = [own / mlm for own, mlm in zip(step_times[variant], step_times["mlm"])]
        print(f"{variant:<10} {statistics.median(step_times[variant]):>8.4f} {min(step_times[variant]):>8.4f} "
              f"{statistics.median(ratios):>7.3f} {1000 * statistics.median(batch_times[variant]):>9.2f}")


if __name__ == "__main__":
    main()
