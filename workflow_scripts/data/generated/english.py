"""Small helpers for English shared by the generated tasks: articles, sentence case, number words and people's names.

Used by `grammar` (paraphrase and entailment) and by `acceptability`; only the word lists in `lexicon` are read.
"""

from __future__ import annotations

import random

from . import lexicon as lex


def with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def as_sentence(clause: str) -> str:
    return clause[0].upper() + clause[1:] + "."


def number_word(count: int) -> str:
    return lex.NUMBER_WORDS[count - 2]


def person(rng: random.Random, gender: str | None = None) -> str:
    names = {"f": lex.FEMALE_NAMES, "m": lex.MALE_NAMES}.get(gender or rng.choice("fm"))
    first = rng.choice(names)
    return f"{first} {rng.choice(lex.SURNAMES)}" if rng.random() < 0.4 else first


def two_people(rng: random.Random) -> tuple[str, str]:
    first = person(rng)
    second = person(rng)
    while second.split()[0] == first.split()[0]:
        second = person(rng)
    return first, second
