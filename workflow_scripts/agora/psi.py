"""psi, the data-generating function of Agora: new examples that resemble the ones the student got wrong.

Agora (Bort paper, seed 002, section 5) fine-tunes the student, collects the dev examples it misclassifies, applies
psi to them, has the teacher label the results and adds them to the training set. Neither the Bort paper nor its
code publishes psi for text (docs/algorithms.md, section 2.2: "psi for text: UNKNOWN"), so psi here is a documented
design choice with two implementations, chosen in params.yaml by name through `build_psi`:

    from workflow_scripts.agora.psi import build_psi, deduplicate
    psi = build_psi("lexical", {"lexical": {"word_dropout": 0.1, "swaps": 1}})
    new_rows = psi.transform(wrong_dev_rows, ("sentence1", "sentence2"), variants_per_row=4, rng=rng)
    new_rows = deduplicate(new_rows, train_rows, ("sentence1", "sentence2"))
    # new_rows[0]: {"sentence1": ..., "sentence2": ..., "source_idx": 17}  (no "label", no "idx")

`lexical` (LexicalPsi): word dropout plus swaps of adjacent words, in the spirit of the "random deletion" and
    "random swap" operations of EDA (Wei and Zou, 2019). Cheap and model-free, but the output is often no longer
    fluent English; on acceptability tasks (CoLA) it mostly produces unacceptable sentences.
`masked_lm` (MaskedLMPsi): the data augmentation of TinyBERT (seed 001, "task-specific distillation"): each word
    that is a single WordPiece is, with probability replace_probability, masked and replaced by one of the top-K
    words a BERT masked LM predicts in its place. The output stays fluent and close to the source, which is what
    Agora's author asks of psi ("similar enough, but not too similar or too distinct").

Design choices shared by both:
- psi never carries the label. A word swap can turn a paraphrase into a non-paraphrase or an acceptable sentence
  into an unacceptable one, so Agora's teacher labels every new row; `transform` removes "label" so that a stale
  label cannot leak into training by mistake. The source is kept as "source_idx" (the row's "idx") for the report.
- Every text column is transformed (both sentences of a pair), independently of the other one.
- Text is split on whitespace and written back joined by single spaces; punctuation stays attached to its word.
- A variant identical to its source (compared by `text_key`) is not returned, so `transform` gives *up to*
  variants_per_row rows per source. Duplicates between variants, and against the training set, are removed by
  `deduplicate`, which the caller runs against everything the student has already seen.
- Everything random comes from the numpy Generator passed in, so the same rng state gives the same rows.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Union

import numpy as np

# A whitespace-separated word is prefix + core + suffix: leading and trailing punctuation ("(Simon)." ->
# "(", "Simon", ").") is kept around the replacement, so that sentence structure survives substitution.
_WORD_PATTERN = re.compile(r"^(\W*)(.*?)(\W*)$")
# A cased vocabulary can hold the original word under other casings too ("simon", "Simon", "SIMON"); they are
# filtered out after top-k, so top-k takes this many extra candidates to still return K after filtering.
_EXTRA_CANDIDATES = 3


# ---------------------------------------------------------------------------------------------------------------
# Shared: validation, output rows, de-duplication
# ---------------------------------------------------------------------------------------------------------------

def text_key(row: dict, text_columns: tuple[str, ...]) -> tuple[str, ...]:
    """The row's texts lowercased with whitespace collapsed: rows with the same key count as the same example."""
    return tuple(" ".join(row[column].split()).lower() for column in text_columns)


def deduplicate(new_rows: list[dict], existing_rows: list[dict], text_columns: tuple[str, ...]) -> list[dict]:
    """new_rows without those whose text_key equals an existing row's or an earlier new row's; order is kept."""
    text_columns = tuple(text_columns)
    seen = {text_key(row, text_columns) for row in existing_rows}
    kept = []
    for row in new_rows:
        key = text_key(row, text_columns)
        if key not in seen:
            seen.add(key)
            kept.append(row)
    return kept


def _check_transform_inputs(rows: list[dict], text_columns: tuple[str, ...], variants_per_row: int,
                            rng: np.random.Generator) -> tuple[str, ...]:
    """text_columns as a tuple; raises with what to fix before any work (or any model call) is done."""
    if isinstance(text_columns, str) or not text_columns:
        raise ValueError(f"text_columns must be a non-empty tuple of column names, got {text_columns!r}")
    if int(variants_per_row) != variants_per_row or variants_per_row < 1:
        raise ValueError(f"variants_per_row must be an integer >= 1, got {variants_per_row!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng)}")
    for position, row in enumerate(rows):
        if "idx" not in row:
            raise ValueError(f"row {position} has no 'idx': psi records it as the new rows' source_idx")
        for column in text_columns:
            if not isinstance(row.get(column), str):
                raise ValueError(f"row idx={row['idx']} has no text column {column!r} (columns: {sorted(row)})")
    return tuple(text_columns)


def _variant_rows(rows: list[dict], text_columns: tuple[str, ...],
                  texts_by_row: list[list[tuple[str, ...]]]) -> list[dict]:
    """New rows from texts_by_row[row][variant] (one text per column): no label, no idx, source_idx set, and
    variants identical to their source left out."""
    new_rows = []
    for row, variant_texts in zip(rows, texts_by_row):
        source_key = text_key(row, text_columns)
        for texts in variant_texts:
            variant = {key: value for key, value in row.items() if key not in ("label", "idx")}
            variant.update(zip(text_columns, texts))
            if text_key(variant, text_columns) == source_key:
                continue
            variant["source_idx"] = row["idx"]
            new_rows.append(variant)
    return new_rows


# ---------------------------------------------------------------------------------------------------------------
# lexical: word dropout and adjacent swaps
# ---------------------------------------------------------------------------------------------------------------

class LexicalPsi:
    """Drop each word with probability word_dropout (keeping at least two words, or the only one), then swap
    `swaps` random pairs of adjacent words."""

    def __init__(self, word_dropout: float, swaps: int):
        if not 0 <= word_dropout < 1:
            raise ValueError(f"word_dropout must be in [0, 1), got {word_dropout!r}")
        if int(swaps) != swaps or swaps < 0:
            raise ValueError(f"swaps must be an integer >= 0, got {swaps!r}")
        if word_dropout == 0 and swaps == 0:
            raise ValueError("word_dropout and swaps are both 0: psi would return every text unchanged")
        self.word_dropout = float(word_dropout)
        self.swaps = int(swaps)

    def transform_text(self, text: str, rng: np.random.Generator) -> str:
        words = text.split()
        if self.word_dropout > 0 and len(words) > 1:
            words = self._drop_words(words, rng)
        for _ in range(self.swaps if len(words) > 1 else 0):
            i = int(rng.integers(len(words) - 1))
            words[i], words[i + 1] = words[i + 1], words[i]
        return " ".join(words)

    def _drop_words(self, words: list[str], rng: np.random.Generator) -> list[str]:
        keep = rng.random(len(words)) >= self.word_dropout
        # Two words at least: a one-word "sentence" says nothing a teacher could label meaningfully.
        missing = 2 - int(keep.sum())
        if missing > 0:
            restored = rng.choice(np.flatnonzero(~keep), size=missing, replace=False)
            keep[restored] = True
        return [word for word, kept in zip(words, keep) if kept]

    def transform(self, rows: list[dict], text_columns: tuple[str, ...], variants_per_row: int,
                  rng: np.random.Generator) -> list[dict]:
        """Up to variants_per_row new rows per row, each with every text column transformed (see the module
        docstring for the row format)."""
        text_columns = _check_transform_inputs(rows, text_columns, variants_per_row, rng)
        texts_by_row = [[tuple(self.transform_text(row[column], rng) for column in text_columns)
                         for _ in range(variants_per_row)] for row in rows]
        return _variant_rows(rows, text_columns, texts_by_row)


# ---------------------------------------------------------------------------------------------------------------
# masked_lm: TinyBERT-style replacement by a masked LM's top-K predictions
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WordSlot:
    """A word that can be replaced: its position among the text's whitespace-separated words, the punctuation
    around it, and its one WordPiece id."""
    position: int
    prefix: str
    core: str
    suffix: str
    token_id: int


def _match_case(replacement: str, original: str) -> str:
    """The replacement spelled in the original's case: "Simon" -> "Paul", "NASA" -> "ESA" (an uncased vocabulary
    only predicts lowercase)."""
    if len(original) > 1 and original.isupper():
        return replacement.upper()
    if original[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


class MaskedLMPsi:
    """TinyBERT's data augmentation with a BERT masked LM (a BertForMaskedLM folder with its tokenizer).

    For every word of a text that is a single WordPiece and plain ASCII letters (punctuation around it is kept),
    with probability replace_probability the word is masked and replaced by a candidate drawn uniformly among the
    model's top_k predictions for the mask. Candidates exclude the original word (in any casing), special tokens,
    '##' continuation pieces and tokens that are not alphabetic words; the replacement takes the original's
    capitalization. Each word is masked on its own, with the rest of the source text (the original words) as
    context, so a word's candidates are the same in every variant and are computed once, batched over all words
    and texts. A text in which no word was picked by chance gets one eligible word replaced, picked uniformly, so
    that every text column of every variant differs from its source whenever it has an eligible word.

    Difference from TinyBERT: TinyBERT replaces words made of several WordPieces by GloVe nearest neighbours.
    No GloVe vectors are available offline here, so such words (and words with digits, apostrophes or hyphens
    inside) are always kept. The word count therefore never changes.
    """

    def __init__(self, model_folder: str, replace_probability: float, top_k: int, batch_size: int = 64,
                 device: str = "cpu"):
        if not 0 <= replace_probability <= 1:
            raise ValueError(f"replace_probability must be in [0, 1], got {replace_probability!r}")
        if int(top_k) != top_k or top_k < 1:
            raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}")
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.replace_probability = float(replace_probability)
        self.top_k = int(top_k)
        self.batch_size = int(batch_size)
        self.device = device
        self.model, self.tokenizer = _load_masked_lm(str(model_folder), device)
        self._allowed_ids = self._candidate_vocabulary()  # (V,) bool
        if int(self._allowed_ids.sum()) <= self.top_k:
            raise ValueError(f"the vocabulary of {model_folder} has only {int(self._allowed_ids.sum())} alphabetic "
                             f"tokens, not more than top_k={self.top_k}: is it a WordPiece (BERT) vocabulary?")
        self._max_length = min(self.tokenizer.model_max_length, self.model.config.max_position_embeddings)
        self._single_piece_ids: dict[str, int | None] = {}  # core word -> its WordPiece id, None if several

    def _candidate_vocabulary(self):
        """(V,) bool tensor: True for ids that may replace a word (alphabetic ASCII tokens, not special, not ##)."""
        import torch

        vocab_size = self.model.config.vocab_size
        tokens = self.tokenizer.convert_ids_to_tokens(list(range(min(vocab_size, len(self.tokenizer)))))
        special = set(self.tokenizer.all_special_ids)
        # isalpha() already rejects '##' pieces and '[unused3]'; isascii() rejects the single CJK/accented
        # characters of multilingual-leaning vocabularies, which are not English words.
        allowed = [token.isascii() and token.isalpha() and token_id not in special
                   for token_id, token in enumerate(tokens)]
        allowed += [False] * (vocab_size - len(allowed))  # rows of a padded embedding matrix have no token
        return torch.tensor(allowed, device=self.device)

    def slots(self, text: str) -> list[WordSlot]:
        """The words of text that may be replaced: plain ASCII letters, one WordPiece (not [UNK])."""
        slots = []
        for position, word in enumerate(text.split()):
            prefix, core, suffix = _WORD_PATTERN.match(word).groups()
            if not (core.isascii() and core.isalpha()):
                continue
            token_id = self._single_piece_id(core)
            if token_id is not None:
                slots.append(WordSlot(position, prefix, core, suffix, token_id))
        return slots

    def _single_piece_id(self, core: str) -> int | None:
        if core not in self._single_piece_ids:
            pieces = self.tokenizer.tokenize(core)
            single = len(pieces) == 1 and pieces[0] != self.tokenizer.unk_token
            self._single_piece_ids[core] = self.tokenizer.convert_tokens_to_ids(pieces[0]) if single else None
        return self._single_piece_ids[core]

    def candidates(self, queries: list[tuple[str, WordSlot]]) -> list[list[str]]:
        """For each (text, slot): up to top_k replacement words, best first, predicted for the slot's word masked
        alone in text. Batched, sorted by length so that padding stays small."""
        import torch

        contexts = [self._masked_context(text, slot) for text, slot in queries]
        order = sorted(range(len(queries)), key=lambda i: len(contexts[i]))
        results: list[list[str]] = [[] for _ in queries]
        with torch.no_grad():
            for start in range(0, len(order), self.batch_size):
                batch = order[start:start + self.batch_size]
                top_ids = self._top_ids([contexts[i] for i in batch], [queries[i][1] for i in batch])
                for i, ids in zip(batch, top_ids):
                    results[i] = self._filter_candidates(ids, queries[i][1].core)
        return results

    def _masked_context(self, text: str, slot: WordSlot) -> str:
        words = text.split()
        words[slot.position] = slot.prefix + self.tokenizer.mask_token + slot.suffix
        return " ".join(words)

    def _top_ids(self, contexts: list[str], slots: list[WordSlot]) -> list[list[int]]:
        """The best allowed ids at the mask of each context (empty if truncation cut the mask off)."""
        import torch

        encoded = self.tokenizer(contexts, padding=True, truncation=True, max_length=self._max_length,
                                 return_tensors="pt").to(self.device)
        is_mask = encoded["input_ids"] == self.tokenizer.mask_token_id  # (B, T)
        has_mask = is_mask.sum(dim=1) == 1  # a literal "[MASK]" in the source text would make the query ambiguous
        logits = masked_logits(self.model, encoded, is_mask & has_mask[:, None])  # (M, V), M = has_mask.sum()
        logits = logits.masked_fill(~self._allowed_ids, float("-inf"))
        original_ids = torch.tensor([slot.token_id for slot in slots], device=self.device)[has_mask]
        logits[torch.arange(len(original_ids), device=self.device), original_ids] = float("-inf")
        k = min(self.top_k + _EXTRA_CANDIDATES, int(self._allowed_ids.sum()) - 1)
        top = logits.topk(k, dim=-1).indices.tolist()
        rows_with_mask = iter(top)
        return [next(rows_with_mask) if flag else [] for flag in has_mask.tolist()]

    def _filter_candidates(self, ids: list[int], original: str) -> list[str]:
        words = [token for token in self.tokenizer.convert_ids_to_tokens(ids) if token.lower() != original.lower()]
        return words[:self.top_k]

    def transform(self, rows: list[dict], text_columns: tuple[str, ...], variants_per_row: int,
                  rng: np.random.Generator) -> list[dict]:
        """Up to variants_per_row new rows per row, each with every text column transformed (see the module
        docstring for the row format)."""
        text_columns = _check_transform_inputs(rows, text_columns, variants_per_row, rng)
        slots_by_text = {row[column]: self.slots(row[column]) for row in rows for column in text_columns}
        # First every random choice of which words to replace, then one batched pass over the chosen words only,
        # then the choice of replacements: the rng is consumed in the same order whatever the model predicts.
        chosen = [[[self._choose_slots(slots_by_text[row[column]], rng) for column in text_columns]
                   for _ in range(variants_per_row)] for row in rows]
        queries = sorted({(row[column], slot) for row, row_chosen in zip(rows, chosen)
                          for variant in row_chosen for column, slots in zip(text_columns, variant)
                          for slot in slots}, key=lambda query: (query[0], query[1].position))
        candidates_by_query = dict(zip(queries, self.candidates(queries)))
        texts_by_row = [[tuple(self._replace(row[column], slots, candidates_by_query, rng)
                               for column, slots in zip(text_columns, variant)) for variant in row_chosen]
                        for row, row_chosen in zip(rows, chosen)]
        return _variant_rows(rows, text_columns, texts_by_row)

    def _choose_slots(self, slots: list[WordSlot], rng: np.random.Generator) -> list[WordSlot]:
        """Each slot with probability replace_probability; one at random if none was picked, so the text changes."""
        if not slots:
            return []
        picked = [slot for slot, draw in zip(slots, rng.random(len(slots))) if draw < self.replace_probability]
        return picked or [slots[int(rng.integers(len(slots)))]]

    def _replace(self, text: str, slots: list[WordSlot], candidates_by_query: dict, rng: np.random.Generator) -> str:
        words = text.split()
        for slot in slots:
            candidates = candidates_by_query[(text, slot)]
            if candidates:  # empty only when the text was too long for the model and the mask was cut off
                replacement = candidates[int(rng.integers(len(candidates)))]
                words[slot.position] = slot.prefix + _match_case(replacement, slot.core) + slot.suffix
        return " ".join(words)


def _has_structure_record(model_folder: str) -> bool:
    with open(os.path.join(model_folder, "config.json")) as handle:
        config = json.load(handle)
    return bool(config.get("albert") or config.get("compression"))


def _stores_mlm_head(model_folder: str) -> bool:
    from safetensors import safe_open

    with safe_open(os.path.join(model_folder, "model.safetensors"), "pt") as handle:
        return any(key.startswith("cls.") for key in handle.keys())


def _load_masked_lm(model_folder: str, device: str):
    """(BertForMaskedLM in eval mode on device, tokenizer); refuses a folder whose MLM head would be random."""
    from transformers import AutoTokenizer, BertForMaskedLM

    from workflow_scripts.core.io_utils import verified
    from workflow_scripts.core.surgery import load_pruned

    if not os.path.isfile(os.path.join(model_folder, "config.json")):
        raise FileNotFoundError(f"psi masked_lm: {model_folder!r} is not a Hugging Face model folder "
                                "(no config.json); give a BertForMaskedLM folder such as models/bort/teacher")
    if _has_structure_record(model_folder):
        # a pruned, factorized or layer-sharing student (core/surgery.py, core/albert.py): rebuilt from its record
        missing_head = [] if _stores_mlm_head(model_folder) else ["cls.*"]
        model = None if missing_head else load_pruned(verified(model_folder), BertForMaskedLM)
    else:
        model, loading_info = BertForMaskedLM.from_pretrained(verified(model_folder), output_loading_info=True)
        missing_head = sorted(key for key in loading_info["missing_keys"] if key.startswith("cls."))
    # A BertModel checkpoint (no MLM head) loads with a freshly initialized head and only a warning; its
    # "predictions" would be noise, so stop here instead.
    if missing_head:
        raise ValueError(f"psi masked_lm: {model_folder} has no masked-LM head (missing {missing_head[:3]}...); "
                         "give a BertForMaskedLM folder such as models/bort/teacher")
    tokenizer = AutoTokenizer.from_pretrained(model_folder)
    return model.to(device).eval(), tokenizer


def masked_logits(model, encoded, is_mask):
    """(M, V) vocabulary logits at the M True positions of is_mask (B, T); equal to model(**encoded).logits
    there, but the MLM head (a V-wide projection) runs on M positions instead of B * T."""
    hidden = model.bert(**encoded).last_hidden_state  # (B, T, H)
    return model.cls(hidden[is_mask])  # (M, V)


# ---------------------------------------------------------------------------------------------------------------
# Construction from params.yaml
# ---------------------------------------------------------------------------------------------------------------

Psi = Union[LexicalPsi, MaskedLMPsi]
PSI_CLASSES = {"lexical": LexicalPsi, "masked_lm": MaskedLMPsi}


def build_psi(name: str, options: dict) -> Psi:
    """The psi called `name`, built from options[name] (params.yaml's psi options, one section per psi)."""
    if name not in PSI_CLASSES:
        raise ValueError(f"unknown psi {name!r}; known: {', '.join(PSI_CLASSES)}")
    if name not in options:
        raise ValueError(f"psi {name!r} needs an options section {name!r}, got sections {sorted(options)}")
    return PSI_CLASSES[name](**options[name])
