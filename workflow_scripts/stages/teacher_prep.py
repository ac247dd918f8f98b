"""Stage teacher_prep: the maximum point T of Bort's search as a masked-LM (models/bort/teacher).

Distillation needs T's output distribution over the vocabulary. A checkpoint that has a masked-LM head (hub BERT and
RoBERTa checkpoints: bert-base-cased, roberta-large) keeps it. One without (the embedded MiniLM is a sentence encoder:
its MLM head was dropped) gets a head fitted here on the frozen encoder: the transform (dense + GELU + LayerNorm)
and the output bias are trained, the decoder is tied to the frozen word embeddings. T's distribution is then the
best this frozen encoder supports through one small head, not the one it was pretrained with.
"""
from __future__ import annotations

import time

import torch

from workflow_scripts.bort.distillation import heldout_scores, masked_logits
from workflow_scripts.pipeline.cli import stage_parser, start_stage
from workflow_scripts.data.corpus import heldout_masked_batches, load_corpus, training_batches
from workflow_scripts.core.models import save_checkpoint


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


def fit_head(model, train_blocks, tokenizer, args, device, logger) -> list[float]:
    """Train the head (everything outside the frozen encoder) for args.head_steps steps; the losses."""
    for parameter in model.base_model.parameters():
        parameter.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    logger.info("fitting the masked-LM head: %d trainable parameters, encoder frozen",
                sum(p.numel() for p in trainable))
    optimizer = torch.optim.AdamW(trainable, lr=args.learning_rate, weight_decay=0.0)
    batches = training_batches(train_blocks, tokenizer, args.mask_probability, args.batch_size, args.seed)
    losses = []
    model.to(device).train()
    for step in range(args.head_steps):
        batch = {name: tensor.to(device) for name, tensor in next(batches).items()}
        logits = masked_logits(model, batch)
        loss = torch.nn.functional.cross_entropy(logits, batch["labels"][batch["labels"] != -100])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if (step + 1) % 50 == 0:
            logger.info("head step %d/%d, loss %.4f", step + 1, args.head_steps, sum(losses[-50:]) / 50)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return losses


def main(argv=None) -> None:
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, help="the base model folder (T)")
    parser.add_argument("--corpus", required=True, help="folder written by prepare_corpus")
    parser.add_argument("--output", required=True, help="masked-LM folder to write")
    group = parser.add_argument_group("head fit (from params.yaml: bort.teacher)")
    group.add_argument("--head-steps", type=int, required=True, help="optimizer steps (0: keep the head as is)")
    group.add_argument("--learning-rate", type=float, required=True)
    group.add_argument("--batch-size", type=int, required=True)
    group.add_argument("--mask-probability", type=float, required=True)
    group.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logger, device = start_stage(args)

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    train_blocks, heldout_blocks, _ = load_corpus(args.corpus)
    heldout = heldout_masked_batches(heldout_blocks, tokenizer, args.mask_probability, args.batch_size, args.seed)
    started = time.perf_counter()
    if has_mlm_head(AutoConfig.from_pretrained(args.model)):
        model, head, losses = AutoModelForMaskedLM.from_pretrained(args.model), "pretrained", []
        logger.info("%s has a masked-LM head: kept as it is", args.model)
    else:
        torch.manual_seed(args.seed)
        model, head = masked_lm_on_encoder(args.model), "fitted_on_frozen_encoder"
        losses = fit_head(model, train_blocks, tokenizer, args, device, logger) if args.head_steps else []
    scores = heldout_scores(model.to(device), heldout, device=device)
    logger.info("teacher held-out masked-LM accuracy %.4f, loss %.4f", scores["mlm_accuracy"], scores["mlm_loss"])
    record = {"head": head, "head_steps": len(losses), "head_losses": losses[::10], "seconds": time.perf_counter() - started,
              "heldout": scores}
    save_checkpoint(model.cpu(), tokenizer, args.output, extra_json={"teacher.json": record})
    logger.info("wrote %s", args.output)


if __name__ == "__main__":
    main()
