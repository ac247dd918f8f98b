"""Bort's pretraining of the chosen architecture: knowledge distillation from T (objective `kd`) or the masked-LM
loss alone (`mlm`), from random initialization, resumable, optionally under DDP.

    run = pretrain(teacher_folder, corpus_folder, selection_file, output, config, distributed_setup(device), logger)
    if run.distributed.rank == 0:
        write_pretrained(run, output, curve_file)

Objective `kd`: mlm_weight * CE_MLM + teacher_weight * tau^2 * KL(T || student) at temperature tau, on masked
positions (distillation.distillation_loss), normalized by the global number of masked positions, with T's outputs
read from the teacher_outputs stage's cache (or T run in every step when no cache is given); objective `mlm`:
the masked-LM loss alone; objective `tinybert`: TinyBERT's general distillation (distill/general_distillation.py:
embedding, hidden-state and attention-score MSEs to T's, through a learned projection W, on the same masked stream;
T runs in every step, W is part of the trainer state; one process, no stacking). AdamW (no decay on biases and
LayerNorm), the Noam or linear schedule, global gradient-norm clipping, through core.training.run_training.

With `sentence_objective` sop (ALBERT's sentence-order prediction) or nsp (BERT's next-sentence prediction) the
stream is made of sentence pairs (data.corpus.sentence_pairs), the student is the family's pretraining model (a
binary head on the pooled [CLS]; distillation.build_student) and sentence_weight * the pairs' cross-entropy is added
to the kd or mlm loss; the curve also records held-out pair accuracy (sop_accuracy or nsp_accuracy).

With `stacking` stages k > 0 (bort/stacking.py, Gong et al. 2019) the student starts with D / 2^k of the chosen
depth D and its encoder is doubled after each switch step, the optimizer rebuilt over the new layers and the
schedule going on; the final model has depth D. Stages 0 trains depth D from the start.

Checkpoints go to <output>.checkpoints/step_NNNNNNN every `checkpoint_every_steps` steps (Hugging Face folders
plus trainer_state.pt, through core.resume); a run started again with the same inputs, code and config resumes
from the newest one and continues with exactly the batches, random state and curve it would have had.
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field

import pandas as pd
import torch

from workflow_scripts.bort.distillation import (build_student, distillation_loss, heldout_scores,
                                                heldout_sentence_scores, masked_logits, noam_factor,
                                                pretraining_logits, sentence_loss)
from workflow_scripts.bort.fptas import Candidate
from workflow_scripts.bort.stacking import (depth_after, depth_schedule, regroup_optimizer, stack_encoder,
                                            stacking_error)
from workflow_scripts.bort.teacher_outputs import TeacherOutputs, teacher_top_k
from workflow_scripts.core.io_utils import atomic_output_dir, read_json, verified, verify_checksums, write_json, write_text
from workflow_scripts.core.resume import Checkpoints, fingerprint
from workflow_scripts.core.surgery import load_pruned
from workflow_scripts.core.training import (Callback, Distributed, Periodic, build_optimizer, linear_schedule,
                                            parameter_groups, restore_trainer_state, run_training, seed_everything,
                                            trainer_state)
from workflow_scripts.data.corpus import heldout_masked_batches, heldout_pair_batches, load_corpus, training_batches
from workflow_scripts.distill.general_distillation import GeneralDistillationLosses, TransformerDistillation

CODE_MODULE = "workflow_scripts.stages.kd_pretrain"  # its code files are part of the resume fingerprint
STATE_FILE = "trainer_state.pt"


@dataclass
class PretrainConfig:
    """Pretraining (params.yaml bort.pretrain; mask_probability from bort.corpus, heldout_batch_size from
    bort.fptas)."""
    objective: str = field(metadata={"choices": ["kd", "mlm", "tinybert"], "help": "kd: distillation from T; mlm: "
                                     "MLM alone; tinybert: TinyBERT's general distillation (intermediate layers)"})
    mlm_weight: float = field(metadata={"help": "weight of the MLM loss (kd objective)"})
    teacher_weight: float = field(metadata={"help": "weight of the KL to T (kd objective)"})
    temperature: float = field(metadata={"help": "tau of the KL term"})
    learning_rate: float = field(metadata={"help": "peak learning rate"})
    schedule: str = field(metadata={"choices": ["noam", "linear"], "help": "learning-rate schedule"})
    warmup_ratio: float = field(metadata={"help": "fraction of the steps with warm-up"})
    max_grad_norm: float = field(metadata={"help": "global gradient-norm clip"})
    weight_decay: float = field(metadata={"help": "AdamW weight decay (not on biases and LayerNorm weights)"})
    batch_size: int = field(metadata={"help": "global batch in sequences (split over DDP processes)"})
    steps: int = field(metadata={"help": "optimizer steps"})
    stacking: dict = field(metadata={"help": 'progressive stacking: {"stages": k, "switch_steps": [s_1, ..., s_k]}; '
                                             'depth / 2^k layers first, doubled after each switch step (k 0: off)'})
    dropout: float = field(metadata={"help": "dropout of the student"})
    mask_probability: float = field(metadata={"help": "share of the tokens masked (BERT's 80/10/10)"})
    evaluate_every_steps: int = field(metadata={"help": "steps between held-out MLM evaluations (the curve)"})
    checkpoint_every_steps: int = field(metadata={"help": "steps between checkpoints"})
    keep_checkpoints: int = field(metadata={"help": "newest checkpoints kept (0: all)"})
    heldout_batch_size: int = field(metadata={"help": "sequences per held-out forward pass"})
    seed: int = field(metadata={"help": "seeds the student's initialization, batches, masks and dropout"})
    sentence_objective: str = field(default="none", metadata={
        "choices": ["none", "sop", "nsp"], "help": "sentence-pair objective beside kd or mlm: sop (ALBERT's "
        "sentence order: B A negatives), nsp (BERT's next sentence: B from another block), none (plain blocks)"})
    sentence_weight: float | None = field(default=None, metadata={
        "help": "weight of the sentence-pair cross-entropy (bort.pretrain.sentence_weight; with a sentence objective)"})
    tinybert: dict | None = field(default=None, metadata={
        "help": 'objective tinybert only (bort.pretrain.tinybert): {"layer_mapping": ..., "embedding_weight": ..., '
                '"hidden_weight": ..., "attention_weight": ..., "mlm_weight": ...}'})


@dataclass
class PretrainRun:
    """A finished pretraining: the student and what its outputs record."""
    student: object
    tokenizer: object
    candidate: Candidate
    config: PretrainConfig
    curve: list[dict]
    seconds: float
    start_step: int
    distributed: Distributed
    checkpoints: Checkpoints | None  # rank 0 only
    teacher_outputs: str  # "cached", "online" (T run in every step) or "none" (MLM only)


class MaskedLMForward(torch.nn.Module):
    """The student's forward to masked-position logits as one module, so that DDP sees (and syncs) every call."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, labels, token_type_ids=None):
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        if token_type_ids is None:
            return masked_logits(self.model, batch)
        # sentence pairs: (masked-position logits, pair logits) from one encoder pass
        return pretraining_logits(self.model, {**batch, "token_type_ids": token_type_ids})


def loss_weights(config: PretrainConfig) -> tuple[float, float]:
    return (config.mlm_weight, config.teacher_weight) if config.objective == "kd" else (1.0, 0.0)


def learning_rate_schedule(name: str, optimizer, warmup_steps: int, total_steps: int):
    """`noam` (the paper) or `linear` (the authors' code: linear warm-up, then linear decay to 0, the fine-tunes'
    schedule)."""
    if name == "noam":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: noam_factor(step, warmup_steps))
    if name == "linear":
        return linear_schedule(optimizer, total_steps, warmup_steps)
    raise ValueError(f"unknown schedule {name!r} (noam or linear)")


def masked_count(batch: dict) -> torch.Tensor:
    return (batch["labels"] != -100).sum()


CURVE_COLUMNS = ["objective", "step", "mlm_accuracy", "mlm_loss", "train_loss", "train_seconds"]
# Held-out pair accuracy and loss, in the curves of runs with that sentence objective only.
SENTENCE_CURVE_COLUMNS = ["sop_accuracy", "sop_loss", "nsp_accuracy", "nsp_loss"]


def curve_csv(curve: list[dict], objective: str) -> str:
    """The held-out curve as CSV (the DVC plot): one row per evaluation."""
    extra = [name for name in SENTENCE_CURVE_COLUMNS if curve and name in curve[0]]
    table = pd.DataFrame([{"objective": objective, **point} for point in curve], columns=[*CURVE_COLUMNS, *extra])
    return table.to_csv(index=False, lineterminator="\n")


def check_sentence_objective(config: PretrainConfig) -> None:
    if config.sentence_objective == "none":
        return
    if config.objective not in ("kd", "mlm"):
        raise ValueError(f"sentence_objective {config.sentence_objective} goes with objective kd or mlm, not "
                         f"{config.objective}")
    if config.sentence_weight is None or config.sentence_weight <= 0:
        raise ValueError(f"sentence_objective {config.sentence_objective} needs a positive --sentence-weight "
                         f"(bort.pretrain.sentence_weight), got {config.sentence_weight}")


class StackingSwitches(Callback):
    """Progressive stacking: after each switch step the student's encoder is doubled (layer L' + i a copy of layer
    i) and the optimizer rebuilt over the new parameters (bort/stacking.py says what happens to its state and the
    schedule). Runs after the held-out curve (the point at a switch step is the model trained at the old depth) and
    before the checkpoint (a checkpoint at a switch step holds the stacked model, as depth_after says)."""

    def __init__(self, student, optimizer, config: PretrainConfig, logger):
        self.student, self.optimizer, self.config, self.logger = student, optimizer, config, logger

    def on_step(self, state) -> None:
        if state.step in self.config.stacking["switch_steps"]:
            stack_once(self.student, self.optimizer, self.config.weight_decay)
            self.logger.info("step %d: encoder stacked to %d layers", state.step,
                             self.student.config.num_hidden_layers)


def stack_once(student, optimizer, weight_decay: float) -> None:
    copied_from = stack_encoder(student)  # before the groups are read: they must hold the new layers
    regroup_optimizer(optimizer, parameter_groups(student, weight_decay), copied_from)


def check_stacking(config: PretrainConfig, depth: int, world_size: int) -> None:
    """The option against the chosen depth (params.yaml is checked against every depth of the search space)."""
    error = stacking_error(config.stacking, config.steps, [depth], "the chosen architecture's depth")
    if error:
        raise ValueError(f"stacking: {error}")
    if config.stacking["stages"] and world_size > 1:
        raise ValueError("stacking is not supported under DDP: the DDP wrapper registers the parameters once, "
                         "and stacking adds layers")
    if config.objective == "tinybert" and (config.stacking["stages"] or world_size > 1):
        raise ValueError("objective tinybert runs in one process without stacking (its layer mapping and projection "
                         "are built for the final depth)")


class HeldOutCurve(Periodic):
    """Held-out MLM accuracy and loss, with the mean training loss since the previous point and the training time so
    far (wall-clock seconds spent outside these evaluations: the x-axis of the equal-time comparison), every
    `evaluate_every_steps` steps and after the last."""

    def __init__(self, student, heldout: list[dict], config: PretrainConfig, device: str, logger,
                 curve: list[dict], recent_losses: list[float], train_seconds_before: float = 0.0,
                 heldout_pairs: list[dict] | None = None):
        super().__init__(config.evaluate_every_steps, self.evaluate, at_last=True)
        self.student, self.heldout, self.device, self.logger = student, heldout, device, logger
        self.heldout_pairs, self.sentence_objective = heldout_pairs, config.sentence_objective
        self.curve, self.recent_losses = curve, recent_losses
        self.started, self.evaluation_seconds = time.perf_counter(), 0.0
        self.train_seconds_before = train_seconds_before

    def train_seconds(self) -> float:
        return self.train_seconds_before + time.perf_counter() - self.started - self.evaluation_seconds

    def on_step(self, state) -> None:
        self.recent_losses.append(state.loss)
        super().on_step(state)

    def evaluate(self, state) -> None:
        started = time.perf_counter()
        train_seconds = self.train_seconds()
        scores = heldout_scores(self.student, self.heldout, device=self.device)
        self.curve.append({"step": state.step, "mlm_accuracy": scores["mlm_accuracy"], "mlm_loss": scores["mlm_loss"],
                           "train_loss": sum(self.recent_losses) / len(self.recent_losses),
                           "train_seconds": round(train_seconds, 3)})
        if self.heldout_pairs is not None:
            pair_scores = heldout_sentence_scores(self.student, self.heldout_pairs, device=self.device)
            self.curve[-1].update({f"{self.sentence_objective}_accuracy": pair_scores["accuracy"],
                                   f"{self.sentence_objective}_loss": pair_scores["loss"]})
            self.logger.info("step %d: held-out %s accuracy %.4f", state.step, self.sentence_objective,
                             pair_scores["accuracy"])
        self.recent_losses.clear()
        self.evaluation_seconds += time.perf_counter() - started
        self.logger.info("step %d/%d: held-out MLM accuracy %.4f, loss %.4f (%.1f s of training)", state.step,
                         state.total_steps, scores["mlm_accuracy"], scores["mlm_loss"], train_seconds)


def pretrain(teacher_folder: str, corpus_folder: str, selection_file: str, output: str, config: PretrainConfig,
             distributed: Distributed, logger, teacher_outputs: str | None = None) -> PretrainRun:
    """Pretrain the architecture selection_file chose; resumes from <output>.checkpoints when it can. KD reads T's
    outputs from the teacher_outputs folder when given, else runs T on every batch."""
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

    rank, world_size, device = distributed.rank, distributed.world_size, distributed.device
    tokenizer = AutoTokenizer.from_pretrained(teacher_folder)
    candidate = Candidate.from_tag(read_json(selection_file)["chosen"]["tag"])
    check_stacking(config, candidate.depth, world_size)
    if config.stacking["stages"] and candidate.sharing != "none":
        raise ValueError(f"stacking copies layers one by one; {candidate.tag} shares parameters across layers "
                         "(ALBERT's sharing): train it without stacking")
    check_sentence_objective(config)
    pairs = config.sentence_objective != "none"
    mlm_weight, teacher_weight = loss_weights(config)
    cache = TeacherOutputs.load(teacher_outputs) if teacher_weight and teacher_outputs else None
    general = config.objective == "tinybert"  # TinyBERT's general distillation: T's states, online
    online = (teacher_weight and cache is None) or general
    teacher = AutoModelForMaskedLM.from_pretrained(verified(teacher_folder)).to(device).eval() if online else None
    start_depth = depth_schedule(candidate.depth, config.stacking)[0][1]
    student = build_student(AutoConfig.from_pretrained(teacher_folder),
                            dataclasses.replace(candidate, depth=start_depth), config.dropout, config.seed,
                            sentence_head=pairs)
    student = student.to(device)
    if general:
        if config.tinybert is None:
            raise ValueError("objective tinybert needs --tinybert (bort.pretrain.tinybert)")
        distiller = TransformerDistillation(student, teacher, GeneralDistillationLosses(**config.tinybert)).to(device)
    else:
        distiller = None
    trained = distiller if general else student  # what the optimizer and the gradient clip see (W too)
    train_blocks, heldout_blocks, _ = load_corpus(corpus_folder)
    heldout = heldout_masked_batches(heldout_blocks, tokenizer, config.mask_probability, config.heldout_batch_size,
                                     config.seed)
    heldout_pairs = heldout_pair_batches(heldout_blocks, tokenizer, config.mask_probability,
                                         config.heldout_batch_size, config.seed,
                                         config.sentence_objective) if pairs else None
    optimizer = build_optimizer(trained, config.learning_rate, config.weight_decay)
    scheduler = learning_rate_schedule(config.schedule, optimizer, round(config.warmup_ratio * config.steps),
                                       config.steps)

    checkpoints, resume_from = None, None
    if rank == 0:
        checkpoints = Checkpoints(output, fingerprint(
            inputs={"teacher": teacher_folder, "corpus": corpus_folder, "selection": selection_file,
                    **({"teacher_outputs": teacher_outputs} if cache else {})},
            code_module=CODE_MODULE, hyperparameters=[config]), ".checkpoints", "step_", 7)
        latest = checkpoints.latest()
        resume_from = latest[1] if latest else None
    if world_size > 1:  # every rank resumes from rank 0's choice
        shared = [resume_from]
        torch.distributed.broadcast_object_list(shared, src=0)
        resume_from = shared[0]
    start_step, curve, recent_losses, train_seconds_before = 0, [], [], 0.0
    if resume_from:
        verify_checksums(resume_from)
        state = torch.load(os.path.join(resume_from, STATE_FILE), weights_only=False)
        while student.config.num_hidden_layers < depth_after(state["step"], candidate.depth, config.stacking):
            stack_once(student, optimizer, config.weight_decay)  # the checkpoint's depth; its weights come next
        # load_pruned: a factorized or shared student's folder (config.albert) is rebuilt and re-tied
        student.load_state_dict(load_pruned(resume_from, type(student)).state_dict())
        if general:
            distiller.projection.load_state_dict(state["projection"])
        start_step = restore_trainer_state(state, optimizer, scheduler)
        curve, recent_losses = state["curve"], state["recent_losses"]
        train_seconds_before = state.get("train_seconds", 0.0)
        logger.info("resuming from %s (step %d)", resume_from, start_step)
    else:
        seed_everything(config.seed + rank)  # dropout masks differ across ranks, as they would across a big batch
    forward = distributed.wrap(distiller if general else MaskedLMForward(student))
    batches = training_batches(train_blocks, tokenizer, config.mask_probability, config.batch_size, config.seed,
                               start_step=start_step, rank=rank, world_size=world_size,
                               sentence_objective=config.sentence_objective)
    if cache is not None:
        batches = cache.attach(batches, batch_size=config.batch_size, seed=config.seed,
                               mask_probability=config.mask_probability, steps=config.steps,
                               temperature=config.temperature, start_step=start_step, rank=rank,
                               world_size=world_size, sentence_objective=config.sentence_objective)

    def loss_fn(forward, batch: dict, normalizer: float) -> torch.Tensor:
        if general:  # mean squared errors over the batch's tokens: no normalizer
            return forward(batch["input_ids"], batch["attention_mask"], batch["labels"])
        targets = batch["labels"][batch["labels"] != -100]
        if pairs:
            student_logits, pair_logits = forward(batch["input_ids"], batch["attention_mask"], batch["labels"],
                                                  batch["token_type_ids"])
        else:
            student_logits = forward(batch["input_ids"], batch["attention_mask"], batch["labels"])
        teacher_outputs = None  # MLM only
        if cache is not None:
            teacher_outputs = teacher_top_k(batch, config.temperature)
        elif teacher is not None:
            with torch.no_grad():
                teacher_outputs = masked_logits(teacher, batch)
        loss, _ = distillation_loss(student_logits, teacher_outputs, targets, mlm_weight, teacher_weight,
                                    config.temperature, normalizer=normalizer)
        if pairs:
            loss = loss + config.sentence_weight * sentence_loss(pair_logits, batch["sentence_labels"])
        return loss

    def save_checkpoint(state) -> None:
        with checkpoints.write(state.step) as folder:
            student.save_pretrained(folder, safe_serialization=True)
            tokenizer.save_pretrained(folder)
            write_json(os.path.join(folder, "pretraining.json"), {"step": state.step, "objective": config.objective,
                                                                  **sentence_record(config)})
            projection = {"projection": distiller.projection.state_dict()} if general else {}
            torch.save(trainer_state(state.step, optimizer, scheduler, curve=curve, recent_losses=recent_losses,
                                     train_seconds=held_out_curve.train_seconds(), **projection),
                       os.path.join(folder, STATE_FILE))
        checkpoints.keep_newest(config.keep_checkpoints)

    held_out_curve = None if rank else HeldOutCurve(student, heldout, config, device, logger, curve, recent_losses,
                                                    train_seconds_before, heldout_pairs)
    switches = [StackingSwitches(student, optimizer, config, logger)] if config.stacking["stages"] else []
    callbacks = [] if rank else [held_out_curve, *switches,  # only rank 0: stacking refuses DDP (check_stacking)
                                 Periodic(config.checkpoint_every_steps, save_checkpoint, not_at_last=True)]
    student.train()
    started = time.perf_counter()
    try:
        run_training(forward, batches, loss_fn, optimizer, total_steps=config.steps, scheduler=scheduler,
                     max_grad_norm=config.max_grad_norm, device=device, start_step=start_step, count_fn=masked_count,
                     world_size=world_size, callbacks=callbacks,
                     description=None if rank else f"pretrain {config.objective}")
    finally:
        if general:
            distiller.close()
    return PretrainRun(student, tokenizer, candidate, config, curve, time.perf_counter() - started, start_step,
                       distributed, checkpoints, "cached" if cache else "online" if teacher is not None else "none")


def sentence_record(config: PretrainConfig) -> dict:
    """The sentence objective and its weight, for metrics.json and pretraining.json (nothing when off)."""
    if config.sentence_objective == "none":
        return {}
    return {"sentence_objective": config.sentence_objective, "sentence_weight": config.sentence_weight}


def write_pretrained(run: PretrainRun, output: str, curve_file: str) -> None:
    """The final model with metrics.json and curve.csv, the checkpoints moved inside (checkpoints/), and the curve
    again at curve_file (the DVC plot)."""
    final = run.curve[-1]
    metrics = {"objective": run.config.objective, "architecture": run.candidate.tag, "steps": run.config.steps,
               "resumed_from_step": run.start_step, "world_size": run.distributed.world_size,
               "train_seconds": run.seconds, "curve_train_seconds": final["train_seconds"],
               "seconds_per_step": final["train_seconds"] / run.config.steps,
               "teacher_outputs": run.teacher_outputs, "heldout_mlm_accuracy": final["mlm_accuracy"],
               "heldout_mlm_loss": final["mlm_loss"]}
    metrics.update(sentence_record(run.config))  # without a sentence objective the file is as it was
    if run.config.sentence_objective != "none":  # heldout_sop_accuracy or heldout_nsp_accuracy
        pair_accuracy = f"{run.config.sentence_objective}_accuracy"
        metrics[f"heldout_{pair_accuracy}"] = final[pair_accuracy]
    if run.config.stacking["stages"]:  # (first step, depth) of each stage; without stacking the file is as it was
        metrics["depth_schedule"] = depth_schedule(run.candidate.depth, run.config.stacking)
    with atomic_output_dir(output) as staging:
        run.student.cpu().save_pretrained(staging, safe_serialization=True)
        run.tokenizer.save_pretrained(staging)
        write_json(os.path.join(staging, "metrics.json"), metrics)
        write_text(os.path.join(staging, "curve.csv"), curve_csv(run.curve, run.config.objective))
        run.checkpoints.move_into(staging, "checkpoints")
    write_text(curve_file, curve_csv(run.curve, run.config.objective))
