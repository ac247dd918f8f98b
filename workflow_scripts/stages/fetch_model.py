"""Stage fetch_model: materialize the model named in params.yaml as a Hugging Face folder (models/base).

Aliases and local folders are read from disk; hub ids go through the Hugging Face cache. With --random-init the
weights are replaced by a seeded random initialization of the given shape (the tests' tiny models).
"""
from __future__ import annotations

import json

from workflow_scripts.pipeline.cli import stage_parser, start_stage
from workflow_scripts.core.models import build_random_init, load_pretrained, resolve_model_source, save_checkpoint


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--output", required=True, help="folder to write (Hugging Face format)")
    group = parser.add_argument_group("model (from params.yaml)")
    group.add_argument("--name", required=True, help="alias (minilm), local folder, or hub id")
    group.add_argument("--random-init", type=json.loads, default=None,
                       help="JSON shape {num_hidden_layers, hidden_size, num_attention_heads, intermediate_size} or null")
    group.add_argument("--attn-implementation", default="sdpa", choices=["sdpa", "eager"], help="attention kernel")
    group.add_argument("--seed", type=int, default=0, help="seed of the random initialization")
    args = parser.parse_args(argv)
    logger, _ = start_stage(args)

    kind, location = resolve_model_source(args.name)
    logger.info("loading %s (%s: %s)", args.name, kind, location)
    model, tokenizer = load_pretrained(args.name, args.attn_implementation)
    if args.random_init:
        model = build_random_init(model, args.random_init, args.seed)
        logger.info("random initialization with shape %s", args.random_init)
    provenance = {"name": args.name, "source_kind": kind, "source": location, "random_init": args.random_init,
                  "seed": args.seed, "model_class": model.__class__.__name__}
    save_checkpoint(model, tokenizer, args.output, extra_json={"provenance.json": provenance})
    logger.info("wrote %s (%s, %.1fM parameters)", args.output, model.__class__.__name__,
                sum(p.numel() for p in model.parameters()) / 1e6)


if __name__ == "__main__":
    main()
