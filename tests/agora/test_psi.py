"""psi, Agora's data-generating function: lexical and masked-LM variants, de-duplication, determinism, validation.

The masked-LM psi runs on a tiny random BertForMaskedLM (2 layers, hidden 32) with MiniLM's tokenizer: its
predictions are noise, but every property tested here (which words may change, punctuation, case, word count,
batching) holds whatever the model predicts.
"""
import re

import numpy as np
import pytest

from workflow_scripts.agora.psi import (LexicalPsi, MaskedLMPsi, build_psi, deduplicate, masked_logits, text_key)

PAIR_COLUMNS = ("sentence1", "sentence2")
SINGLE_COLUMNS = ("sentence",)
# Shaped like data/gen_mrpc and data/gen_cola: punctuation attached to words, names, multi-piece words.
PAIR_ROWS = [
    {"idx": 0, "label": 1, "sentence1": "Robert Smith sold six atlases to Simon.",
     "sentence2": "Simon bought six atlases from Robert Smith."},
    {"idx": 1, "label": 1, "sentence1": "Martin Smith was visited by George.",
     "sentence2": "George went to see Martin Smith."},
    {"idx": 2, "label": 0, "sentence1": "Hannah painted a green bookcase.",
     "sentence2": "Hannah repainted a green bookcase, the police said."},
]
SINGLE_ROWS = [
    {"idx": 0, "label": 0, "sentence": "That nervous baker should sold the cheap key."},
    {"idx": 1, "label": 1, "sentence": "Robert Hill rode two horses."},
    {"idx": 2, "label": 1, "sentence": "That baker must borrow it."},
    {"idx": 3, "label": 1, "sentence": "The teachers near the window (in Denver) were tired."},
]


@pytest.fixture(scope="module")
def tiny_mlm_folder(tmp_path_factory):
    """A random 2-layer BertForMaskedLM (hidden 32) with MiniLM's uncased WordPiece tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from workflow_scripts.core.models import minilm_folder

    tokenizer = AutoTokenizer.from_pretrained(minilm_folder())
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    folder = tmp_path_factory.mktemp("tiny_mlm")
    BertForMaskedLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def masked_psi(tiny_mlm_folder) -> MaskedLMPsi:
    # batch_size 5: several batches even on these few rows, so batching is exercised.
    return MaskedLMPsi(str(tiny_mlm_folder), replace_probability=0.3, top_k=8, batch_size=5)


def split_word(word: str) -> tuple[str, str, str]:
    """(leading punctuation, core, trailing punctuation), written independently of psi's own pattern."""
    core_start = next((i for i, char in enumerate(word) if char.isalnum()), len(word))
    core_end = next((i for i in range(len(word), 0, -1) if word[i - 1].isalnum()), 0)
    return word[:core_start], word[core_start:max(core_start, core_end)], word[max(core_start, core_end):]


def single_piece(tokenizer, word: str) -> bool:
    core = split_word(word)[1]
    return core.isascii() and core.isalpha() and len(tokenizer.tokenize(core)) == 1


def check_masked_variant(tokenizer, source: str, variant: str) -> int:
    """Asserts that variant is source with some single-piece words replaced (punctuation and case kept);
    returns how many words changed."""
    source_words, variant_words = source.split(), variant.split()
    assert len(variant_words) == len(source_words)
    changed = 0
    for before, after in zip(source_words, variant_words):
        if before == after:
            continue
        changed += 1
        assert single_piece(tokenizer, before), f"{before!r} is not a single WordPiece but became {after!r}"
        (prefix, core, suffix), (new_prefix, new_core, new_suffix) = split_word(before), split_word(after)
        assert (new_prefix, new_suffix) == (prefix, suffix), f"punctuation lost: {before!r} -> {after!r}"
        assert new_core.isalpha() and new_core.lower() != core.lower()
        assert new_core[0].isupper() == core[0].isupper(), f"capitalization lost: {before!r} -> {after!r}"
    return changed


# ---------------------------------------------------------------------------------------------------------------
# lexical
# ---------------------------------------------------------------------------------------------------------------

def test_lexical_changes_text_and_drops_label():
    psi = LexicalPsi(word_dropout=0.2, swaps=1)
    new_rows = psi.transform(SINGLE_ROWS, SINGLE_COLUMNS, variants_per_row=4, rng=np.random.default_rng(0))
    assert new_rows
    sources = {row["idx"]: row for row in SINGLE_ROWS}
    for row in new_rows:
        assert set(row) == {"sentence", "source_idx"}
        source = sources[row["source_idx"]]["sentence"]
        assert row["sentence"].strip() and row["sentence"] != source
        assert len(row["sentence"].split()) >= 2
        # Only drops and swaps: every word comes from the source.
        assert set(row["sentence"].split()) <= set(source.split())
    assert all(sum(row["source_idx"] == idx for row in new_rows) <= 4 for idx in sources)


def test_lexical_keeps_two_words_and_transforms_both_columns():
    psi = LexicalPsi(word_dropout=0.95, swaps=0)
    rows = [{"idx": 7, "label": 1, "sentence1": "Anna sold three old trucks.", "sentence2": "Ben bought them."}]
    new_rows = psi.transform(rows, PAIR_COLUMNS, variants_per_row=5, rng=np.random.default_rng(1))
    assert new_rows
    for row in new_rows:
        assert "label" not in row and "idx" not in row and row["source_idx"] == 7
        assert all(len(row[column].split()) == 2 for column in PAIR_COLUMNS)
    one_word = psi.transform_text("Hello.", np.random.default_rng(0))
    assert one_word == "Hello."


def test_lexical_is_deterministic_for_a_seed():
    psi = LexicalPsi(word_dropout=0.1, swaps=2)
    first = psi.transform(PAIR_ROWS, PAIR_COLUMNS, 3, np.random.default_rng(5))
    second = psi.transform(PAIR_ROWS, PAIR_COLUMNS, 3, np.random.default_rng(5))
    other = psi.transform(PAIR_ROWS, PAIR_COLUMNS, 3, np.random.default_rng(6))
    assert first == second
    assert first != other


# ---------------------------------------------------------------------------------------------------------------
# text_key and deduplicate
# ---------------------------------------------------------------------------------------------------------------

def test_text_key_normalizes_case_and_whitespace():
    row = {"sentence1": "  Robert   SOLD\tit. ", "sentence2": "Ben\nbought it."}
    assert text_key(row, PAIR_COLUMNS) == ("robert sold it.", "ben bought it.")


def test_deduplicate_against_existing_and_within_new_rows():
    existing = [{"idx": 0, "label": 1, "sentence": "Robert Hill rode two horses."}]
    new_rows = [
        {"sentence": "robert  hill rode two HORSES.", "source_idx": 3},  # an existing row up to case/space
        {"sentence": "Robert rode two horses.", "source_idx": 3},
        {"sentence": "Hill rode two horses.", "source_idx": 4},
        {"sentence": " Robert rode two  horses. ", "source_idx": 5},  # an earlier new row up to space
        {"sentence": "Robert Hill rode horses.", "source_idx": 5},
    ]
    kept = deduplicate(new_rows, existing, SINGLE_COLUMNS)
    assert kept == [new_rows[1], new_rows[2], new_rows[4]]
    assert deduplicate([], existing, SINGLE_COLUMNS) == []


def test_deduplicate_compares_every_column_of_a_pair():
    existing = [{"sentence1": "A b.", "sentence2": "C d."}]
    new_rows = [{"sentence1": "a b.", "sentence2": "C d."}, {"sentence1": "a b.", "sentence2": "C e."}]
    assert deduplicate(new_rows, existing, PAIR_COLUMNS) == [new_rows[1]]


# ---------------------------------------------------------------------------------------------------------------
# masked_lm
# ---------------------------------------------------------------------------------------------------------------

def test_masked_lm_replaces_only_single_piece_words(masked_psi):
    new_rows = masked_psi.transform(SINGLE_ROWS, SINGLE_COLUMNS, variants_per_row=3, rng=np.random.default_rng(0))
    # Every source has eligible words and a variant always replaces one, so none is dropped as unchanged.
    assert len(new_rows) == 3 * len(SINGLE_ROWS)
    sources = {row["idx"]: row["sentence"] for row in SINGLE_ROWS}
    for row in new_rows:
        assert set(row) == {"sentence", "source_idx"}
        assert check_masked_variant(masked_psi.tokenizer, sources[row["source_idx"]], row["sentence"]) >= 1


def test_masked_lm_with_probability_one_replaces_every_eligible_word(tiny_mlm_folder):
    psi = MaskedLMPsi(str(tiny_mlm_folder), replace_probability=1.0, top_k=5)
    source = "Robert Smith sold six atlases to Simon."
    (row,) = psi.transform([{"idx": 0, "label": 1, "sentence": source}], SINGLE_COLUMNS, 1,
                           np.random.default_rng(0))
    eligible = [single_piece(psi.tokenizer, word) for word in source.split()]
    assert eligible == [True, True, True, True, False, True, True]  # "atlases" is atlas + ##es
    changed = [before != after for before, after in zip(source.split(), row["sentence"].split())]
    assert changed == eligible
    assert re.fullmatch(r"[A-Z][a-z]+\.", row["sentence"].split()[-1])  # "Simon." -> "Paul."
    check_masked_variant(psi.tokenizer, source, row["sentence"])


def test_masked_lm_transforms_both_columns_of_a_pair(masked_psi):
    new_rows = masked_psi.transform(PAIR_ROWS, PAIR_COLUMNS, variants_per_row=2, rng=np.random.default_rng(3))
    assert len(new_rows) == 2 * len(PAIR_ROWS)
    sources = {row["idx"]: row for row in PAIR_ROWS}
    for row in new_rows:
        assert set(row) == {"sentence1", "sentence2", "source_idx"}
        for column in PAIR_COLUMNS:
            source = sources[row["source_idx"]][column]
            assert row[column] != source
            check_masked_variant(masked_psi.tokenizer, source, row[column])


def test_masked_lm_is_deterministic_for_a_seed(masked_psi):
    first = masked_psi.transform(PAIR_ROWS, PAIR_COLUMNS, 3, np.random.default_rng(11))
    second = masked_psi.transform(PAIR_ROWS, PAIR_COLUMNS, 3, np.random.default_rng(11))
    assert first == second


def test_masked_lm_skips_texts_without_eligible_words(masked_psi):
    rows = [{"idx": 0, "label": 1, "sentence": "Atlases, 42 bookcases!"}, SINGLE_ROWS[1]]
    new_rows = masked_psi.transform(rows, SINGLE_COLUMNS, 2, np.random.default_rng(0))
    assert [row["source_idx"] for row in new_rows] == [1, 1]


def test_candidates_match_the_reference_forward_pass(masked_psi):
    """Candidates from the batched, head-on-masks-only path equal a filter applied by hand to the logits of
    Hugging Face's own forward pass, one query at a time."""
    import torch

    tokenizer, model = masked_psi.tokenizer, masked_psi.model
    queries = [(text, slot) for row in PAIR_ROWS for text in (row["sentence1"], row["sentence2"])
               for slot in masked_psi.slots(text)]
    got = masked_psi.candidates(queries)
    special_tokens = set(tokenizer.all_special_tokens)
    for (text, slot), candidates in zip(queries, got):
        words = text.split()
        words[slot.position] = slot.prefix + tokenizer.mask_token + slot.suffix
        encoded = tokenizer(" ".join(words), return_tensors="pt")
        with torch.no_grad():
            logits = model(**encoded).logits[0]  # (T, V)
            mask_position = int((encoded["input_ids"][0] == tokenizer.mask_token_id).nonzero())
            assert torch.allclose(masked_logits(model, encoded, encoded["input_ids"] == tokenizer.mask_token_id)[0],
                                  logits[mask_position], atol=1e-5)
        # The 500 best ids always hold top_k alphabetic words; ranking all 30522 would only slow the test down.
        ranked = tokenizer.convert_ids_to_tokens(logits[mask_position].topk(500).indices.tolist())
        expected = [token for token in ranked if token.isascii() and token.isalpha()
                    and token not in special_tokens and token != slot.core.lower()][:masked_psi.top_k]
        assert candidates == expected


# ---------------------------------------------------------------------------------------------------------------
# construction and validation
# ---------------------------------------------------------------------------------------------------------------

def test_build_psi(tiny_mlm_folder):
    options = {"lexical": {"word_dropout": 0.1, "swaps": 1},
               "masked_lm": {"model_folder": str(tiny_mlm_folder), "replace_probability": 0.2, "top_k": 4,
                             "batch_size": 8, "device": "cpu"}}
    assert isinstance(build_psi("lexical", options), LexicalPsi)
    masked = build_psi("masked_lm", options)
    assert isinstance(masked, MaskedLMPsi) and masked.top_k == 4
    with pytest.raises(ValueError, match="lexical, masked_lm"):
        build_psi("synonyms", options)
    with pytest.raises(ValueError, match="masked_lm"):
        build_psi("masked_lm", {"lexical": options["lexical"]})


@pytest.mark.parametrize("kwargs, argument", [
    ({"word_dropout": 1.0, "swaps": 1}, "word_dropout"),
    ({"word_dropout": -0.1, "swaps": 1}, "word_dropout"),
    ({"word_dropout": 0.1, "swaps": -1}, "swaps"),
    ({"word_dropout": 0.1, "swaps": 1.5}, "swaps"),
    ({"word_dropout": 0.0, "swaps": 0}, "word_dropout and swaps"),
])
def test_lexical_rejects_bad_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        LexicalPsi(**kwargs)


@pytest.mark.parametrize("kwargs, argument", [
    ({"replace_probability": 1.5}, "replace_probability"),
    ({"replace_probability": -0.1}, "replace_probability"),
    ({"top_k": 0}, "top_k"),
    ({"batch_size": 0}, "batch_size"),
])
def test_masked_lm_rejects_bad_arguments(tiny_mlm_folder, kwargs, argument):
    arguments = {"model_folder": str(tiny_mlm_folder), "replace_probability": 0.2, "top_k": 4, **kwargs}
    with pytest.raises(ValueError, match=argument):
        MaskedLMPsi(**arguments)


def test_a_factorized_layer_sharing_student_serves_as_the_masked_lm(tmp_path, tiny_mlm_folder):
    """A Bort student with ALBERT's options (config.albert) loads rebuilt and re-tied, and its masked-position
    logits are the model's own."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from workflow_scripts.core.albert import AlbertOptions, apply_albert
    from workflow_scripts.core.models import save_checkpoint

    torch.manual_seed(1)
    student = apply_albert(BertForMaskedLM(BertConfig.from_pretrained(tiny_mlm_folder)),
                           AlbertOptions(embedding_size=8, sharing="all")).eval()
    save_checkpoint(student, AutoTokenizer.from_pretrained(tiny_mlm_folder), str(tmp_path / "student"))
    psi = MaskedLMPsi(str(tmp_path / "student"), replace_probability=0.3, top_k=4, batch_size=5)
    layers = psi.model.bert.encoder.layer
    assert layers[0].attention.self.query.weight is layers[1].attention.self.query.weight  # re-tied
    encoded = psi.tokenizer("Robert Hill rode two [MASK].", return_tensors="pt")
    is_mask = encoded["input_ids"] == psi.tokenizer.mask_token_id
    with torch.no_grad():
        expected = student(**encoded).logits[is_mask]
        assert torch.allclose(masked_logits(psi.model, encoded, is_mask), expected, atol=1e-5)
    new_rows = psi.transform(SINGLE_ROWS, SINGLE_COLUMNS, variants_per_row=2, rng=np.random.default_rng(0))
    assert new_rows and {row["sentence"] for row in new_rows}.isdisjoint(row["sentence"] for row in SINGLE_ROWS)


def test_masked_lm_rejects_a_folder_without_mlm_head(tmp_path, tiny_mlm_folder):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig.from_pretrained(tiny_mlm_folder)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="no masked-LM head"):
        MaskedLMPsi(str(tmp_path), replace_probability=0.2, top_k=4)
    with pytest.raises(FileNotFoundError, match="config.json"):
        MaskedLMPsi(str(tmp_path / "missing"), replace_probability=0.2, top_k=4)


def test_transform_rejects_bad_inputs():
    psi = LexicalPsi(word_dropout=0.1, swaps=1)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="variants_per_row"):
        psi.transform(SINGLE_ROWS, SINGLE_COLUMNS, 0, rng)
    with pytest.raises(ValueError, match="'sentence1'"):
        psi.transform(SINGLE_ROWS, PAIR_COLUMNS, 1, rng)
    with pytest.raises(ValueError, match="text_columns"):
        psi.transform(SINGLE_ROWS, "sentence", 1, rng)
    with pytest.raises(ValueError, match="idx"):
        psi.transform([{"sentence": "A b c."}], SINGLE_COLUMNS, 1, rng)
    with pytest.raises(TypeError, match="default_rng"):
        psi.transform(SINGLE_ROWS, SINGLE_COLUMNS, 1, 0)
