"""entailment (RTE): a premise and a short hypothesis, entailment (label 0, 50%) or not_entailment (label 1).

The premise has modifiers, an appositive ("Anna, a nurse from Boston,") or a conjunction; events and their wording
are `grammar`'s.
  entailment: `hypernym` (poodle -> dog -> animal), `drop_modifier`, `passive_or_converse`, `conjunction`
    (Anna and Ben sold ... -> Ben sold ...), `appositive` (-> Anna is a nurse.), `implicative` (managed to fix ->
    fixed), `downward_monotone` (did not buy any animals -> did not buy any dogs).
  not_entailment: `hyponym` (dog -> poodle), `role_swap`, `negation`, `unsupported_modifier` (adds a colour, city
    or day), `quantity_change`, `non_implicative` (tried to fix -> fixed), `appositive_mismatch`, `disjunction`
    (Anna or Ben ... -> Ben ...), `upward_under_negation` (did not buy any dogs -> did not buy any animals),
    `near_synonym` (bought -> rented).

The `entailment_*` functions are the builders (or return the builder) of one phenomenon; their weights are in
`task_generator`.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Callable

from . import lexicon as lex
from .english import as_sentence, person, with_article
from .grammar import (COUNT_NOUNS, Event, Style, Thing, ancestors, near_miss, random_event, rewrite_converse,
                      rewrite_voice, say)

# Countable nouns that have a parent: these can be replaced by a hypernym (and their parent by them).
_NOUNS_WITH_PARENT = tuple(s for s, p, parent in lex.NOUN_TAXONOMY if p is not None and parent is not None)


def _children(noun: str) -> tuple[str, ...]:
    return tuple(s for s, p, parent in lex.NOUN_TAXONOMY if parent == noun and p is not None)


def _premise(rng: random.Random, frame: str | None = None, people_only: bool = False) -> Event:
    """A premise event with more modifiers than a hypothesis usually has."""
    event = random_event(rng, frame=frame, people_only=people_only, modifier_rate=0.6)
    if rng.random() < 0.3 and not event.agent.startswith("the "):
        profession = rng.choice(lex.PROFESSIONS)[0]
        event = replace(event, appositive=f"{with_article(profession)} from {rng.choice(lex.CITIES)}")
    return event


def _hypothesis_of(rng: random.Random, premise: Event) -> Event:
    """The premise minus a random subset of its modifiers: entailed whenever the premise is not negated."""
    keep = 0.35
    thing = premise.thing
    if thing and thing.adjective and rng.random() > keep:
        thing = replace(thing, adjective=None)
    return replace(
        premise, thing=thing, appositive=None,
        price=premise.price if rng.random() < keep else None,
        place=premise.place if rng.random() < keep else None,
        day=premise.day if rng.random() < keep else None,
    )


def _plain_style(rng: random.Random, event: Event) -> Style:
    return Style(voice="passive" if rng.random() < 0.15 and not event.control else "active",
                  dative=event.frame == "transfer" and rng.random() < 0.15)


def _entail_pair(rng: random.Random, premise: Event, hypothesis: Event,
                 hypothesis_style: Style | None = None) -> tuple[str, str]:
    premise_style = _plain_style(rng, premise)
    if premise.appositive or premise.control:
        premise_style = replace(premise_style, voice="active")
    return say(premise, premise_style), say(hypothesis, hypothesis_style or _plain_style(rng, hypothesis))


def entailment_hypernym(rng: random.Random) -> tuple[str, str]:
    premise = _premise(rng, frame=rng.choice(("transfer", "thing")))
    premise = replace(premise, thing=replace(premise.thing, noun=rng.choice(_NOUNS_WITH_PARENT)))
    hypothesis = _hypothesis_of(rng, premise)
    general = rng.choice(ancestors(premise.thing.noun))
    return _entail_pair(rng, premise, replace(hypothesis, thing=replace(hypothesis.thing, noun=general)))


def entailment_hyponym(rng: random.Random) -> tuple[str, str] | None:
    premise = _premise(rng, frame=rng.choice(("transfer", "thing")))
    parents = tuple(s for s in COUNT_NOUNS if _children(s))
    premise = replace(premise, thing=replace(premise.thing, noun=rng.choice(parents)))
    hypothesis = _hypothesis_of(rng, premise)
    specific = rng.choice(_children(premise.thing.noun))
    return _entail_pair(rng, premise, replace(hypothesis, thing=replace(hypothesis.thing, noun=specific)))


def entailment_drop_modifier(rng: random.Random) -> tuple[str, str] | None:
    premise = _premise(rng)
    hypothesis = _hypothesis_of(rng, premise)
    return _entail_pair(rng, premise, hypothesis)


def entailment_rewrite(rng: random.Random) -> tuple[str, str] | None:
    premise = replace(_premise(rng), appositive=None)
    hypothesis = _hypothesis_of(rng, premise)
    style = _plain_style(rng, hypothesis)
    rewrite = rewrite_converse if rng.random() < 0.5 else rewrite_voice
    rewritten = rewrite(rng, hypothesis, style) or rewrite_voice(rng, hypothesis, style)
    return _entail_pair(rng, premise, hypothesis, rewritten)


def entailment_role_swap(rng: random.Random) -> tuple[str, str] | None:
    premise = _premise(rng, frame=rng.choice(("transfer", "person")), people_only=True)
    hypothesis = _hypothesis_of(rng, premise)
    swapped = replace(hypothesis, agent=hypothesis.other, other=hypothesis.agent)
    style = _plain_style(rng, swapped)
    if rng.random() < 0.4:
        style = rewrite_converse(rng, swapped, style) or rewrite_voice(rng, swapped, style)
    return _entail_pair(rng, premise, swapped, style)


def entailment_negation(rng: random.Random) -> tuple[str, str] | None:
    premise = _premise(rng)
    hypothesis = replace(_hypothesis_of(rng, premise), negated=True)
    if rng.random() < 0.3:  # the negation is in the premise instead
        premise, hypothesis = replace(premise, negated=True, appositive=None), replace(hypothesis, negated=False)
    return _entail_pair(rng, premise, hypothesis)


def entailment_unsupported_modifier(rng: random.Random) -> tuple[str, str] | None:
    premise = _premise(rng, frame=rng.choice(("transfer", "thing")))
    hypothesis = _hypothesis_of(rng, premise)
    roll = rng.random()
    if roll < 0.4:
        colours = [c for c in lex.COLOURS if c != premise.thing.adjective]
        premise = replace(premise, thing=replace(premise.thing, adjective=None))
        hypothesis = replace(hypothesis, thing=replace(hypothesis.thing, adjective=rng.choice(colours)))
    elif roll < 0.7:
        hypothesis = replace(hypothesis, place=rng.choice([c for c in lex.CITIES if c != premise.place]))
    else:
        hypothesis = replace(hypothesis, day=rng.choice([d for d in lex.DAYS if d != premise.day]))
    return _entail_pair(rng, premise, hypothesis)


def entailment_quantity(rng: random.Random) -> tuple[str, str] | None:
    premise = _premise(rng, frame=rng.choice(("transfer", "thing")))
    premise = replace(premise, thing=replace(premise.thing, determiner="indefinite"))
    hypothesis = _hypothesis_of(rng, premise)
    larger = rng.randint(premise.thing.count + 1, min(premise.thing.count + 4, 12))
    return _entail_pair(rng, premise, replace(hypothesis, thing=replace(hypothesis.thing, count=larger)))


def entailment_implicative(entailed: bool) -> Callable[[random.Random], tuple[str, str]]:
    def build(rng: random.Random) -> tuple[str, str]:
        control = rng.choice(lex.SUCCESS_VERBS if entailed else lex.ATTEMPT_VERBS)
        premise = replace(_premise(rng, frame=rng.choice(("transfer", "person", "thing"))), control=control)
        return _entail_pair(rng, premise, replace(_hypothesis_of(rng, premise), control=None))
    return build


def entailment_appositive(entailed: bool) -> Callable[[random.Random], tuple[str, str]]:
    def build(rng: random.Random) -> tuple[str, str]:
        premise = _premise(rng, people_only=True)
        profession, city = rng.choice(lex.PROFESSIONS)[0], rng.choice(lex.CITIES)
        premise = replace(premise, appositive=f"{with_article(profession)} from {city}")
        subject = premise.agent
        if not entailed:
            if premise.other is None:
                return None
            roll = rng.random()
            if roll < 0.4:
                profession = rng.choice([p for p, _ in lex.PROFESSIONS if p != profession])
            elif roll < 0.7:
                city = rng.choice([c for c in lex.CITIES if c != city])
            else:
                subject = premise.other
        claim = f"is {with_article(profession)}" if rng.random() < 0.5 else f"is from {city}"
        return say(premise, Style()), as_sentence(f"{subject} {claim}")
    return build


def entailment_conjunction(entailed: bool) -> Callable[[random.Random], tuple[str, str]]:
    def build(rng: random.Random) -> tuple[str, str]:
        premise = _premise(rng, people_only=True)
        first, second = premise.agent, person(rng)
        if second.split()[0] in (first.split()[0], (premise.other or "-").split()[0]):
            return None
        joined = f"{first} and {second}" if entailed else f"either {first} or {second}"
        premise = replace(premise, agent=joined, appositive=None)
        hypothesis = replace(_hypothesis_of(rng, premise), agent=rng.choice((first, second)))
        return _entail_pair(rng, premise, hypothesis)
    return build


def entailment_monotone(entailed: bool) -> Callable[[random.Random], tuple[str, str]]:
    """Under negation a general noun entails a specific one: did not buy any animals -> did not buy any dogs."""
    def build(rng: random.Random) -> tuple[str, str]:
        specific = rng.choice(_NOUNS_WITH_PARENT)
        general = rng.choice(ancestors(specific))
        premise_noun, hypothesis_noun = (general, specific) if entailed else (specific, general)
        event = random_event(rng, frame=rng.choice(("transfer", "thing")), modifier_rate=0.0)
        premise = replace(event, negated=True, thing=Thing(premise_noun, determiner="any"))
        hypothesis = replace(premise, thing=Thing(hypothesis_noun, determiner="any"))
        return say(premise, Style()), say(hypothesis, Style())
    return build


def entailment_near_synonym(rng: random.Random) -> tuple[str, str]:
    premise = _premise(rng)
    hypothesis = _hypothesis_of(rng, premise)
    style = Style()
    return _entail_pair(rng, premise, hypothesis, replace(style, verb_override=near_miss(rng, hypothesis, style)))

