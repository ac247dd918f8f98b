"""paraphrase (MRPC): pairs of news-style sentences, equivalent (label 1, 68%) or not (label 0).

Sentences are about a transfer ("Anna sold three old trucks to Ben in Denver"), a person acting on a person ("the
museum hired Ben") or a person acting on a thing, with optional price, place, day and a reporting frame ("the police
said that ..."); the events and their wording are `grammar`'s.
  equivalent: `synonym` (bought/purchased, car/automobile, big/large), `passive`, `converse` (sold X to B /
    B bought X from A; beat / lost to), `dative` (sold Ben the car / sold the car to Ben), `reorder` (fronted
    adverbial, "X, officials said" / "according to officials, X"), `combined` (two or three of these at once).
  not equivalent: `role_swap` (the two people trade places, often together with a voice change), `number_change`
    (count or price), `place_or_day`, `antonym` (old/new), `negation`, `near_synonym` (bought/rented,
    praised/criticized, beat/lost to), `denial` (said that / denied that). Half of the negatives also get a
    meaning-preserving rewrite, so that word overlap alone does not give the label away.

`paraphrase_positive(name)` and `paraphrase_negative(name)` return the builder of one phenomenon; their weights are
in `task_generator`.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Callable

from . import lexicon as lex
from .grammar import (REWRITES, THING_ADJECTIVES, Event, Style, near_miss, random_event, random_style,
                      rewrite_surface, say)

_ANTONYM = dict(lex.ADJECTIVE_ANTONYMS) | {b: a for a, b in lex.ADJECTIVE_ANTONYMS}


def paraphrase_positive(name: str) -> Callable[[random.Random], tuple[str, str] | None]:
    def build(rng: random.Random) -> tuple[str, str] | None:
        event = random_event(rng, frame="transfer" if name in ("dative", "converse") and rng.random() < 0.8 else None)
        style = random_style(rng, event)
        if name == "combined":
            other_style = rewrite_surface(rng, event, style, rng.choice((2, 3)))
        else:
            other_style = REWRITES[name](rng, event, style)
        if other_style is None:
            return None
        return say(event, style), say(event, other_style)
    return build


def _perturb_for_paraphrase(rng: random.Random, name: str, event: Event, style: Style
                            ) -> tuple[Event, Style] | None:
    """A meaning-changing edit of (event, style) for a not_equivalent pair."""
    if name == "role_swap":
        return replace(event, agent=event.other, other=event.agent), style
    if name == "number_change":
        if event.price and rng.random() < 0.4:
            return replace(event, price=rng.choice([p for p in lex.PRICES if p != event.price])), style
        count = event.thing.count
        new_count = rng.choice([c for c in range(1, 8) if c != count and abs(c - count) <= 2])
        return replace(event, thing=replace(event.thing, count=new_count)), style
    if name == "place_or_day":
        if event.place and (not event.day or rng.random() < 0.5):
            return replace(event, place=rng.choice([c for c in lex.CITIES if c != event.place])), style
        return replace(event, day=rng.choice([d for d in lex.DAYS if d != event.day])), style
    if name == "antonym":
        return replace(event, thing=replace(event.thing, adjective=_ANTONYM[event.thing.adjective])), style
    if name == "negation":
        return replace(event, negated=True), replace(style, verb_synonym=False)
    if name == "near_synonym":
        return event, replace(style, verb_override=near_miss(rng, event, style))
    if name == "denial":
        return event, replace(style, wrapper="denied")
    raise AssertionError(name)



def paraphrase_negative(name: str) -> Callable[[random.Random], tuple[str, str] | None]:
    def build(rng: random.Random) -> tuple[str, str] | None:
        frames = _NEGATIVE_FRAMES.get(name)
        event = random_event(rng, frame=rng.choice(frames) if frames else None, people_only=name == "role_swap")
        if name == "number_change":
            event = replace(event, thing=replace(event.thing, determiner="indefinite"))
        if name == "antonym":
            event = replace(event, thing=replace(event.thing, adjective=rng.choice(THING_ADJECTIVES)))
        if name == "place_or_day" and not (event.place or event.day):
            event = replace(event, place=rng.choice(lex.CITIES))
        style = random_style(rng, event)
        if name == "denial":
            style = replace(style, wrapper="said")
        if name == "near_synonym":
            converse = style.voice == "converse" and event.frame == "transfer"
            style = replace(style, voice="converse" if converse else "active", dative=False)
        changed_event, changed_style = _perturb_for_paraphrase(rng, name, event, style)
        if rng.random() < 0.5 and name not in ("near_synonym", "denial"):
            changed_style = rewrite_surface(rng, changed_event, changed_style, rng.choice((1, 2)))
        return say(event, style), say(changed_event, changed_style)
    return build


# Frames an edit needs: a role swap needs two people, a number or an antonym needs a thing.
_NEGATIVE_FRAMES = {"role_swap": ("transfer", "person"), "number_change": ("transfer", "thing"),
                    "antonym": ("transfer", "thing")}

