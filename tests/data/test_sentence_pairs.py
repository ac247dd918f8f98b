"""Sentence pairs of Bort's corpus (sentence-order and next-sentence prediction): consecutive segments, swapped or
foreign negatives, exactly half negatives, token types, determinism per (seed, step), and the plain stream untouched
when no sentence objective is asked for."""
import hashlib

import pytest
import torch
from transformers import AutoTokenizer

from workflow_scripts.core.models import minilm_folder
from workflow_scripts.data.corpus import (IN_ORDER, NEGATIVE, PairTokens, generated_sentences, heldout_masked_batches,
                                          heldout_pair_batches, sentence_pairs, split_heldout, tokenize_into_blocks,
                                          training_batches, truncate_pair)


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(minilm_folder())


@pytest.fixture(scope="module")
def blocks(tokenizer):
    return tokenize_into_blocks(generated_sentences(0, 400), tokenizer, max_length=32)


@pytest.fixture(scope="module")
def tokens(tokenizer):
    return PairTokens.of(tokenizer)


def content(blocks, row) -> list[int]:
    """The tokens between a block's [CLS] and [SEP]."""
    length = int(blocks["attention_mask"][row].sum())
    return blocks["input_ids"][row, 1:length - 1].tolist()


def segments(pairs, index) -> tuple[list[int], list[int]]:
    """(A, B) of pair `index`, read back through its token types: [CLS] A [SEP] has type 0, B [SEP] type 1."""
    ids, types, mask = (pairs[name][index] for name in ("input_ids", "token_type_ids", "attention_mask"))
    first = ids[(types == 0) & mask.bool()].tolist()[1:-1]  # without [CLS] and the first [SEP]
    second = ids[types == 1].tolist()[:-1]  # without the last [SEP]
    return first, second


def is_run_of(part: list[int], whole: list[int]) -> bool:
    """part is a contiguous run of whole."""
    return any(whole[start:start + len(part)] == part for start in range(len(whole) - len(part) + 1))


def is_block_text(first: list[int], second: list[int], whole: list[int]) -> bool:
    """A then B is the block's text; a full block (no room for the second [SEP]) loses one token at an end of the
    longer segment, as BERT's truncation does."""
    if first + second == whole:
        return True
    # off the front of A, the back of B, or at the cut (the back of A or the front of B)
    cut = len(first)
    return len(whole) == 32 - 2 and first + second in (whole[1:], whole[:-1], whole[:cut] + whole[cut + 1:])


def pairs_of(blocks, tokens, objective, rows=None, seed=0):
    rows = torch.arange(len(blocks["input_ids"])) if rows is None else rows
    return sentence_pairs(blocks, rows, objective, tokens, torch.Generator().manual_seed(seed))


# ---- the pairs ------------------------------------------------------------------------------------------------------

def test_truncation_takes_tokens_off_the_longer_segment_from_one_end():
    assert truncate_pair([1, 2, 3, 4], [5, 6], 5, draw=0.2) == ([2, 3, 4], [5, 6])  # front
    assert truncate_pair([1, 2, 3, 4], [5, 6], 5, draw=0.7) == ([1, 2, 3], [5, 6])  # back
    assert truncate_pair([1, 2], [3, 4, 5, 6, 7], 4, draw=0.7) == ([1, 2], [3, 4])
    assert truncate_pair([1, 2], [3, 4], 3, draw=0.7) == ([1, 2], [3])  # a tie: the second loses
    assert truncate_pair([1, 2], [3], 5, draw=0.1) == ([1, 2], [3])  # fits: unchanged


def test_sop_positives_are_the_block_cut_at_a_sentence_end_and_negatives_the_same_segments_swapped(blocks, tokens):
    pairs = pairs_of(blocks, tokens, "sop")
    cut_at_sentence_end = 0
    for index in range(len(pairs["input_ids"])):
        first, second = segments(pairs, index)
        assert first and second
        if pairs["sentence_labels"][index] == NEGATIVE:
            first, second = second, first  # back in corpus order
        whole = content(blocks, index)
        assert is_block_text(first, second, whole)  # consecutive segments of the block's text
        sentence_ends_inside = any(token in tokens.sentence_ends for token in whole[:-1])
        if sentence_ends_inside and first[-1] in tokens.sentence_ends:
            cut_at_sentence_end += 1
    assert cut_at_sentence_end >= 0.9 * len(pairs["input_ids"])  # truncation may take a cut's "." off the front


def test_pairs_carry_bert_token_types_and_attention(blocks, tokens):
    pairs = pairs_of(blocks, tokens, "nsp")
    start, end, pad = tokens.start, tokens.end, tokens.pad
    for index in range(len(pairs["input_ids"])):
        ids, types, mask = (pairs[name][index].tolist() for name in ("input_ids", "token_type_ids", "attention_mask"))
        length = sum(mask)
        first, second = segments(pairs, index)
        assert ids[:length] == [start, *first, end, *second, end] and set(ids[length:]) <= {pad}
        assert types == [0] * (len(first) + 2) + [1] * (len(second) + 1) + [0] * (len(ids) - length)
        assert mask == [1] * length + [0] * (len(ids) - length)


@pytest.mark.parametrize("objective", ["sop", "nsp"])
def test_exactly_half_of_every_batch_are_negatives(blocks, tokens, tokenizer, objective):
    for count, seed in ((32, 0), (31, 1), (8, 2)):
        labels = pairs_of(blocks, tokens, objective, torch.arange(count), seed)["sentence_labels"]
        assert int((labels == NEGATIVE).sum()) == count // 2 and set(labels.tolist()) <= {IN_ORDER, NEGATIVE}
    stream = training_batches(blocks, tokenizer, 0.15, 16, 0, sentence_objective=objective)
    assert all(int(next(stream)["sentence_labels"].sum()) == 8 for _ in range(20))


def test_nsp_negatives_take_their_second_segment_from_another_block(blocks, tokens):
    pairs = pairs_of(blocks, tokens, "nsp")
    total = len(blocks["input_ids"])
    negatives = 0
    for index in range(total):
        first, second = segments(pairs, index)
        whole = content(blocks, index)
        if pairs["sentence_labels"][index] == IN_ORDER:
            assert is_block_text(first, second, whole)
            continue
        negatives += 1
        assert is_run_of(first, whole)  # A is this block's, maybe truncated at one end
        # B is a run of a block that is neither this one nor a neighbour in corpus order
        sources = [row for row in range(total) if is_run_of(second, content(blocks, row))]
        assert sources, "B comes from no block"
        if len(second) >= 4:  # long enough to be one block's
            assert all(min(abs(row - index), total - abs(row - index)) > 1 for row in sources)
    assert negatives == total // 2


def test_sop_and_nsp_share_cuts_and_negative_rows_and_differ_only_in_the_negatives(blocks, tokens):
    sop, nsp = pairs_of(blocks, tokens, "sop"), pairs_of(blocks, tokens, "nsp")
    assert torch.equal(sop["sentence_labels"], nsp["sentence_labels"])
    positives = sop["sentence_labels"] == IN_ORDER
    for name in ("input_ids", "token_type_ids", "attention_mask"):
        assert torch.equal(sop[name][positives], nsp[name][positives])
    assert not torch.equal(sop["input_ids"][~positives], nsp["input_ids"][~positives])


def test_a_split_too_small_or_a_bad_objective_is_refused(blocks, tokens, tokenizer):
    small = {name: tensor[:3] for name, tensor in blocks.items()}
    with pytest.raises(ValueError, match="at least 4 blocks"):
        pairs_of(small, tokens, "nsp")
    assert len(pairs_of(small, tokens, "sop")["input_ids"]) == 3
    with pytest.raises(ValueError, match="sentence objective must be one of none, sop, nsp"):
        training_batches(blocks, tokenizer, 0.15, 8, 0, sentence_objective="mlm")


# ---- the streams ----------------------------------------------------------------------------------------------------

def take(stream, count):
    return [next(stream) for _ in range(count)]


def stream_equal(first, second) -> bool:
    return len(first) == len(second) and all(
        a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a) for a, b in zip(first, second))


@pytest.mark.parametrize("objective", ["sop", "nsp"])
def test_the_pair_stream_depends_only_on_seed_batch_size_and_step(blocks, tokenizer, objective):
    def stream(seed=0, start_step=0, rank=0, world_size=1):
        return training_batches(blocks, tokenizer, 0.15, 8, seed, start_step=start_step, rank=rank,
                                world_size=world_size, sentence_objective=objective)

    uninterrupted = take(stream(), 25)  # 11 steps per epoch: crosses two epoch boundaries
    assert stream_equal(uninterrupted, take(stream(), 25))
    assert stream_equal(uninterrupted[13:], take(stream(start_step=13), 12))  # resumed
    assert not stream_equal(uninterrupted[:3], take(stream(seed=1), 3))
    assert set(uninterrupted[0]) == {"input_ids", "attention_mask", "token_type_ids", "labels", "sentence_labels"}
    halves = [take(stream(rank=rank, world_size=2), 3) for rank in (0, 1)]
    for step in range(3):  # the DDP ranks together hold the single-process batch
        for name, tensor in uninterrupted[step].items():
            assert torch.equal(torch.cat([halves[0][step][name], halves[1][step][name]]), tensor)
    # step s's pairs are made of the blocks of the plain stream's step s, in the same order
    plain, pairs = take(training_batches(blocks, tokenizer, 0.15, 8, 0), 12)[11], uninterrupted[11]
    plain_blocks = {"input_ids": torch.where(plain["labels"] != -100, plain["labels"], plain["input_ids"]),
                    "attention_mask": plain["attention_mask"]}
    pairs = {**pairs, "input_ids": torch.where(pairs["labels"] != -100, pairs["labels"], pairs["input_ids"])}
    for index in range(8):
        first, second = segments(pairs, index)
        whole = content(plain_blocks, index)
        if pairs["sentence_labels"][index] == IN_ORDER:
            assert is_block_text(first, second, whole)
        elif objective == "sop":
            assert is_block_text(second, first, whole)
        else:
            assert is_run_of(first, whole)


def test_pair_labels_mask_only_segment_tokens(blocks, tokenizer, tokens):
    batch = take(training_batches(blocks, tokenizer, 0.15, 32, 0, sentence_objective="sop"), 1)[0]
    chosen = batch["labels"] != -100
    special = torch.tensor([tokens.start, tokens.end, tokens.pad])
    assert chosen.any(dim=1).all()  # every pair has a masked position
    assert not torch.isin(batch["labels"][chosen], special).any() and batch["attention_mask"][chosen].all()


def test_heldout_pairs_are_fixed_half_negative_and_cut_into_batches(blocks, tokenizer):
    train, heldout = split_heldout(blocks, 0.1, 0)
    first = heldout_pair_batches(heldout, tokenizer, 0.15, 4, 0, "sop")
    assert stream_equal(first, heldout_pair_batches(heldout, tokenizer, 0.15, 4, 0, "sop"))
    labels = torch.cat([batch["sentence_labels"] for batch in first])
    assert len(labels) == len(heldout["input_ids"]) and int(labels.sum()) == len(labels) // 2
    whole = heldout_pair_batches(heldout, tokenizer, 0.15, 1000, 0, "sop")[0]
    assert torch.equal(whole["input_ids"], torch.cat([batch["input_ids"] for batch in first]))


# ---- the option off -------------------------------------------------------------------------------------------------

def digest(batches) -> str:
    hashed = hashlib.sha256()
    for batch in batches:
        for name in sorted(batch):
            hashed.update(name.encode())
            hashed.update(batch[name].numpy().tobytes())
    return hashed.hexdigest()[:16]


def test_without_a_sentence_objective_the_stream_is_bit_identical_to_the_one_before_the_option(blocks, tokenizer):
    """The digests were taken with the code before sentence objectives existed (steps 16-20 cross an epoch): the
    training stream and the held-out batches, and so T's cached outputs and every earlier result, are unchanged."""
    train, heldout = split_heldout(blocks, 0.1, 0)
    default = take(training_batches(train, tokenizer, 0.15, 8, 0, start_step=16), 5)
    assert stream_equal(default, take(training_batches(train, tokenizer, 0.15, 8, 0, start_step=16,
                                                       sentence_objective="none"), 5))
    assert set(default[0]) == {"input_ids", "attention_mask", "labels"}
    assert digest(default) == "cb722d463b6a3dd1"
    assert digest(heldout_masked_batches(heldout, tokenizer, 0.15, 8, 0)) == "bb8b535b4d785410"
