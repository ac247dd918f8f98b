"""Bort's unlabelled corpus: texts, packing into blocks, BERT masking, resumable and DDP-sliced batches, the stage."""
import json

import pytest
import torch
from transformers import AutoTokenizer

from workflow_scripts.stages import prepare_corpus
from workflow_scripts.data.corpus import (generated_sentences, heldout_masked_batches, load_corpus, load_texts,
                                     mask_tokens, split_heldout, tokenize_into_blocks, training_batches)
from workflow_scripts.core.models import minilm_folder
from workflow_scripts.data.generated.task_generator import generate_task


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(minilm_folder())


@pytest.fixture(scope="module")
def blocks(tokenizer):
    return tokenize_into_blocks(generated_sentences(0, 400), tokenizer, max_length=32)


def stream_equal(first: list[dict], second: list[dict]) -> bool:
    return len(first) == len(second) and all(
        a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a) for a, b in zip(first, second))


# --- texts ------------------------------------------------------------------------------------------------------


def test_generated_sentences_are_deterministic_distinct_and_seeded():
    sentences = generated_sentences(0, 3000)
    assert len(sentences) == 3000 and len(set(sentences)) == 3000
    assert all(sentence.strip() == sentence and sentence for sentence in sentences)
    assert generated_sentences(0, 3000) == sentences
    assert generated_sentences(0, 100) == sentences[:100]   # a longer corpus extends a shorter one
    assert len(set(generated_sentences(1, 3000)) & set(sentences)) < 300
    assert generated_sentences(0, 0) == []


def test_generated_sentences_mix_kinds_and_skip_unacceptable_and_task_draws():
    sentences = set(generated_sentences(0, 2000))
    task = generate_task("acceptability", 0, {"train": 1000})["train"]
    # The task with the same seed is another draw: only chance overlap (common short sentences).
    assert len(sentences & {record["sentence"] for record in task}) < 50
    coreference = generate_task("coreference", 0 + 7919, {"corpus0": 1000})["corpus0"]
    assert sentences & {record["sentence1"] for record in coreference}
    unacceptable = generate_task("acceptability", 7919, {"corpus0": 1000})["corpus0"]
    assert not sentences & {record["sentence"] for record in unacceptable if record["label"] == 0}


def test_generated_sentences_too_many_is_a_value_error(monkeypatch):
    monkeypatch.setattr("workflow_scripts.data.corpus._MAX_CHUNKS_PER_KIND", 1)
    with pytest.raises(ValueError, match="distinct sentences"):
        generated_sentences(0, 100_000)


def test_local_text_and_jsonl_load_through_datasets_without_blank_lines(tmp_path):
    (tmp_path / "lines.txt").write_text("The cat sat.\n\n   \nA dog barked loudly.\n\nBirds sing.\n")
    assert load_texts(str(tmp_path / "lines.txt")) == ["The cat sat.", "A dog barked loudly.", "Birds sing."]
    assert load_texts(str(tmp_path / "lines.txt"), max_documents=2) == ["The cat sat.", "A dog barked loudly."]
    records = [{"body": "First document."}, {"body": "  "}, {"body": "Second document."}]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    assert load_texts(str(tmp_path / "docs.jsonl"), text_column="body") == ["First document.", "Second document."]

    folder = tmp_path / "shards"
    folder.mkdir()
    (folder / "b.txt").write_text("second shard\n")
    (folder / "a.txt").write_text("first shard\n")
    assert load_texts(str(folder)) == ["first shard", "second shard"]   # sorted by name
    (folder / "c.jsonl").write_text(json.dumps({"text": "x"}) + "\n")
    with pytest.raises(ValueError, match="mixes"):
        load_texts(str(folder))


def test_missing_text_column_names_it_and_the_columns_present(tmp_path):
    (tmp_path / "docs.jsonl").write_text(json.dumps({"body": "Only a body."}) + "\n")
    with pytest.raises(ValueError, match=r"'text'.*\['body'\]"):
        load_texts(str(tmp_path / "docs.jsonl"))


def test_unknown_hub_dataset_offline_says_how_to_use_a_local_copy():
    with pytest.raises(RuntimeError, match="offline.*bort.corpus.source"):
        load_texts("no-such-org/no-such-corpus")


# --- blocks -----------------------------------------------------------------------------------------------------


def test_blocks_are_packed_bert_sequences_that_rejoin_to_the_texts(tokenizer):
    long_text = " ".join(generated_sentences(3, 12))  # far more than one block: split across sequences
    texts = generated_sentences(2, 60) + [long_text] + generated_sentences(4, 20)
    max_length = 24
    blocks = tokenize_into_blocks(texts, tokenizer, max_length)
    input_ids, attention_mask = blocks["input_ids"], blocks["attention_mask"]
    assert input_ids.dtype == attention_mask.dtype == torch.long and input_ids.shape[1] == max_length
    lengths = attention_mask.sum(dim=1)
    assert bool((input_ids[:, 0] == tokenizer.cls_token_id).all())
    assert bool((input_ids[torch.arange(len(lengths)), lengths - 1] == tokenizer.sep_token_id).all())
    assert bool((input_ids[attention_mask == 0] == tokenizer.pad_token_id).all())
    assert bool((attention_mask == (torch.arange(max_length) < lengths[:, None])).all())   # padding only at the end
    rejoined = [token for row, length in zip(input_ids.tolist(), lengths.tolist()) for token in row[1:length - 1]]
    expected = [token for ids in tokenizer(texts, add_special_tokens=False)["input_ids"] for token in ids]
    assert rejoined == expected
    # Short texts are not split: packing is dense but whole (most blocks end where a sentence ends).
    assert len(input_ids) <= len(expected) / (max_length - 2) * 1.6


def test_heldout_split_is_seeded_disjoint_and_never_empty(blocks):
    train, heldout = split_heldout(blocks, 0.1, seed=0)
    count = len(blocks["input_ids"])
    assert len(train["input_ids"]) + len(heldout["input_ids"]) == count
    assert len(heldout["input_ids"]) == round(count * 0.1)
    again_train, _ = split_heldout(blocks, 0.1, seed=0)
    assert torch.equal(again_train["input_ids"], train["input_ids"])
    assert not torch.equal(split_heldout(blocks, 0.1, seed=1)[0]["input_ids"], train["input_ids"])
    two = {name: tensor[:2] for name, tensor in blocks.items()}
    assert [len(part["input_ids"]) for part in split_heldout(two, 0.001, seed=0)] == [1, 1]
    with pytest.raises(ValueError):
        split_heldout({name: tensor[:1] for name, tensor in blocks.items()}, 0.5, seed=0)


# --- masking and batches ----------------------------------------------------------------------------------------


def test_masking_follows_bert_80_10_10_and_leaves_inputs_alone(tokenizer, blocks):
    input_ids = blocks["input_ids"].repeat(20, 1)          # (N, L), enough positions for the proportions
    attention_mask = blocks["attention_mask"].repeat(20, 1)
    before = input_ids.clone(), attention_mask.clone()
    special = set(tokenizer.all_special_ids)
    masked, labels = mask_tokens(input_ids, attention_mask, special, tokenizer.mask_token_id, len(tokenizer), 0.15,
                                 torch.Generator().manual_seed(0))
    assert torch.equal(input_ids, before[0]) and torch.equal(attention_mask, before[1])
    maskable = attention_mask.bool() & ~torch.isin(input_ids, torch.tensor(sorted(special)))
    chosen = labels != -100
    assert not bool((chosen & ~maskable).any())                     # never CLS, SEP or padding
    assert torch.equal(labels[chosen], input_ids[chosen])
    assert torch.equal(masked[~chosen], input_ids[~chosen])
    assert 0.14 < chosen.sum() / maskable.sum() < 0.17             # 15%, plus the one-per-row guarantee
    replaced_by_mask = (masked[chosen] == tokenizer.mask_token_id).float().mean()
    unchanged = (masked[chosen] == input_ids[chosen]).float().mean()   # includes random ids that hit the original
    assert 0.77 < replaced_by_mask < 0.83 and 0.08 < unchanged < 0.12
    assert 0.08 < 1 - replaced_by_mask - unchanged < 0.12
    again = mask_tokens(input_ids, attention_mask, torch.tensor(sorted(special)), tokenizer.mask_token_id,
                        len(tokenizer), 0.15, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], masked) and torch.equal(again[1], labels)


def test_every_sequence_with_a_maskable_token_gets_a_label(tokenizer, blocks):
    _, labels = mask_tokens(blocks["input_ids"], blocks["attention_mask"], set(tokenizer.all_special_ids),
                            tokenizer.mask_token_id, len(tokenizer), 0.001, torch.Generator().manual_seed(0))
    assert bool(((labels != -100).sum(dim=1) >= 1).all())
    only_special = torch.tensor([[tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id]])
    _, labels = mask_tokens(only_special, torch.tensor([[1, 1, 0]]), set(tokenizer.all_special_ids),
                            tokenizer.mask_token_id, len(tokenizer), 0.5, torch.Generator().manual_seed(0))
    assert bool((labels == -100).all())


def test_heldout_batches_are_the_same_on_every_call(tokenizer, blocks):
    first = heldout_masked_batches(blocks, tokenizer, 0.15, batch_size=16, seed=0)
    assert stream_equal(first, heldout_masked_batches(blocks, tokenizer, 0.15, batch_size=16, seed=0))
    assert sum(len(batch["input_ids"]) for batch in first) == len(blocks["input_ids"])
    assert all((batch["labels"] != -100).any() for batch in first)
    assert torch.equal(torch.cat([b["labels"] for b in first]),                  # masks do not depend on batch_size
                       torch.cat([b["labels"] for b in heldout_masked_batches(blocks, tokenizer, 0.15, 7, 0)]))
    assert not stream_equal(first, heldout_masked_batches(blocks, tokenizer, 0.15, batch_size=16, seed=1))


def take(stream, count: int) -> list[dict]:
    return [next(stream) for _ in range(count)]


def test_resumed_training_stream_equals_the_uninterrupted_one(tokenizer, blocks):
    steps_per_epoch = len(blocks["input_ids"]) // 8
    uninterrupted = take(training_batches(blocks, tokenizer, 0.15, batch_size=8, seed=0), 2 * steps_per_epoch + 3)
    for start in (1, steps_per_epoch - 1, steps_per_epoch + 2):          # within, at and past an epoch boundary
        resumed = take(training_batches(blocks, tokenizer, 0.15, batch_size=8, seed=0, start_step=start), 3)
        assert stream_equal(resumed, uninterrupted[start:start + 3])
    # Epochs are shuffled differently, and each epoch sees each row at most once.
    first_epoch = torch.cat([batch["attention_mask"].sum(dim=1) for batch in uninterrupted[:steps_per_epoch]])
    second_epoch = torch.cat([batch["attention_mask"].sum(dim=1)
                              for batch in uninterrupted[steps_per_epoch:2 * steps_per_epoch]])
    assert not torch.equal(first_epoch, second_epoch)
    assert all(set(batch) == {"input_ids", "attention_mask", "labels"} and batch["input_ids"].shape[0] == 8
               for batch in uninterrupted)


def test_ddp_rank_slices_together_are_the_single_process_batch(tokenizer, blocks):
    single = take(training_batches(blocks, tokenizer, 0.15, batch_size=8, seed=0, start_step=5), 2)
    ranks = [take(training_batches(blocks, tokenizer, 0.15, batch_size=8, seed=0, start_step=5, rank=rank,
                                   world_size=2), 2) for rank in (0, 1)]
    for step in range(2):
        assert all(ranks[rank][step]["input_ids"].shape[0] == 4 for rank in (0, 1))
        joined = {key: torch.cat([ranks[0][step][key], ranks[1][step][key]]) for key in single[step]}
        assert stream_equal([joined], [single[step]])
    with pytest.raises(ValueError, match="divisible"):
        training_batches(blocks, tokenizer, 0.15, batch_size=8, seed=0, world_size=3)


# --- the stage --------------------------------------------------------------------------------------------------


def test_prepare_corpus_stage_writes_a_corpus_that_loads_back(tmp_path):
    tokenizer_folder = tmp_path / "base"
    AutoTokenizer.from_pretrained(minilm_folder()).save_pretrained(tokenizer_folder)
    output = tmp_path / "corpus" / "tokenized"
    prepare_corpus.main(["--tokenizer", str(tokenizer_folder), "--output", str(output), "--source", "generated",
                         "--text-column", "text", "--hub-config", "null", "--max-documents", "null",
                         "--generated-sentences", "300", "--max-length", "32", "--heldout-fraction", "0.1",
                         "--seed", "0", "--threads", "1", "--log-file", str(tmp_path / "log.txt")])
    assert sorted(path.name for path in output.iterdir()) == ["checksums.sha256", "corpus.json",
                                                               "heldout.safetensors", "train.safetensors"]
    train, heldout, info = load_corpus(str(output))
    assert info["source"] == "generated" and info["texts"] == 300 and info["max_length"] == 32
    assert info["hub_config"] is None and info["tokenizer"] == str(tokenizer_folder)
    assert info["splits"]["train"] == {"sequences": len(train["input_ids"]),
                                       "tokens": int(train["attention_mask"].sum())}
    assert info["splits"]["heldout"]["sequences"] == len(heldout["input_ids"]) >= 1
    assert train["input_ids"].shape[1] == heldout["input_ids"].shape[1] == 32
    assert "heldout: " in (tmp_path / "log.txt").read_text()
