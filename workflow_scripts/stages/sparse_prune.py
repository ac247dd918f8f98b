"""Stages prune_magnitude and imp_prune: global L1 unstructured pruning of a fine-tuned checkpoint
(library: sparse/magnitude.py).

- prune_magnitude: the task's fine-tuned model pruned to --sparsity in one shot; the weights stay the fine-tuned
  ones (sparse_finetune then fine-tunes it with the masks kept).
- imp_prune: round k of IMP with rewinding (Chen et al. 2020). --model is round k-1's fine-tuned checkpoint (round
  1: the task's initial fine-tune) and --previous-masks its masks (none in round 1); the still-kept weights are
  ranked on their fine-tuned values and pruned to --sparsity (k x rate of the original weights, pruned ones stay
  pruned); then --rewind-to the pretrained model: the backbone is rebuilt as the initial fine-tune started (the
  pretrained folder loaded as a classifier after seeding with --seed) and copied in, masked; the classifier keeps
  its fine-tuned values.

Writes a Hugging Face folder (pruned weights as plain zeros), masks.safetensors (True = kept) and sparsity.json
(the target, what was pruned from, and the measured sparsity per matrix and over all prunable matrices).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from transformers import AutoConfig, AutoTokenizer

from workflow_scripts.core.models import load_for_classification
from workflow_scripts.core.training import seed_everything
from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage
from workflow_scripts.sparse.magnitude import (MASKS_FILE, apply_masks, check_sparsity, global_magnitude_masks,
                                               load_masks, measure_sparsity, rewind, save_sparse_checkpoint)


@dataclass
class PrunePaths:
    """What the stage reads and writes."""
    model: str = field(metadata={"help": "fine-tuned checkpoint folder to prune"})
    output: str = field(metadata={"help": "folder for the pruned checkpoint, its masks and sparsity.json"})
    previous_masks: str | None = field(default=None, metadata={
        "help": f"{MASKS_FILE} of --model (IMP after round 1): those weights stay pruned"})
    rewind_to: str | None = field(default=None, metadata={
        "help": "pretrained model folder (models/base): rewind the backbone to it after pruning (IMP)"})


@dataclass
class PruneOptions:
    """How much to prune, and how the rewound model is rebuilt (params.yaml unstructured_pruning, model, seed)."""
    sparsity: float = field(metadata={"help": "fraction of the original prunable weights pruned, in [0, 1)"})
    prune_pooler: bool = field(metadata={"help": "also prune the pooler's dense weight (BERT-Tickets does)"})
    attn_implementation: str = field(metadata={"choices": ["sdpa", "eager"], "help": "attention kernel"})
    seed: int | None = field(default=None, metadata={
        "help": "with --rewind-to: the seed the initial fine-tune started from (params.yaml seed)"})


def _check(paths: PrunePaths, options: PruneOptions, execution) -> str | None:
    try:
        check_sparsity(options.sparsity)
    except ValueError as error:
        return f"--sparsity: {error}"
    if paths.rewind_to is not None and options.seed is None:
        return "--rewind-to needs --seed (the seed the task's initial fine-tune was run with)"
    return None


def main(argv=None) -> None:
    paths, options, execution = parse_stage_args(__doc__, [PrunePaths, PruneOptions, Execution], argv, check=_check)
    logger, _ = start_stage(execution, paths, options)

    previous = load_masks(paths.previous_masks) if paths.previous_masks else None
    model = load_for_classification(paths.model, AutoConfig.from_pretrained(paths.model).num_labels,
                                    options.attn_implementation)
    if previous is not None:
        apply_masks(model, previous)  # the checkpoint holds them as zeros already; this checks they fit the model
    masks = global_magnitude_masks(model, options.sparsity, options.prune_pooler, previous)
    apply_masks(model, masks)
    if paths.rewind_to is not None:
        seed_everything(options.seed)  # as the initial fine-tune did before building its model
        initial = load_for_classification(paths.rewind_to, model.config.num_labels, options.attn_implementation)
        rewind(model, initial, masks)
    measured = measure_sparsity(model, masks)
    logger.info("pruned %d of %d prunable weights (sparsity %.4f, target %g)%s", measured["global"]["pruned"],
                measured["global"]["entries"], measured["global"]["sparsity"], options.sparsity,
                f"; backbone rewound to {paths.rewind_to}" if paths.rewind_to else "")
    save_sparse_checkpoint(model, AutoTokenizer.from_pretrained(paths.model), paths.output, masks, {
        "sparsity.json": {"target_sparsity": options.sparsity, "prune_pooler": options.prune_pooler,
                          "pruned_from": paths.model, "previous_masks": paths.previous_masks,
                          "rewound_to": paths.rewind_to, **measured}})
    logger.info("wrote %s", paths.output)


if __name__ == "__main__":
    main()
