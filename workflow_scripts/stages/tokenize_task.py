"""Stage tokenize_task: tokenize every split of a task once (data/<task>/tokenized, a datasets DatasetDict)."""
from __future__ import annotations

from dataclasses import dataclass, field

from workflow_scripts.data.tokenized import tokenize_task, write_tokenized
from workflow_scripts.pipeline.cli import Execution, parse_stage_args, start_stage


@dataclass
class Paths:
    raw: str = field(metadata={"help": "folder written by prepare_task"})
    tokenizer: str = field(metadata={"help": "model folder whose tokenizer to use"})
    output: str = field(metadata={"help": "folder for the tokenized DatasetDict"})


@dataclass
class Tokenization:
    max_length: int = field(metadata={"help": "truncation length in tokens (data.max_length)"})


def main(argv=None) -> None:
    from transformers import AutoTokenizer

    paths, tokenization, execution = parse_stage_args(__doc__, [Paths, Tokenization, Execution], argv)
    logger, _ = start_stage(execution, paths, tokenization)
    tokenized = tokenize_task(paths.raw, AutoTokenizer.from_pretrained(paths.tokenizer), tokenization.max_length)
    write_tokenized(tokenized, paths.raw, paths.output)
    logger.info("wrote %s: %s", paths.output, {split: len(ds) for split, ds in tokenized.items()})


if __name__ == "__main__":
    main()
