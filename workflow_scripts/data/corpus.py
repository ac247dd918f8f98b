"""The unlabelled-text corpus of Bort's architecture search and knowledge-distillation pretraining.

From texts to masked-language-model batches:

    texts = load_texts("generated", generated_count=6000)     # or a local .txt/.jsonl/.parquet, or a hub id
    blocks = tokenize_into_blocks(texts, tokenizer, max_length=64)  # {"input_ids", "attention_mask"}: (N, L)
    train, heldout = split_heldout(blocks, heldout_fraction=0.05, seed=0)
    save_corpus("data/corpus/tokenized", train, heldout, info)   # train/heldout.safetensors + corpus.json
    for batch in training_batches(train, tokenizer, 0.15, batch_size=32, seed=0, start_step=step): ...

Sources: "generated" is an English corpus built offline from the sentences of `task_generator` (with seeds that
differ from the tasks'), so the pipeline runs without a download. A local file or folder is read through the
`datasets` library; anything else is taken for a hub dataset id (which needs the hub, or its cache).

Blocks are packed as in BERT pretraining: consecutive texts fill `[CLS] t1 t2 ... [SEP]` up to max_length, then
padding. Masking is BERT's 80/10/10. Every random choice comes from a seed, so the held-out batches are the same
for every architecture candidate, and a resumed training run sees exactly the batches an uninterrupted one would.
"""
from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from workflow_scripts.core.io_utils import atomic_output_dir, load_safetensors, read_json, verify_checksums, write_json
from workflow_scripts.data.generated.task_generator import generate_task

GENERATED_SOURCE = "generated"
# The kinds whose sentences make up the generated corpus, taken in turn so that no kind dominates a block.
GENERATED_KINDS = ("paraphrase", "acceptability", "entailment", "coreference")
# Added to the run seed, and the split is named "corpus<N>" rather than train/validation/test: the generator seeds
# its random stream from (kind, seed, split), so corpus sentences are other draws than the tasks' sentences.
CORPUS_SEED_OFFSET = 7919
# Records per generate_task call; each kind's stream asks for further chunks only as the corpus needs them.
_CHUNK_RECORDS = 1000
# A kind whose chunks stop bringing new sentences is dropped; this bounds the work before we give up.
_MAX_CHUNKS_PER_KIND = 200

# File suffixes load_texts reads, and the `datasets` builder for each.
SUFFIX_BUILDERS = {".txt": "text", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
SPLIT_FILES = {"train": "train.safetensors", "heldout": "heldout.safetensors"}
INFO_FILE = "corpus.json"
IGNORE_INDEX = -100  # the label cross-entropy skips (torch's default ignore_index)
_TOKENIZE_BATCH = 1000  # texts per tokenizer call: large enough for the fast tokenizer's parallelism


# ---------------------------------------------------------------------------------------------------------------
# Texts
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class CorpusConfig:
    """bort.corpus (and the run seed): where the texts come from and how they are packed and split."""
    source: str = field(metadata={"help": "'generated', a local .txt/.jsonl/.parquet file or folder, or a hub id"})
    hub_config: str | None = field(metadata={"help": "configuration of a hub dataset (null: none)"})
    text_column: str = field(metadata={"help": "column holding the text (.txt files: 'text')"})
    max_documents: int | None = field(metadata={"help": "keep the first N non-blank texts (null: all)"})
    generated_sentences: int = field(metadata={"help": "sentences of the generated corpus (source generated)"})
    max_length: int = field(metadata={"help": "tokens per packed sequence, CLS and SEP included"})
    heldout_fraction: float = field(metadata={"help": "share of sequences held out to score candidates"})
    seed: int = field(metadata={"help": "seeds the generated corpus and the held-out split"})


def build_corpus(config: CorpusConfig, tokenizer_folder: str, output: str, logger) -> None:
    """Read, pack into blocks, split off the held-out part and save (prepare_corpus)."""
    from transformers import AutoTokenizer

    texts = load_texts(config.source, text_column=config.text_column, hub_config=config.hub_config,
                       max_documents=config.max_documents, seed=config.seed,
                       generated_count=config.generated_sentences)
    logger.info("read %d texts from %s", len(texts), config.source)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder)
    blocks = tokenize_into_blocks(texts, tokenizer, config.max_length)
    train_blocks, heldout_blocks = split_heldout(blocks, config.heldout_fraction, config.seed)
    info = {"source": config.source, "hub_config": config.hub_config, "text_column": config.text_column,
            "texts": len(texts), "max_length": config.max_length, "heldout_fraction": config.heldout_fraction,
            "seed": config.seed, "tokenizer": tokenizer.name_or_path}
    if config.source == "generated":
        info["generated_sentences"] = config.generated_sentences
    save_corpus(output, train_blocks, heldout_blocks, info)
    for split, split_blocks in (("train", train_blocks), ("heldout", heldout_blocks)):
        logger.info("%s: %d sequences, %d non-pad tokens", split, len(split_blocks["input_ids"]),
                    int(split_blocks["attention_mask"].sum()))


def _kind_sentences(kind: str, seed: int) -> Iterator[str]:
    """The sentences of one task kind, chunk after chunk (may repeat across chunks; the caller deduplicates)."""
    for chunk in range(_MAX_CHUNKS_PER_KIND):
        split = f"corpus{chunk}"
        for record in generate_task(kind, seed + CORPUS_SEED_OFFSET, {split: _CHUNK_RECORDS})[split]:
            if "sentence" in record:
                # Acceptability: only acceptable sentences, so the corpus teaches no ungrammatical English.
                if record["label"] == 1:
                    yield record["sentence"]
            else:
                yield record["sentence1"]
                yield record["sentence2"]


def generated_sentences(seed: int, count: int) -> list[str]:
    """Exactly `count` distinct English sentences from the task generator, deterministic in `seed`.

    Kinds are taken round-robin (one new sentence from each in turn); a kind that runs out of new sentences is
    dropped. Raises ValueError when all kinds together cannot give `count` distinct sentences.
    """
    if count < 0:
        raise ValueError(f"generated sentence count must be non-negative, got {count}")
    streams = [_kind_sentences(kind, seed) for kind in GENERATED_KINDS]
    seen: set[str] = set()  # membership only; order comes from `sentences`
    sentences: list[str] = []
    while len(sentences) < count and streams:
        for stream in list(streams):
            for sentence in stream:
                if sentence not in seen:
                    seen.add(sentence)
                    sentences.append(sentence)
                    break
            else:
                streams.remove(stream)
            if len(sentences) == count:
                break
    if len(sentences) < count:
        raise ValueError(f"the task generator gave only {len(sentences)} distinct sentences for seed {seed}, "
                         f"{count} were asked for; ask for fewer or point bort.corpus.source to a real corpus")
    return sentences


def _local_data_files(path: str) -> tuple[str, list[str]]:
    """(datasets builder, sorted data files) of a local file or of the readable files directly in a folder."""
    if os.path.isdir(path):
        files = sorted(os.path.join(path, name) for name in os.listdir(path)
                       if os.path.splitext(name)[1] in SUFFIX_BUILDERS and not name.startswith("."))
        if not files:
            raise ValueError(f"folder {path} has no files ending in {', '.join(SUFFIX_BUILDERS)}")
    else:
        files = [path]
    builders = {SUFFIX_BUILDERS.get(os.path.splitext(file)[1]) for file in files}
    if None in builders:
        raise ValueError(f"cannot read {path}: expected a file ending in {', '.join(SUFFIX_BUILDERS)}")
    if len(builders) > 1:
        raise ValueError(f"folder {path} mixes file kinds ({', '.join(sorted(builders))}); keep one kind per folder")
    return builders.pop(), files


def _load_dataset(source: str, hub_config: str | None):
    import datasets

    if os.path.exists(source):
        builder, files = _local_data_files(source)
        return datasets.load_dataset(builder, data_files=files, split="train")
    try:
        return datasets.load_dataset(source, hub_config, split="train")
    except Exception as error:  # offline, unknown id, unknown config: all mean "give us a local copy"
        raise RuntimeError(
            f"could not load dataset {source!r} (config {hub_config!r}) offline: {error}. Download it where the "
            f"hub is reachable (for example as .txt, .jsonl or .parquet files) and set bort.corpus.source in "
            f"params.yaml to that local file or folder (and bort.corpus.text_column to its text column)") from error


def load_texts(source: str, text_column: str = "text", hub_config: str | None = None,
               max_documents: int | None = None, seed: int = 0, generated_count: int = 0) -> list[str]:
    """Non-blank texts (stripped) of a corpus, in order, at most `max_documents` of them.

    source: "generated" (`generated_sentences(seed, generated_count)`), a local file or folder (.txt: one text per
    line, column "text"; .json/.jsonl; .parquet), or a hub dataset id (its "train" split, config `hub_config`).
    """
    if max_documents is not None and max_documents < 1:
        raise ValueError(f"max_documents must be positive or None, got {max_documents}")
    if source == GENERATED_SOURCE:
        texts = generated_sentences(seed, generated_count)
        return texts[:max_documents] if max_documents is not None else texts

    dataset = _load_dataset(source, hub_config)
    if text_column not in dataset.column_names:
        raise ValueError(f"{source} has no text column {text_column!r}; its columns are {dataset.column_names} "
                         f"(set bort.corpus.text_column)")
    texts: list[str] = []
    # Batches rather than the whole column: a large corpus with max_documents is read only as far as needed.
    for batch in dataset.select_columns([text_column]).iter(batch_size=10_000):
        for text in batch[text_column]:
            if text is not None and text.strip():
                texts.append(text.strip())
                if len(texts) == max_documents:
                    return texts
    return texts


# ---------------------------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------------------------


def _boundary_ids(tokenizer) -> tuple[int, int, int]:
    """(start, end, pad) ids: BERT's [CLS]/[SEP], or RoBERTa-style <s>/</s> where there is no CLS/SEP."""
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    end = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    pad = tokenizer.pad_token_id
    if start is None or end is None or pad is None:
        raise ValueError(f"tokenizer {tokenizer.name_or_path!r} needs a CLS (or BOS), SEP (or EOS) and PAD token "
                         f"to build pretraining blocks")
    return start, end, pad


def tokenize_into_blocks(texts: list[str], tokenizer, max_length: int) -> dict[str, torch.Tensor]:
    """Pack consecutive texts into `[CLS] t1 t2 ... [SEP]` sequences padded to max_length, as in BERT pretraining.

    A text that does not fit in the current sequence starts the next one; a text longer than max_length - 2 also
    fills the rest of the current sequence and continues over as many as it needs. Texts that tokenize to nothing
    are skipped. Returns {"input_ids", "attention_mask"}, LongTensors of shape (N, max_length).
    """
    from tqdm.auto import tqdm

    if max_length < 3:
        raise ValueError(f"max_length must leave room for at least one token between CLS and SEP, got {max_length}")
    start, end, pad = _boundary_ids(tokenizer)
    capacity = max_length - 2
    contents: list[list[int]] = []  # the tokens between CLS and SEP of each sequence
    current: list[int] = []
    batches = range(0, len(texts), _TOKENIZE_BATCH)
    for offset in tqdm(batches, desc="tokenize corpus", unit="batch", disable=len(batches) < 20):
        # verbose=False: texts longer than the model's limit are expected here; we split them ourselves.
        encoded = tokenizer(texts[offset:offset + _TOKENIZE_BATCH], add_special_tokens=False, verbose=False)
        for ids in encoded["input_ids"]:
            if not ids:
                continue
            if len(current) + len(ids) > capacity and len(ids) <= capacity:
                contents.append(current)
                current = []
            while ids:  # more than once only for a text longer than a sequence
                room = capacity - len(current)
                current.extend(ids[:room])
                ids = ids[room:]
                if len(current) == capacity:
                    contents.append(current)
                    current = []
    if current:
        contents.append(current)

    input_ids = torch.full((len(contents), max_length), pad, dtype=torch.long)  # (N, L)
    attention_mask = torch.zeros((len(contents), max_length), dtype=torch.long)  # (N, L)
    for row, content in enumerate(contents):
        length = len(content) + 2
        input_ids[row, :length] = torch.tensor([start, *content, end], dtype=torch.long)
        attention_mask[row, :length] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def split_heldout(blocks: dict[str, torch.Tensor], heldout_fraction: float,
                  seed: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(train, heldout): a seeded random `heldout_fraction` of the blocks (at least one each side), in corpus order."""
    count = len(blocks["input_ids"])
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be between 0 and 1 (exclusive), got {heldout_fraction}")
    if count < 2:
        raise ValueError(f"the corpus packed into {count} block(s); a train/held-out split needs at least 2 "
                         f"(use more texts or a smaller max_length)")
    heldout_count = min(max(round(count * heldout_fraction), 1), count - 1)
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    heldout_rows = order[:heldout_count].sort().values
    train_rows = order[heldout_count:].sort().values
    return ({name: tensor[train_rows] for name, tensor in blocks.items()},
            {name: tensor[heldout_rows] for name, tensor in blocks.items()})


# ---------------------------------------------------------------------------------------------------------------
# On disk
# ---------------------------------------------------------------------------------------------------------------


def split_counts(blocks: dict[str, torch.Tensor]) -> dict[str, int]:
    """Sequences and non-pad tokens (CLS and SEP included) of one split."""
    return {"sequences": len(blocks["input_ids"]), "tokens": int(blocks["attention_mask"].sum())}


def save_corpus(folder: str, train_blocks: dict[str, torch.Tensor], heldout_blocks: dict[str, torch.Tensor],
                info: dict) -> None:
    """Write train.safetensors, heldout.safetensors and corpus.json (info plus per-split counts), atomically."""
    from safetensors.torch import save_file

    splits = {"train": train_blocks, "heldout": heldout_blocks}
    with atomic_output_dir(folder) as staging:
        for split, blocks in splits.items():
            save_file({name: tensor.contiguous() for name, tensor in blocks.items()},
                      os.path.join(staging, SPLIT_FILES[split]))
        write_json(os.path.join(staging, INFO_FILE),
                   {**info, "splits": {split: split_counts(blocks) for split, blocks in splits.items()}})


def load_corpus(folder: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict]:
    """(train blocks, held-out blocks, info) as written by `save_corpus`; a corrupt file raises, naming it."""
    verify_checksums(folder)
    return (load_safetensors(os.path.join(folder, SPLIT_FILES["train"])),
            load_safetensors(os.path.join(folder, SPLIT_FILES["heldout"])),
            read_json(os.path.join(folder, INFO_FILE)))


# ---------------------------------------------------------------------------------------------------------------
# Masking and batches
# ---------------------------------------------------------------------------------------------------------------


def mask_tokens(input_ids: torch.Tensor, attention_mask: torch.Tensor, special_token_ids: set[int] | torch.Tensor,
                mask_token_id: int, vocab_size: int, probability: float,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: (masked input_ids, labels), both (B, L); the inputs are not modified.

    Each non-special, non-pad position is chosen with `probability`; a sequence with a maskable position but no
    chosen one gets one chosen at random, so every batch has a loss. Of the chosen, 80% become `mask_token_id`,
    10% a random id in [0, vocab_size), 10% stay. Labels hold the original id at chosen positions, -100 elsewhere.
    The same number of random draws is made whatever the data, so the result depends only on the generator state.
    """
    special = torch.as_tensor(sorted(special_token_ids) if isinstance(special_token_ids, (set, frozenset))
                              else special_token_ids, dtype=input_ids.dtype, device=input_ids.device)
    maskable = attention_mask.bool() & ~torch.isin(input_ids, special)  # (B, L)

    def uniform() -> torch.Tensor:
        # Drawn on the generator's device, then moved: masks do not depend on where the batch lives.
        return torch.rand(input_ids.shape, generator=generator, device=generator.device).to(input_ids.device)

    chosen = (uniform() < probability) & maskable
    # Fallback: the maskable position with the highest random score, for rows where nothing was chosen.
    fallback_scores = uniform().masked_fill(~maskable, -1.0)
    fallback = torch.zeros_like(chosen).scatter_(1, fallback_scores.argmax(dim=1, keepdim=True), True) & maskable
    chosen |= fallback & ~chosen.any(dim=1, keepdim=True)

    action = uniform()
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator, device=generator.device,
                               dtype=input_ids.dtype).to(input_ids.device)
    masked = input_ids.clone()
    masked[chosen & (action < 0.8)] = mask_token_id
    replace_random = chosen & (action >= 0.8) & (action < 0.9)
    masked[replace_random] = random_ids[replace_random]
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    return masked, labels


def _masking_args(tokenizer) -> tuple[torch.Tensor, int, int]:
    """(special ids, mask id, vocabulary size) of a tokenizer, for mask_tokens."""
    if tokenizer.mask_token_id is None:
        raise ValueError(f"tokenizer {tokenizer.name_or_path!r} has no mask token; masked-LM batches need one")
    return torch.tensor(sorted(set(tokenizer.all_special_ids))), tokenizer.mask_token_id, len(tokenizer)


def _derived_seed(*parts) -> int:
    """A 63-bit seed from parts such as (seed, "epoch", 3): random hashes a string seed with SHA-512, so the value is
    the same in every process and distinct parts give unrelated streams."""
    return random.Random("/".join(str(part) for part in parts)).getrandbits(63)


def heldout_masked_batches(heldout: dict[str, torch.Tensor], tokenizer, probability: float, batch_size: int,
                           seed: int) -> list[dict[str, torch.Tensor]]:
    """The held-out split masked once with `seed`, cut into batches of {"input_ids", "attention_mask", "labels"}.

    Every call with the same seed masks the same positions (whatever batch_size), so all architecture candidates
    are scored on the same predictions.
    """
    special, mask_id, vocab_size = _masking_args(tokenizer)
    generator = torch.Generator().manual_seed(_derived_seed(seed, "heldout"))
    masked, labels = mask_tokens(heldout["input_ids"], heldout["attention_mask"], special, mask_id, vocab_size,
                                 probability, generator)
    return [{"input_ids": masked[offset:offset + batch_size],
             "attention_mask": heldout["attention_mask"][offset:offset + batch_size],
             "labels": labels[offset:offset + batch_size]}
            for offset in range(0, len(masked), batch_size)]


def training_batches(train: dict[str, torch.Tensor], tokenizer, probability: float, batch_size: int, seed: int,
                     start_step: int = 0, rank: int = 0, world_size: int = 1) -> Iterator[dict[str, torch.Tensor]]:
    """Masked training batches without end, from step `start_step` on; each {"input_ids", "attention_mask",
    "labels"} of batch_size // world_size rows (on CPU).

    Step s lies in epoch s // steps_per_epoch (steps_per_epoch = rows // batch_size; an incomplete last batch is
    dropped, so every step has batch_size rows). Each epoch's order is a permutation seeded by (seed, epoch) and
    each step's masks are seeded by (seed, step): nothing depends on earlier steps, so a run resumed with
    start_step=k yields exactly batches k, k+1, ... of an uninterrupted run. With world_size > 1 the global batch
    is masked whole and rank takes rows [rank * B / W, (rank + 1) * B / W): the ranks together see the
    single-process batch.
    """
    rows = len(train["input_ids"])
    if batch_size % world_size:
        raise ValueError(f"batch_size {batch_size} must be divisible by world_size {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    if rows < batch_size:
        raise ValueError(f"the training corpus has {rows} sequences, fewer than one batch of {batch_size}")
    if start_step < 0:
        raise ValueError(f"start_step must be non-negative, got {start_step}")
    # Checked above, before the generator starts: a bad argument fails where training_batches is called.
    return _training_batches(train, _masking_args(tokenizer), probability, batch_size, seed, start_step, rank,
                             world_size)


def _training_batches(train: dict[str, torch.Tensor], masking_args: tuple[torch.Tensor, int, int],
                      probability: float, batch_size: int, seed: int, start_step: int, rank: int,
                      world_size: int) -> Iterator[dict[str, torch.Tensor]]:
    special, mask_id, vocab_size = masking_args
    rows = len(train["input_ids"])
    steps_per_epoch = rows // batch_size
    shard = batch_size // world_size
    epoch, order = None, None
    step = start_step
    while True:
        if step // steps_per_epoch != epoch:
            epoch = step // steps_per_epoch
            order = torch.randperm(rows, generator=torch.Generator().manual_seed(_derived_seed(seed, "epoch", epoch)))
        position = (step % steps_per_epoch) * batch_size
        batch_rows = order[position:position + batch_size]
        input_ids = train["input_ids"][batch_rows]
        attention_mask = train["attention_mask"][batch_rows]
        generator = torch.Generator().manual_seed(_derived_seed(seed, "mask", step))
        masked, labels = mask_tokens(input_ids, attention_mask, special, mask_id, vocab_size, probability, generator)
        rank_rows = slice(rank * shard, (rank + 1) * shard)
        yield {"input_ids": masked[rank_rows], "attention_mask": attention_mask[rank_rows],
               "labels": labels[rank_rows]}
        step += 1
