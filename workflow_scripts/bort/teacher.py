"""The maximum point T of Bort's search as a masked-LM: distillation needs T's output distribution over the
vocabulary.

A checkpoint that has a masked-LM head (hub BERT and RoBERTa checkpoints: bert-base-cased, roberta-large) keeps it.
One without (the embedded MiniLM is a sentence encoder: its MLM head was dropped) gets a head fitted on the frozen
encoder: the transform (dense + GELU + LayerNorm) and the output bias are trained, the decoder is tied to the
frozen word embeddings. T's distribution is then the best this frozen encoder supports through one small head,
not the one it was pretrained with.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from workflow_scripts.bort.distillation import heldout_scores, masked_logits
from workflow_scripts.core.training import Periodic, run_training
from workflow_scripts.data.corpus import heldout_masked_batches, load_corpus, training_batches

LOG_EVERY_STEPS = 50


@dataclass
class TeacherHeadConfig:
    """The head fit (params.yaml bort.teacher; mask_probability from bort.corpus)."""
    head_steps: int = field(metadata={"help": "optimizer steps (0: keep the head as it is initialized)"})
    learning_rate: float = field(metadata={"help": "AdamW learning rate of the head"})
    batch_size: int = field(metadata={"help": "sequences per step (and per held-out forward pass)"})
    mask_probability: float = field(metadata={"help": "share of the tokens masked"})
    seed: int = field(metadata={"help": "seeds the head's initialization, batches and masks"})


def has_mlm_head(config) -> bool:
    return any(name.endswith("ForMaskedLM") for name in (config.architectures or []))


def masked_lm_on_encoder(folder: str):
    """A masked-LM whose encoder holds the checkpoint's weights, with a fresh head tied to its word embeddings."""
    from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

    config = AutoConfig.from_pretrained(folder)
    config.tie_word_embeddings = True
    config.architectures = None
    model = AutoModelForMaskedLM.from_config(config)
    encoder_state = AutoModel.from_pretrained(folder).state_dict()
    missing, unexpected = model.base_model.load_state_dict(encoder_state, strict=False)
    if missing:
        raise RuntimeError(f"the checkpoint in {folder} lacks encoder weights the masked-LM needs: {missing[:5]}")
    # The pooler is not part of a masked-LM; everything else must have been used.
    if [key for key in unexpected if not key.startswith("pooler.")]:
        raise RuntimeError(f"unexpected weights in {folder}: {unexpected[:5]}")
    model.tie_weights()
    return model


def fit_head(model, train_blocks, tokenizer, config: TeacherHeadConfig, device: str, logger) -> list[float]:
    """Train the head (everything outside the frozen encoder) for config.head_steps steps; the losses."""
    for parameter in model.base_model.parameters():
        parameter.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    logger.info("fitting the masked-LM head: %d trainable parameters, encoder frozen",
                sum(p.numel() for p in trainable))
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.0)
    batches = training_batches(train_blocks, tokenizer, config.mask_probability, config.batch_size, config.seed)
    model.to(device).train()

    def head_loss(model, batch: dict) -> torch.Tensor:
        logits = masked_logits(model, batch)
        return torch.nn.functional.cross_entropy(logits, batch["labels"][batch["labels"] != -100])

    def log(state) -> None:
        logger.info("head step %d/%d, loss %.4f", state.step, state.total_steps,
                    sum(state.history.losses[-LOG_EVERY_STEPS:]) / LOG_EVERY_STEPS)

    history = run_training(model, batches, head_loss, optimizer, total_steps=config.head_steps, device=device,
                           callbacks=[Periodic(LOG_EVERY_STEPS, log)])
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return history.losses


def prepare_teacher(model_folder: str, corpus_folder: str, config: TeacherHeadConfig, device: str, logger):
    """(masked-LM, tokenizer, record for teacher.json): T with its own head, or with one fitted here."""
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_folder)
    train_blocks, heldout_blocks, _ = load_corpus(corpus_folder)
    heldout = heldout_masked_batches(heldout_blocks, tokenizer, config.mask_probability, config.batch_size,
                                     config.seed)
    started = time.perf_counter()
    if has_mlm_head(AutoConfig.from_pretrained(model_folder)):
        model, head, losses = AutoModelForMaskedLM.from_pretrained(model_folder), "pretrained", []
        logger.info("%s has a masked-LM head: kept as it is", model_folder)
    else:
        torch.manual_seed(config.seed)
        model, head = masked_lm_on_encoder(model_folder), "fitted_on_frozen_encoder"
        losses = fit_head(model, train_blocks, tokenizer, config, device, logger) if config.head_steps else []
    scores = heldout_scores(model.to(device), heldout, device=device)
    logger.info("teacher held-out masked-LM accuracy %.4f, loss %.4f", scores["mlm_accuracy"], scores["mlm_loss"])
    record = {"head": head, "head_steps": len(losses), "head_losses": losses[::10],
              "seconds": time.perf_counter() - started, "heldout": scores}
    return model, tokenizer, record
