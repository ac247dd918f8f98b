"""Stage fetch_model: materialize the model named in params.yaml as a Hugging Face folder (models/base).

Aliases and local folders are read from disk; hub ids go through the Hugging Face cache. With --random-init the
weights are replaced by a seeded random initialization of the given shape (the tests' tiny models).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from workflow_scripts.core.models import build_random_init, load_pretrained, resolve_model_source, save_checkpoint
from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage


@dataclass
class Paths:
    output: str = field(metadata={"help": "folder to write (Hugging Face format)"})


@dataclass
class ModelSource:
    name: str = field(metadata={"help": "alias (minilm), local folder, or hub id (model.name)"})
    random_init: dict | None = field(metadata={"help": "{num_hidden_layers, hidden_size, num_attention_heads, "
                                                       "intermediate_size} or null (model.random_init)"})
    attn_implementation: str = field(metadata={"help": "attention kernel", "choices": ["sdpa", "eager"]})
    seed: int = field(metadata={"help": "seed of the random initialization (seed)"})


def main(argv=None) -> None:
    paths, source, execution = parse_stage_args(__doc__, [Paths, ModelSource, Execution], argv)
    logger, _ = start_stage(execution, paths, source)
    kind, location = resolve_model_source(source.name)
    logger.info("loading %s (%s: %s)", source.name, kind, location)
    model, tokenizer = load_pretrained(source.name, source.attn_implementation)
    if source.random_init:
        model = build_random_init(model, source.random_init, source.seed)
        logger.info("random initialization with shape %s", source.random_init)
    provenance = {"name": source.name, "source_kind": kind, "source": location, "random_init": source.random_init,
                  "seed": source.seed, "model_class": model.__class__.__name__}
    save_checkpoint(model, tokenizer, paths.output, extra_json={"provenance.json": provenance})
    logger.info("wrote %s (%s, %.1fM parameters)", paths.output, model.__class__.__name__,
                sum(p.numel() for p in model.parameters()) / 1e6)


if __name__ == "__main__":
    main()
