"""The maximum point T of Bort's search as a masked-LM: distillation needs T's output distribution over the
vocabulary.

A checkpoint that has a masked-LM head (hub BERT and RoBERTa checkpoints: bert-base-cased, roberta-large) keeps it.
One without (the embedded MiniLM is a sentence encoder: its MLM head was dropped) gets a fresh head, the decoder
tied to the word embeddings. Then `steps` steps of masked-LM training on the corpus' training split:

- `train: whole` (the default) trains encoder and head together: MiniLM was pretrained as a masked LM before it
  became a sentence encoder, and a few hundred steps bring back a teacher worth distilling (0.17 held-out MLM
  accuracy with the head alone on the generated corpus, above 0.40 with the whole model);
- `train: head` keeps the encoder frozen and fits only the head (transform and output bias): T's distribution is
  then the best the frozen encoder supports through one small head.

steps = 0 keeps the model as loaded (a hub MLM checkpoint as published).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from workflow_scripts.bort.distillation import heldout_scores, masked_logits
from workflow_scripts.core.io_utils import verified
from workflow_scripts.core.training import Periodic, build_optimizer, linear_schedule, run_training
from workflow_scripts.data.corpus import heldout_masked_batches, load_corpus, training_batches

LOG_EVERY_STEPS = 50


@dataclass
class TeacherConfig:
    """T's masked-LM training (params.yaml bort.teacher; mask_probability from bort.corpus)."""
    train: str = field(metadata={"choices": ["whole", "head"],
                                 "help": "whole: encoder and head; head: the head on the frozen encoder"})
    steps: int = field(metadata={"help": "optimizer steps (0: keep the model as loaded)"})
    learning_rate: float = field(metadata={"help": "peak AdamW learning rate"})
    warmup_ratio: float = field(metadata={"help": "fraction of the steps with linear warm-up (then linear decay)"})
    weight_decay: float = field(metadata={"help": "AdamW weight decay (not on biases and LayerNorm weights)"})
    max_grad_norm: float = field(metadata={"help": "global gradient-norm clip"})
    batch_size: int = field(metadata={"help": "sequences per step (and per held-out forward pass)"})
    mask_probability: float = field(metadata={"help": "share of the tokens masked"})
    seed: int = field(metadata={"help": "seeds the head's initialization, batches, masks and dropout"})


def has_mlm_head(config) -> bool:
    return any(name.endswith("ForMaskedLM") for name in (config.architectures or []))


def masked_lm_on_encoder(folder: str):
    """A masked-LM whose encoder holds the checkpoint's weights, with a fresh head tied to its word embeddings."""
    from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

    config = AutoConfig.from_pretrained(folder)
    config.tie_word_embeddings = True
    config.architectures = None
    model = AutoModelForMaskedLM.from_config(config)
    encoder_state = AutoModel.from_pretrained(verified(folder)).state_dict()
    missing, unexpected = model.base_model.load_state_dict(encoder_state, strict=False)
    if missing:
        raise RuntimeError(f"the checkpoint in {folder} lacks encoder weights the masked-LM needs: {missing[:5]}")
    # The pooler is not part of a masked-LM; everything else must have been used.
    if [key for key in unexpected if not key.startswith("pooler.")]:
        raise RuntimeError(f"unexpected weights in {folder}: {unexpected[:5]}")
    model.tie_weights()
    return model


def train_masked_lm(model, train_blocks, tokenizer, config: TeacherConfig, device: str, logger) -> list[float]:
    """config.steps steps of masked-LM training (the whole model, or the head on the frozen encoder); the losses."""
    if config.train == "head":
        for parameter in model.base_model.parameters():
            parameter.requires_grad_(False)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("masked-LM training of %s: %d trainable parameters, %d steps", config.train, trainable, config.steps)
    optimizer = build_optimizer(model, config.learning_rate, config.weight_decay)
    scheduler = linear_schedule(optimizer, config.steps, round(config.warmup_ratio * config.steps))
    batches = training_batches(train_blocks, tokenizer, config.mask_probability, config.batch_size, config.seed)
    model.to(device).train()

    def mlm_loss(model, batch: dict) -> torch.Tensor:
        logits = masked_logits(model, batch)
        return torch.nn.functional.cross_entropy(logits, batch["labels"][batch["labels"] != -100])

    def log(state) -> None:
        logger.info("step %d/%d, loss %.4f", state.step, state.total_steps,
                    sum(state.history.losses[-LOG_EVERY_STEPS:]) / LOG_EVERY_STEPS)

    history = run_training(model, batches, mlm_loss, optimizer, total_steps=config.steps, scheduler=scheduler,
                           max_grad_norm=config.max_grad_norm, device=device,
                           callbacks=[Periodic(LOG_EVERY_STEPS, log)])
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return history.losses


def prepare_teacher(model_folder: str, corpus_folder: str, config: TeacherConfig, device: str, logger):
    """(masked-LM, tokenizer, record for teacher.json): T with its own head or a fresh one, trained config.steps
    steps, with its held-out scores before and after."""
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_folder)
    train_blocks, heldout_blocks, _ = load_corpus(corpus_folder)
    heldout = heldout_masked_batches(heldout_blocks, tokenizer, config.mask_probability, config.batch_size,
                                     config.seed)
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    if has_mlm_head(AutoConfig.from_pretrained(model_folder)):
        model, head = AutoModelForMaskedLM.from_pretrained(verified(model_folder)), "pretrained"
        logger.info("%s has a masked-LM head: kept", model_folder)
    else:
        model, head = masked_lm_on_encoder(model_folder), "fresh"
    before = heldout_scores(model.to(device), heldout, device=device)
    losses = train_masked_lm(model, train_blocks, tokenizer, config, device, logger) if config.steps else []
    scores = heldout_scores(model, heldout, device=device)
    logger.info("teacher held-out masked-LM accuracy %.4f (before training %.4f), loss %.4f",
                scores["mlm_accuracy"], before["mlm_accuracy"], scores["mlm_loss"])
    record = {"head": head, "train": config.train, "steps": len(losses), "losses": losses[::10],
              "seconds": time.perf_counter() - started, "heldout_before": before, "heldout": scores,
              "most_frequent_token_rate": most_frequent_token_rate(heldout)}
    return model, tokenizer, record


def most_frequent_token_rate(batches: list[dict]) -> float:
    """Held-out accuracy of always predicting the most frequent masked token: the rate a student must beat."""
    targets = torch.cat([batch["labels"][batch["labels"] != -100] for batch in batches])
    return targets.bincount().max().item() / len(targets)
