"""Stage prepare_corpus: the unlabelled corpus of Bort's architecture search and KD pretraining, tokenized.

Reads texts (--source: "generated", a local .txt/.jsonl/.parquet file or folder, or a hub dataset id), packs them
into [CLS] ... [SEP] blocks of --max-length tokens, splits off a seeded held-out part and writes
train.safetensors, heldout.safetensors and corpus.json (counts and provenance) to --output.
"""
from __future__ import annotations

from workflow_scripts.pipeline.cli import stage_parser, start_stage
from workflow_scripts.data.corpus import load_texts, save_corpus, split_heldout, tokenize_into_blocks


def nullable(parse):
    """An argparse type: the string "null" (how rules pass YAML's null) is None, anything else goes to `parse`."""
    def parse_or_none(text: str):
        return None if text == "null" else parse(text)

    parse_or_none.__name__ = getattr(parse, "__name__", "value")  # argparse names the type in its errors
    return parse_or_none


def main(argv=None) -> None:
    from transformers import AutoTokenizer

    parser = stage_parser(__doc__)
    parser.add_argument("--tokenizer", required=True, help="model folder whose tokenizer to use (the teacher's)")
    parser.add_argument("--output", required=True, help="folder for train/heldout.safetensors and corpus.json")
    group = parser.add_argument_group("corpus (from params.yaml: bort.corpus)")
    group.add_argument("--source", default="generated",
                       help="'generated' (offline, from the task generator), a local file or folder, or a hub id")
    group.add_argument("--text-column", default="text", help="column holding the text (.txt files: 'text')")
    group.add_argument("--hub-config", type=nullable(str), default=None,
                       help="configuration of a hub dataset, e.g. wikitext-103-raw-v1 (null: none)")
    group.add_argument("--max-documents", type=nullable(int), default=None,
                       help="keep the first N non-blank texts (null: all)")
    group.add_argument("--generated-sentences", type=int, default=6000,
                       help="sentences of the generated corpus (used only with --source generated)")
    group.add_argument("--max-length", type=int, required=True, help="tokens per packed sequence, CLS and SEP included")
    group.add_argument("--heldout-fraction", type=float, default=0.05,
                       help="share of sequences held out to score architecture candidates")
    group.add_argument("--seed", type=int, default=0, help="seeds the generated corpus and the held-out split")
    args = parser.parse_args(argv)
    logger, _ = start_stage(args)

    texts = load_texts(args.source, text_column=args.text_column, hub_config=args.hub_config,
                       max_documents=args.max_documents, seed=args.seed, generated_count=args.generated_sentences)
    logger.info("read %d texts from %s", len(texts), args.source)
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    blocks = tokenize_into_blocks(texts, tokenizer, args.max_length)
    train_blocks, heldout_blocks = split_heldout(blocks, args.heldout_fraction, args.seed)
    info = {"source": args.source, "hub_config": args.hub_config, "text_column": args.text_column,
            "texts": len(texts), "max_length": args.max_length, "heldout_fraction": args.heldout_fraction,
            "seed": args.seed, "tokenizer": tokenizer.name_or_path}
    if args.source == "generated":
        info["generated_sentences"] = args.generated_sentences
    save_corpus(args.output, train_blocks, heldout_blocks, info)
    for split, split_blocks in (("train", train_blocks), ("heldout", heldout_blocks)):
        logger.info("%s: %d sequences, %d non-pad tokens", split, len(split_blocks["input_ids"]),
                    int(split_blocks["attention_mask"].sum()))
    logger.info("wrote %s", args.output)


if __name__ == "__main__":
    main()
