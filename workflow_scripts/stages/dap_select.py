"""Stage dap_select: a structured baseline at the search's FLOPs (seed 004's comparison).

Keeps as many heads and FFN units as the searched architecture (--search, a dap_search output) keeps, chosen at
random (--method random) or by gradient importance on the training split (--method importance; Michel et al.
2019, per-layer normalized), and prunes the fine-tuned model (--model) to them. Writes the pruned checkpoint with
selection.json (the kept units, the FLOPs against the search's).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from transformers import AutoTokenizer, DataCollatorWithPadding

from workflow_scripts.core.counters import count_flops
from workflow_scripts.core.io_utils import read_json
from workflow_scripts.core.models import load_for_classification, save_checkpoint
from workflow_scripts.core.surgery import kept_head_ids, kept_neuron_ids
from workflow_scripts.dap.baselines import (ARCHITECTURE_BASELINES, gate_importance, importance_architecture,
                                            kept_counts, prune_to, random_architecture)
from workflow_scripts.data.tasks import TRAIN
from workflow_scripts.data.tokenized import load_tokenized
from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage


@dataclass
class Paths:
    model: str = field(metadata={"help": "the fine-tuned classifier to prune"})
    search: str = field(metadata={"help": "dap_search output whose kept counts (hence FLOPs) are matched"})
    data: str = field(metadata={"help": "tokenized task folder (importance is measured on its training split)"})
    output: str = field(metadata={"help": "folder for the pruned checkpoint and selection.json"})


@dataclass
class Selection:
    method: str = field(metadata={"choices": list(ARCHITECTURE_BASELINES), "help": "how the kept units are chosen"})
    seed: int = field(metadata={"help": "seeds the random choice"})
    batch_size: int = field(metadata={"help": "examples per backward pass of the importance measurement"})
    attn_implementation: str = field(metadata={"choices": ["sdpa", "eager"], "help": "attention kernel"})


def main(argv=None) -> None:
    paths, selection, execution = parse_stage_args(__doc__, [Paths, Selection, Execution], argv)
    logger, device = start_stage(execution, paths, selection)
    dataset_dict, task = load_tokenized(paths.data)
    searched = read_json(os.path.join(paths.search, "search.json"))
    head_count, ffn_count = kept_counts(searched["architecture"]["heads_kept"], searched["architecture"]["ffn_kept"])
    model = load_for_classification(paths.model, task["num_labels"], selection.attn_implementation)
    tokenizer = AutoTokenizer.from_pretrained(paths.model)
    layers = range(model.config.num_hidden_layers)
    ids_heads, ids_ffn = [kept_head_ids(model, l) for l in layers], [kept_neuron_ids(model, l) for l in layers]
    if selection.method == "random":
        heads, ffn = random_architecture(ids_heads, ids_ffn, head_count, ffn_count, selection.seed)
    else:
        scores = gate_importance(model, dataset_dict[TRAIN], DataCollatorWithPadding(tokenizer), selection.batch_size,
                                 device)
        heads, ffn = importance_architecture(*scores, head_count, ffn_count)
    prune_to(model.cpu(), ids_heads, ids_ffn, heads, ffn)
    seq_len = searched["config"]["seq_len"]
    flops = count_flops(model, 1, seq_len)["total"]
    if flops != searched["architecture"]["flops"]:
        raise RuntimeError(f"the {selection.method} architecture has {flops} FLOPs, the search's "
                           f"{searched['architecture']['flops']}: the counts should match them exactly")
    logger.info("%s: kept %d heads and %d FFN units (heads per layer %s), %.4f of the FLOPs", selection.method,
                head_count, ffn_count, [len(h) for h in heads], flops / searched["full_flops"])
    save_checkpoint(model, tokenizer, paths.output, extra_json={"selection.json": {
        "task": task["name"], "method": selection.method, "search": paths.search, "heads_kept": heads,
        "ffn_kept": ffn, "flops": flops, "ratio": flops / searched["full_flops"], "seq_len": seq_len}})


if __name__ == "__main__":
    main()
