"""Stage kd_pretrain: pretrain the architecture the FPTAS chose, by distillation from T (or by MLM alone).

    python -m workflow_scripts.stages.kd_pretrain --objective kd --teacher models/bort/teacher --corpus data/corpus/tokenized \
        --selection results/bort/fptas/selection.json --output models/bort/pretrain/kd --curve curve.csv ...
    python -m torch.distributed.run --standalone --nproc_per_node 8 -m workflow_scripts.stages.kd_pretrain ...   # DDP

Objective `kd`: mlm_weight * CE_MLM + teacher_weight * tau^2 * KL(T || student) at temperature tau, on masked
positions (bort.distillation_loss). Objective `mlm`: the masked-LM loss alone, the self-supervised alternative.
The student starts from random initialization. AdamW (no decay on biases and LayerNorm), the Noam or linear
schedule, global gradient-norm clipping.

Checkpoints go to <output>.checkpoints/step_NNNNNNN every --checkpoint-every-steps steps (Hugging Face folders,
openable with `python -m workflow_scripts.tools.inspect`, plus trainer_state.pt); a killed run started again with the
same arguments resumes from the newest one and continues with exactly the batches it would have seen. At the end
the final model is written to --output with the checkpoints moved inside it (checkpoints/), and the held-out MLM
accuracy curve to --curve.

Under torchrun each of the WORLD_SIZE processes takes an equal slice of every global batch (--batch-size is the
global batch); the loss is normalized by the global number of masked positions, so averaging gradients over
ranks gives the single-process gradient. Only rank 0 evaluates and writes.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import time

import torch
import torch.distributed as dist

from workflow_scripts.bort.distillation import (build_student, distillation_loss, heldout_scores, masked_logits, optimizer_step,
                           noam_factor)
from workflow_scripts.bort.fptas import Candidate
from workflow_scripts.pipeline.cli import stage_parser, start_stage
from workflow_scripts.data.corpus import heldout_masked_batches, load_corpus, training_batches
from workflow_scripts.core.io_utils import atomic_output_dir, read_json, write_json, write_text
from workflow_scripts.core.training import TrainingConfig, build_optimizer, linear_schedule, seed_everything

CHECKPOINT_PREFIX = "step_"
STATE_FILE = "trainer_state.pt"
# Arguments that do not change what is computed: a run may resume under different ones.
EXECUTION_ARGS = ("threads", "device", "log_file", "output", "curve")


class MaskedLMForward(torch.nn.Module):
    """The student's forward to masked-position logits as one module, so that DDP sees (and syncs) every call."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, labels):
        return masked_logits(self.model, {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels})


def loss_weights(args) -> tuple[float, float]:
    return (args.mlm_weight, args.teacher_weight) if args.objective == "kd" else (1.0, 0.0)


def learning_rate_schedule(name: str, optimizer, warmup_steps: int, total_steps: int):
    """`noam` (the paper) or `linear` (the authors' code: linear warm-up, then linear decay to 0, the fine-tunes'
    schedule)."""
    if name == "noam":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: noam_factor(step, warmup_steps))
    if name == "linear":
        return linear_schedule(optimizer, total_steps, warmup_steps)
    raise ValueError(f"unknown schedule {name!r} (noam or linear)")


def fingerprint(args) -> str:
    """What a checkpoint must share with this run to be resumed: every argument that changes the computation."""
    relevant = {k: v for k, v in sorted(vars(args).items()) if k not in EXECUTION_ARGS}
    relevant["selection"] = read_json(args.selection)["chosen"]["tag"]
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def checkpoint_root(output: str) -> str:
    # Next to the output, not inside it: Snakemake deletes a job's outputs before rerunning it.
    return output.rstrip("/") + ".checkpoints"


def latest_checkpoint(root: str, expected_fingerprint: str, logger) -> tuple[str, dict] | tuple[None, None]:
    """(folder, trainer state) of the newest complete checkpoint of this run; checkpoints of other arguments are
    removed."""
    if not os.path.isdir(root):
        return None, None
    for name in sorted((n for n in os.listdir(root) if n.startswith(CHECKPOINT_PREFIX)), reverse=True):
        state_path = os.path.join(root, name, STATE_FILE)
        if not os.path.isfile(state_path):
            continue  # a checkpoint is complete only once its state file is there (written last, by rename)
        state = torch.load(state_path, weights_only=False)
        if state["fingerprint"] == expected_fingerprint:
            return os.path.join(root, name), state
        logger.warning("checkpoints in %s are from other arguments: starting over", root)
        shutil.rmtree(root)
        return None, None
    return None, None


def save_checkpoint(root: str, step: int, student, tokenizer, optimizer, scheduler, curve, args, run_fingerprint):
    from workflow_scripts.core.models import save_checkpoint as save_folder

    folder = os.path.join(root, f"{CHECKPOINT_PREFIX}{step:07d}")
    save_folder(student, tokenizer, folder, extra_json={"pretraining.json": {"step": step, "objective": args.objective}})
    state = {"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "curve": curve,
             "rng": torch.get_rng_state(), "fingerprint": run_fingerprint}
    temporary = os.path.join(folder, STATE_FILE + ".partial")
    torch.save(state, temporary)
    os.replace(temporary, os.path.join(folder, STATE_FILE))
    kept = sorted(n for n in os.listdir(root) if n.startswith(CHECKPOINT_PREFIX))
    for name in kept[:-args.keep_checkpoints] if args.keep_checkpoints else []:  # keep the newest N
        shutil.rmtree(os.path.join(root, name))


def curve_csv(curve: list[dict], objective: str) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["objective", "step", "mlm_accuracy", "mlm_loss", "train_loss"],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows({"objective": objective, **point} for point in curve)
    return buffer.getvalue()


def distributed_setup(device: str) -> tuple[int, int, str]:
    """(rank, world size, device) under torchrun; (0, 1, device) otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 1, device
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return dist.get_rank(), world_size, device


def global_masked_count(labels: torch.Tensor, world_size: int) -> float:
    count = (labels != -100).sum().to(torch.float64)
    if world_size > 1:
        dist.all_reduce(count)
    return count.item()


def train(args, logger, device) -> None:
    from torch.nn.parallel import DistributedDataParallel
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

    rank, world_size, device = distributed_setup(device)
    tokenizer = AutoTokenizer.from_pretrained(args.teacher)
    candidate = Candidate.from_tag(read_json(args.selection)["chosen"]["tag"])
    mlm_weight, teacher_weight = loss_weights(args)
    teacher = AutoModelForMaskedLM.from_pretrained(args.teacher).to(device).eval() if teacher_weight else None
    student = build_student(AutoConfig.from_pretrained(args.teacher), candidate, args.dropout, args.seed).to(device)
    train_blocks, heldout_blocks, _ = load_corpus(args.corpus)
    heldout = heldout_masked_batches(heldout_blocks, tokenizer, args.mask_probability, args.heldout_batch_size,
                                     args.seed)
    config = TrainingConfig(epochs=1, learning_rate=args.learning_rate, batch_size=args.batch_size,
                            weight_decay=args.weight_decay, max_grad_norm=args.max_grad_norm, seed=args.seed)
    optimizer = build_optimizer(student, config)
    warmup_steps = round(args.warmup_ratio * args.steps)
    scheduler = learning_rate_schedule(args.schedule, optimizer, warmup_steps, args.steps)

    run_fingerprint, root = fingerprint(args), checkpoint_root(args.output)
    start_step, curve = 0, []
    resume_from, state = latest_checkpoint(root, run_fingerprint, logger) if rank == 0 else (None, None)
    if world_size > 1:  # every rank resumes from rank 0's choice
        shared = [resume_from]
        dist.broadcast_object_list(shared, src=0)
        resume_from = shared[0]
        if resume_from and state is None:
            state = torch.load(os.path.join(resume_from, STATE_FILE), weights_only=False)
    if resume_from:
        student.load_state_dict(AutoModelForMaskedLM.from_pretrained(resume_from).state_dict())
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        start_step, curve = state["step"], state["curve"]
        logger.info("resuming from %s (step %d)", resume_from, start_step)
    else:
        seed_everything(args.seed + rank)  # dropout masks differ across ranks, as they would across a big batch
    forward = MaskedLMForward(student)
    if world_size > 1:
        forward = DistributedDataParallel(forward, device_ids=[int(device.split(":")[1])] if ":" in device else None)
    batches = training_batches(train_blocks, tokenizer, args.mask_probability, args.batch_size, args.seed,
                               start_step=start_step, rank=rank, world_size=world_size)
    student.train()
    started, recent_losses = time.perf_counter(), []
    for step in range(start_step, args.steps):
        batch = {name: tensor.to(device) for name, tensor in next(batches).items()}
        targets = batch["labels"][batch["labels"] != -100]
        normalizer = global_masked_count(batch["labels"], world_size) / world_size
        student_logits = forward(batch["input_ids"], batch["attention_mask"], batch["labels"])
        teacher_logits = None  # MLM only
        if teacher is not None:
            with torch.no_grad():
                teacher_logits = masked_logits(teacher, batch)
        loss, _ = distillation_loss(student_logits, teacher_logits, targets, mlm_weight, teacher_weight,
                                    args.temperature, normalizer=normalizer)
        optimizer_step(loss, student.parameters(), optimizer, scheduler, args.max_grad_norm)
        recent_losses.append(loss.item())
        done = step + 1
        if rank == 0 and (done % args.evaluate_every_steps == 0 or done == args.steps):
            scores = heldout_scores(student, heldout, device=device)
            curve.append({"step": done, "mlm_accuracy": scores["mlm_accuracy"], "mlm_loss": scores["mlm_loss"],
                          "train_loss": sum(recent_losses) / len(recent_losses)})
            recent_losses = []
            logger.info("step %d/%d: held-out MLM accuracy %.4f, loss %.4f (%.1f s)", done, args.steps,
                        scores["mlm_accuracy"], scores["mlm_loss"], time.perf_counter() - started)
        if rank == 0 and done % args.checkpoint_every_steps == 0 and done < args.steps:
            save_checkpoint(root, done, student, tokenizer, optimizer, scheduler, curve, args, run_fingerprint)
    if rank == 0:
        finish(args, student, tokenizer, curve, candidate, time.perf_counter() - started, start_step, world_size)
    if world_size > 1:
        dist.barrier()
        dist.destroy_process_group()


def finish(args, student, tokenizer, curve, candidate, seconds, start_step, world_size) -> None:
    """The final model, its curve and metrics, and the checkpoints moved inside the output."""
    final = curve[-1]
    metrics = {"objective": args.objective, "architecture": candidate.tag, "steps": args.steps,
               "resumed_from_step": start_step, "world_size": world_size, "train_seconds": seconds,
               "heldout_mlm_accuracy": final["mlm_accuracy"], "heldout_mlm_loss": final["mlm_loss"]}
    with atomic_output_dir(args.output) as staging:
        student.cpu().save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        write_json(os.path.join(staging, "metrics.json"), metrics)
        write_text(os.path.join(staging, "curve.csv"), curve_csv(curve, args.objective))
        root = checkpoint_root(args.output)
        if os.path.isdir(root):
            os.rename(root, os.path.join(staging, "checkpoints"))
    write_text(args.curve, curve_csv(curve, args.objective))


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--teacher", required=True, help="masked-LM folder written by teacher_prep")
    parser.add_argument("--corpus", required=True, help="folder written by prepare_corpus")
    parser.add_argument("--selection", required=True, help="selection.json written by fptas_select")
    parser.add_argument("--output", required=True, help="model folder to write")
    parser.add_argument("--curve", required=True, help="CSV of held-out MLM accuracy against steps (DVC plot)")
    group = parser.add_argument_group("pretraining (from params.yaml: bort.pretrain)")
    group.add_argument("--objective", choices=["kd", "mlm"], required=True)
    group.add_argument("--mlm-weight", type=float, required=True, help="weight of the MLM loss (kd objective)")
    group.add_argument("--teacher-weight", type=float, required=True, help="weight of the KL to T (kd objective)")
    group.add_argument("--temperature", type=float, required=True, help="tau")
    group.add_argument("--learning-rate", type=float, required=True, help="peak learning rate")
    group.add_argument("--schedule", choices=["noam", "linear"], required=True)
    group.add_argument("--warmup-ratio", type=float, required=True)
    group.add_argument("--max-grad-norm", type=float, required=True)
    group.add_argument("--weight-decay", type=float, required=True)
    group.add_argument("--batch-size", type=int, required=True, help="global batch (sequences per step)")
    group.add_argument("--steps", type=int, required=True)
    group.add_argument("--dropout", type=float, required=True)
    group.add_argument("--mask-probability", type=float, required=True)
    group.add_argument("--evaluate-every-steps", type=int, required=True)
    group.add_argument("--checkpoint-every-steps", type=int, required=True)
    group.add_argument("--keep-checkpoints", type=int, default=0, help="newest checkpoints kept (0: all)")
    group.add_argument("--heldout-batch-size", type=int, default=32)
    group.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logger, device = start_stage(args)
    train(args, logger, device)


if __name__ == "__main__":
    main()
