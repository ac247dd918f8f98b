"""Stage prepare_corpus: the unlabelled corpus of Bort's architecture search and KD pretraining, tokenized.

Reads texts (--source: "generated", a local .txt/.jsonl/.parquet file or folder, or a hub dataset id), packs them
into [CLS] ... [SEP] blocks of --max-length tokens, splits off a seeded held-out part and writes
train.safetensors, heldout.safetensors and corpus.json (counts and provenance) to --output.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from workflow_scripts.data.corpus import CorpusConfig, build_corpus
from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage


@dataclass
class Paths:
    tokenizer: str = field(metadata={"help": "model folder whose tokenizer to use (the teacher's)"})
    output: str = field(metadata={"help": "folder for train/heldout.safetensors and corpus.json"})


def main(argv=None) -> None:
    paths, corpus, execution = parse_stage_args(__doc__, [Paths, CorpusConfig, Execution], argv)
    logger, _ = start_stage(execution, paths, corpus)
    build_corpus(corpus, paths.tokenizer, paths.output, logger)
    logger.info("wrote %s", paths.output)


if __name__ == "__main__":
    main()
