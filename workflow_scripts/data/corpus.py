"""The unlabelled-text corpus of Bort's architecture search and knowledge-distillation pretraining.

From texts to masked-language-model batches:

    texts = load_texts("generated", generated_count=6000)     # or a local .txt/.jsonl/.parquet, or a hub id
    blocks = tokenize_into_blocks(texts, tokenizer, max_length=64)  # {"input_ids", "attention_mask"}: (N, L)
    train, heldout = split_heldout(blocks, heldout_fraction=0.05, seed=0)
    save_corpus("data/corpus/tokenized", train, heldout, info)   # train/heldout.safetensors + corpus.json
    for batch in training_batches(train, tokenizer, 0.15, batch_size=32, seed=0, start_step=step): ...
    pairs = training_batches(train, tokenizer, 0.15, 32, 0, sentence_objective="sop")  # + token types, pair labels

Sources: "generated" is an English corpus built offline from the sentences of `task_generator` (with seeds that
differ from the tasks'), so the pipeline runs without a download. A local file or folder is read through the
`datasets` library; anything else is taken for a hub dataset id (which needs the hub, or its cache).

Blocks are packed as in BERT pretraining: consecutive texts fill `[CLS] t1 t2 ... [SEP]` up to max_length, then
padding. Masking is BERT's 80/10/10. Every random choice comes from a seed, so the held-out batches are the same
for every architecture candidate, and a resumed training run sees exactly the batches an uninterrupted one would.

With a sentence objective (`sop`: ALBERT's sentence-order prediction, `nsp`: BERT's next-sentence prediction) each
block becomes a pair `[CLS] A [SEP] B [SEP]` of two consecutive segments of its text (sentence_pairs); half of each
batch are negatives: A and B swapped (sop), or B replaced by a segment of another block (nsp). Without one the
batches are exactly what they were before the option existed.
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


# ---------------------------------------------------------------------------------------------------------------
# Sentence pairs: sentence-order prediction (ALBERT) and next-sentence prediction (BERT)
# ---------------------------------------------------------------------------------------------------------------

SENTENCE_OBJECTIVES = ("none", "sop", "nsp")
# A block is cut into its two segments after one of these, chosen at random among those inside it; a block with
# none (one long sentence) is cut after a random token. The corpus does not record where its texts begin and end.
SENTENCE_END_TOKENS = (".", "?", "!")
# sentence_labels: 0 the segments in order (BertForPreTraining's next_sentence_label and ALBERT's
# sentence_order_label use the same convention), 1 the negative (swapped, or B from elsewhere).
IN_ORDER, NEGATIVE = 0, 1


@dataclass(frozen=True)
class PairTokens:
    """What pair building needs of a tokenizer: its start, end and pad ids, and the ids that end a sentence."""
    start: int
    end: int
    pad: int
    sentence_ends: frozenset[int]

    @classmethod
    def of(cls, tokenizer) -> "PairTokens":
        start, end, pad = _boundary_ids(tokenizer)
        ends = tokenizer.convert_tokens_to_ids(list(SENTENCE_END_TOKENS))
        return cls(start, end, pad, frozenset(i for i in ends if i is not None and i != tokenizer.unk_token_id))


def _block_content(blocks: dict[str, torch.Tensor], row: int) -> list[int]:
    """The tokens between a block's start and end ids."""
    length = int(blocks["attention_mask"][row].sum())
    return blocks["input_ids"][row, 1:length - 1].tolist()


def _split_point(content: list[int], sentence_ends: frozenset[int], draw: float) -> int:
    """k cutting a block's content into A = content[:k] and B = content[k:], both non-empty: after a sentence end
    inside the block chosen by `draw` (uniform in [0, 1)), else after a random token (k = len for one token)."""
    cuts = ([k for k in range(1, len(content)) if content[k - 1] in sentence_ends]
            or list(range(1, len(content))) or [len(content)])
    return cuts[int(draw * len(cuts))]


def _segments(blocks: dict[str, torch.Tensor], row: int, sentence_ends: frozenset[int],
              draw: float) -> tuple[list[int], list[int]]:
    content = _block_content(blocks, row)
    cut = _split_point(content, sentence_ends, draw)
    return content[:cut], content[cut:]


def truncate_pair(first: list[int], second: list[int], room: int, draw: float) -> tuple[list[int], list[int]]:
    """BERT's truncate_seq_pair: tokens come off the longer segment (the second on a tie) until both fit in `room`,
    from its front when draw < 0.5, else from its back (one draw per pair)."""
    first, second = list(first), list(second)
    while len(first) + len(second) > room:
        longer = first if len(first) > len(second) else second
        del longer[0 if draw < 0.5 else -1]
    return first, second


def sentence_pairs(blocks: dict[str, torch.Tensor], rows: torch.Tensor, objective: str, tokens: PairTokens,
                   generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Pairs `[CLS] A [SEP] B [SEP]` made of the blocks `rows` (B,): {"input_ids", "attention_mask",
    "token_type_ids"} (B, L) and "sentence_labels" (B,), unmasked.

    A and B are the block's text cut in two after a sentence end (_split_point); they are consecutive in the corpus.
    A pair longer than L (a full block: one more [SEP]) loses tokens as BERT's truncate_pair does. Exactly B // 2
    rows, chosen at random, are negatives (label 1): `sop` swaps A and B (the same tokens, in the other order;
    ALBERT); `nsp` replaces B with the B segment of another block of `blocks` (BERT's random next sentence). The
    corpus does not track documents, so that block is any but the row itself and its two neighbours in corpus order
    (which may continue the same text). token_type_ids are 0 on [CLS] A [SEP], 1 on B [SEP], 0 on padding. The
    draws depend only on the generator, len(rows) and the objective.
    """
    if objective not in ("sop", "nsp"):
        raise ValueError(f"sentence objective must be sop or nsp, got {objective!r}")
    count, length = len(rows), blocks["input_ids"].shape[1]
    total = len(blocks["input_ids"])
    if length < 5:
        raise ValueError(f"sentence pairs need max_length of at least 5 ([CLS] a [SEP] b [SEP]), got {length}")
    negative = torch.zeros(count, dtype=torch.bool)
    negative[torch.randperm(count, generator=generator)[:count // 2]] = True
    # per row: where A/B is cut, which end truncation takes, where the other block is cut (nsp)
    draws = torch.rand((count, 3), generator=generator, dtype=torch.float64).tolist()
    if objective == "nsp":
        if total < 4:
            raise ValueError(f"next-sentence negatives need at least 4 blocks to draw from, the split has {total}")
        # offsets in [2, total - 2]: never the row itself nor either neighbour
        others = ((rows + torch.randint(2, total - 1, (count,), generator=generator)) % total).tolist()
    input_ids = torch.full((count, length), tokens.pad, dtype=torch.long)  # (B, L)
    attention_mask = torch.zeros((count, length), dtype=torch.long)  # (B, L)
    token_type_ids = torch.zeros((count, length), dtype=torch.long)  # (B, L)
    for index, row in enumerate(rows.tolist()):
        cut_draw, truncation_draw, other_cut_draw = draws[index]
        first, second = _segments(blocks, row, tokens.sentence_ends, cut_draw)
        if negative[index] and objective == "nsp":
            _, second = _segments(blocks, others[index], tokens.sentence_ends, other_cut_draw)
        first, second = truncate_pair(first, second, length - 3, truncation_draw)
        if negative[index] and objective == "sop":
            first, second = second, first
        pair = [tokens.start, *first, tokens.end, *second, tokens.end]
        input_ids[index, :len(pair)] = torch.tensor(pair, dtype=torch.long)
        attention_mask[index, :len(pair)] = 1
        token_type_ids[index, len(first) + 2:len(pair)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids,
            "sentence_labels": negative.long()}


def _check_sentence_objective(objective: str) -> None:
    if objective not in SENTENCE_OBJECTIVES:
        raise ValueError(f"sentence objective must be one of {', '.join(SENTENCE_OBJECTIVES)}, got {objective!r}")


def heldout_pair_batches(heldout: dict[str, torch.Tensor], tokenizer, probability: float, batch_size: int, seed: int,
                         objective: str) -> list[dict[str, torch.Tensor]]:
    """The held-out split as sentence pairs (one per block, half of them negatives), masked once with `seed`, cut
    into batches of {"input_ids", "attention_mask", "token_type_ids", "labels", "sentence_labels"}. The same seed
    gives the same cuts and negative rows for sop and nsp, so the two are scored on the same segments."""
    special, mask_id, vocab_size = _masking_args(tokenizer)
    rows = torch.arange(len(heldout["input_ids"]))
    pairs = sentence_pairs(heldout, rows, objective, PairTokens.of(tokenizer),
                           torch.Generator().manual_seed(_derived_seed(seed, "heldout-pairs")))
    generator = torch.Generator().manual_seed(_derived_seed(seed, "heldout-pairs-mask"))
    masked, labels = mask_tokens(pairs["input_ids"], pairs["attention_mask"], special, mask_id, vocab_size,
                                 probability, generator)
    pairs.update(input_ids=masked, labels=labels)
    return [{name: tensor[offset:offset + batch_size] for name, tensor in pairs.items()}
            for offset in range(0, len(masked), batch_size)]


def training_batches(train: dict[str, torch.Tensor], tokenizer, probability: float, batch_size: int, seed: int,
                     start_step: int = 0, rank: int = 0, world_size: int = 1,
                     sentence_objective: str = "none") -> Iterator[dict[str, torch.Tensor]]:
    """Masked training batches without end, from step `start_step` on; each {"input_ids", "attention_mask",
    "labels"} of batch_size // world_size rows (on CPU). With sentence_objective sop or nsp each row is a sentence
    pair of the same block instead (sentence_pairs), and a batch also holds "token_type_ids" and "sentence_labels".

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
    _check_sentence_objective(sentence_objective)
    pair_tokens = PairTokens.of(tokenizer) if sentence_objective != "none" else None
    # Checked above, before the generator starts: a bad argument fails where training_batches is called.
    return _training_batches(train, _masking_args(tokenizer), probability, batch_size, seed, start_step, rank,
                             world_size, sentence_objective, pair_tokens)


def _training_batches(train: dict[str, torch.Tensor], masking_args: tuple[torch.Tensor, int, int],
                      probability: float, batch_size: int, seed: int, start_step: int, rank: int,
                      world_size: int, sentence_objective: str = "none",
                      pair_tokens: PairTokens | None = None) -> Iterator[dict[str, torch.Tensor]]:
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
        rank_rows = slice(rank * shard, (rank + 1) * shard)
        if sentence_objective == "none":  # the stream as it was before sentence objectives existed
            input_ids = train["input_ids"][batch_rows]
            attention_mask = train["attention_mask"][batch_rows]
            generator = torch.Generator().manual_seed(_derived_seed(seed, "mask", step))
            masked, labels = mask_tokens(input_ids, attention_mask, special, mask_id, vocab_size, probability,
                                         generator)
            yield {"input_ids": masked[rank_rows], "attention_mask": attention_mask[rank_rows],
                   "labels": labels[rank_rows]}
        else:  # the same rows, each made a pair; cuts, negatives and masks seeded by (seed, step) alone
            pairs = sentence_pairs(train, batch_rows, sentence_objective, pair_tokens,
                                   torch.Generator().manual_seed(_derived_seed(seed, "pairs", step)))
            generator = torch.Generator().manual_seed(_derived_seed(seed, "pairs-mask", step))
            pairs["input_ids"], pairs["labels"] = mask_tokens(pairs["input_ids"], pairs["attention_mask"], special,
                                                              mask_id, vocab_size, probability, generator)
            yield {name: tensor[rank_rows] for name, tensor in pairs.items()}
        step += 1
