"""The sentence machinery shared by the paraphrase and entailment tasks: events, how they are said, and rewrites.

An `Event` is what a sentence says: a transfer ("Anna sold three old trucks to Ben in Denver"), a person acting on a
person ("the museum hired Ben") or a person acting on a thing, with optional price, place, day, negation, an
appositive ("Anna, a nurse from Boston,") and a control verb ("managed to"). A `Style` is how it is said: voice
(active, passive, converse), dative shift, a fronted adverbial, a reporting frame ("the police said that ..."),
synonyms and a near-miss verb. `say(event, style)` writes the sentence; `random_event` and `random_style` draw them.
The meaning-preserving rewrites of a style (`REWRITES`: synonym, passive, converse, dative, reorder) are the
paraphrase task's positives and the entailment task's `passive_or_converse`; `near_miss` (bought -> rented) is a
negative in both.

Reads `lexicon` and `english` only; the task-specific code is in `paraphrase` and `entailment`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from . import lexicon as lex
from .english import as_sentence, number_word, two_people, with_article

# ---------------------------------------------------------------------------------------------------------------
# Nouns and adjectives, indexed from the lexicon
# ---------------------------------------------------------------------------------------------------------------

_PARENT = {singular: parent for singular, _, parent in lex.NOUN_TAXONOMY}
_PLURAL = {singular: plural for singular, plural, _ in lex.NOUN_TAXONOMY} | lex.NOUN_SYNONYM_PLURALS
_NOUN_SYNONYM = dict(lex.NOUN_SYNONYMS)
_ADJECTIVE_SYNONYM = dict(lex.ADJECTIVE_SYNONYMS)
THING_ADJECTIVES = tuple(word for pair in lex.ADJECTIVE_ANTONYMS for word in pair)
COUNT_NOUNS = tuple(s for s, p, _ in lex.NOUN_TAXONOMY if p is not None)


def ancestors(noun: str) -> list[str]:
    chain = []
    while _PARENT.get(noun) is not None:
        noun = _PARENT[noun]
        chain.append(noun)
    return chain


# ---------------------------------------------------------------------------------------------------------------
# Events: what a paraphrase or entailment sentence says, and how it is said
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thing:
    noun: str                      # singular, from NOUN_TAXONOMY (a mass noun such as "furniture" has no plural)
    count: int = 1                 # 1: "a car"; n >= 2: "three cars"
    adjective: str | None = None
    determiner: str = "indefinite"  # "indefinite" | "definite" | "any" (only under negation)


@dataclass(frozen=True)
class Event:
    frame: str                     # "transfer" (A sold X to B) | "person" (A hired B) | "thing" (A repaired X)
    verb_index: int                # into TRANSFER_CONVERSES / PERSON_VERBS / THING_VERBS
    agent: str                     # giver in a transfer
    other: str | None = None       # taker in a transfer, object person in a "person" event
    thing: Thing | None = None
    price: str | None = None       # "for 40 dollars", only with sell/buy
    place: str | None = None
    day: str | None = None
    negated: bool = False
    appositive: str | None = None  # "a nurse from Boston", after the agent in the active voice
    control: str | None = None     # "managed to", "tried to": the agent's verb becomes its complement


@dataclass(frozen=True)
class Style:
    voice: str = "active"          # "active" | "passive" | "converse" (transfer, beat, teach)
    dative: bool = False           # "sold Ben the car" rather than "sold the car to Ben"
    front: str | None = None       # adverbial moved to the front: "price" | "place" | "day"
    wrapper: str | None = None     # None | "said" | "said_after" | "according" | "denied"
    source: str = "officials"
    verb_synonym: bool = False
    noun_synonym: bool = False
    adjective_synonym: bool = False
    verb_override: str | None = None  # a near-miss past tense replacing the verb


_PERSON_CONVERSE = {"beat": ("lose to", "lost to"), "teach": ("learn from", "learned from")}


def _thing_phrase(thing: Thing, style: Style) -> str:
    noun = _NOUN_SYNONYM.get(thing.noun, thing.noun) if style.noun_synonym else thing.noun
    adjective = thing.adjective
    if adjective and style.adjective_synonym:
        adjective = _ADJECTIVE_SYNONYM.get(adjective, adjective)
    plural = _PLURAL.get(noun)
    if plural is None or thing.count > 1 or thing.determiner == "any":
        head = noun if plural is None else plural
    else:
        head = noun
    words = f"{adjective} {head}" if adjective else head
    if thing.determiner == "any":
        return f"any {words}"
    if plural is None:  # mass noun: "furniture", "the old furniture"
        return f"the {words}" if thing.determiner == "definite" else words
    if thing.count > 1:
        counted = f"{number_word(thing.count)} {words}"
        return f"the {counted}" if thing.determiner == "definite" else counted
    return f"the {words}" if thing.determiner == "definite" else with_article(words)


def _thing_is_plural(thing: Thing) -> bool:
    if _PLURAL.get(thing.noun) is None:
        return False
    return thing.count > 1 or thing.determiner == "any"


def _verb_forms(event: Event) -> tuple[str, ...]:
    if event.frame == "transfer":
        return lex.TRANSFER_CONVERSES[event.verb_index][0]
    table = lex.PERSON_VERBS if event.frame == "person" else lex.THING_VERBS
    return table[event.verb_index][0]


def _synonym_past(event: Event, past: str) -> str | None:
    if event.frame == "transfer":
        return dict(lex.TRANSFER_SYNONYMS).get(past)
    table = lex.PERSON_VERBS if event.frame == "person" else lex.THING_VERBS
    return table[event.verb_index][1]


def _finite_verb(event: Event, style: Style, base: str, past: str) -> str:
    """The verb group of an active clause: negation, a control verb ("managed to"), a near miss or a synonym."""
    if style.verb_override:
        return style.verb_override
    if event.negated:
        return f"did not {base}"
    if event.control:
        return f"{event.control} {base}"
    if style.verb_synonym:
        return _synonym_past(event, past) or past
    return past


def _core_clause(event: Event, style: Style) -> str:
    forms = _verb_forms(event)
    thing = _thing_phrase(event.thing, style) if event.thing else ""
    agent = f"{event.agent}, {event.appositive}," if event.appositive and style.voice == "active" else event.agent
    if style.voice == "passive":
        be = "were" if event.thing and event.frame != "person" and _thing_is_plural(event.thing) else "was"
        be = f"{be} not" if event.negated else be
        if event.frame == "transfer":
            return f"{thing} {be} {forms[3]} to {event.other} by {event.agent}"
        patient = event.other if event.frame == "person" else thing
        return f"{patient} {be} {forms[3]} by {event.agent}"
    if event.frame == "transfer":
        giver, taker, preposition = lex.TRANSFER_CONVERSES[event.verb_index]
        if style.voice == "converse":
            verb = _finite_verb(event, style, taker[0], taker[2])
            return f"{event.other} {verb} {thing} {preposition} {event.agent}"
        verb = _finite_verb(event, style, giver[0], giver[2])
        if style.dative and not style.verb_override:
            return f"{agent} {verb} {event.other} {thing}"
        return f"{agent} {verb} {thing} to {event.other}"
    if event.frame == "person" and style.voice == "converse":
        base, past = _PERSON_CONVERSE[forms[0]]
        return f"{event.other} {_finite_verb(event, replace(style, verb_synonym=False), base, past)} {event.agent}"
    verb = _finite_verb(event, style, forms[0], forms[2])
    patient = event.other if event.frame == "person" else thing
    return f"{agent} {verb} {patient}"


def _adverbials(event: Event) -> list[tuple[str, str]]:
    found = []
    if event.price:
        found.append(("price", f"for {event.price}"))
    if event.place:
        found.append(("place", f"in {event.place}"))
    if event.day:
        found.append(("day", f"on {event.day}"))
    return found


def _clause(event: Event, style: Style) -> str:
    adverbials = _adverbials(event)
    fronted = [text for key, text in adverbials if key == style.front]
    trailing = " ".join(text for key, text in adverbials if key != style.front)
    clause = _core_clause(event, style) + (f" {trailing}" if trailing else "")
    return f"{fronted[0]}, {clause}" if fronted else clause


def say(event: Event, style: Style) -> str:
    clause = _clause(event, style)
    if style.wrapper == "said":
        return as_sentence(f"{style.source} said that {clause}")
    if style.wrapper == "denied":
        return as_sentence(f"{style.source} denied that {clause}")
    if style.wrapper == "said_after":
        return as_sentence(f"{clause}, {style.source} said")
    if style.wrapper == "according":
        return as_sentence(f"according to {style.source}, {clause}")
    return as_sentence(clause)


def _random_thing(rng: random.Random, nouns: tuple[str, ...] = COUNT_NOUNS) -> Thing:
    count = 1 if rng.random() < 0.6 else rng.randint(2, 7)
    adjective = None
    roll = rng.random()
    if roll < 0.4:
        adjective = rng.choice(THING_ADJECTIVES)
    elif roll < 0.55:
        adjective = rng.choice(lex.COLOURS)
    determiner = "definite" if rng.random() < 0.25 else "indefinite"
    return Thing(rng.choice(nouns), count, adjective, determiner)


def random_event(rng: random.Random, frame: str | None = None, people_only: bool = False,
                  modifier_rate: float = 0.45) -> Event:
    frame = frame or rng.choice(("transfer", "transfer", "person", "thing"))
    agent, other = two_people(rng)
    if not people_only and frame != "transfer" and rng.random() < 0.2:
        agent = rng.choice(lex.ORGANISATIONS)
    table = {"transfer": lex.TRANSFER_CONVERSES, "person": lex.PERSON_VERBS, "thing": lex.THING_VERBS}[frame]
    verb_index = rng.randrange(len(table))
    nouns = COUNT_NOUNS
    if frame == "thing" and verb_index == 0:  # "repaired a poodle" is nonsense: repair only artefacts
        nouns = tuple(n for n in COUNT_NOUNS if ([n] + ancestors(n))[-1] not in ("animal", "fruit"))
    thing = _random_thing(rng, nouns) if frame != "person" else None
    price = rng.choice(lex.PRICES) if frame == "transfer" and verb_index == 0 and rng.random() < 0.4 else None
    place = rng.choice(lex.CITIES) if rng.random() < modifier_rate else None
    day = rng.choice(lex.DAYS) if rng.random() < modifier_rate else None
    return Event(frame, verb_index, agent, other if frame != "thing" else None, thing, price, place, day)


def random_style(rng: random.Random, event: Event) -> Style:
    keys = [key for key, _ in _adverbials(event)]
    return Style(
        voice="passive" if rng.random() < 0.2 else "active",
        dative=event.frame == "transfer" and rng.random() < 0.2,
        front=rng.choice(keys) if keys and rng.random() < 0.3 else None,
        wrapper=rng.choice(("said", "said_after", "according")) if rng.random() < 0.3 else None,
        source=rng.choice(lex.REPORT_SOURCES),
    )


# Meaning-preserving rewrites of a style; each returns None where it does not apply to the event.

def _rewrite_synonym(rng: random.Random, event: Event, style: Style) -> Style | None:
    options = ["verb_synonym"] if _verb_synonym_applies(event, style) else []
    if event.thing and event.thing.noun in _NOUN_SYNONYM:
        options.append("noun_synonym")
    if event.thing and event.thing.adjective in _ADJECTIVE_SYNONYM:
        options.append("adjective_synonym")
    if not options:
        return None
    key = rng.choice(options)
    return replace(style, **{key: not getattr(style, key)})


def _verb_synonym_applies(event: Event, style: Style) -> bool:
    if style.voice == "passive" or event.negated or event.control or style.verb_override:
        return False
    if event.frame == "transfer":
        forms = lex.TRANSFER_CONVERSES[event.verb_index][1 if style.voice == "converse" else 0]
        return _synonym_past(event, forms[2]) is not None
    return style.voice == "active" and _synonym_past(event, "") is not None


def rewrite_voice(rng: random.Random, event: Event, style: Style) -> Style | None:
    if event.control or event.appositive or (event.thing and event.thing.determiner == "any"):
        return None
    return replace(style, voice="active" if style.voice == "passive" else "passive", verb_synonym=False)


def rewrite_converse(rng: random.Random, event: Event, style: Style) -> Style | None:
    has_converse = event.frame == "transfer" or (event.frame == "person" and _verb_forms(event)[0] in _PERSON_CONVERSE)
    if not has_converse or event.control:
        return None
    return replace(style, voice="active" if style.voice == "converse" else "converse", verb_synonym=False)


def _rewrite_dative(rng: random.Random, event: Event, style: Style) -> Style | None:
    if event.frame != "transfer" or style.voice != "active":
        return None
    return replace(style, dative=not style.dative)


def _rewrite_order(rng: random.Random, event: Event, style: Style) -> Style | None:
    keys = [key for key, _ in _adverbials(event)]
    options = [key for key in keys if key != style.front] + ([None] if style.front else [])
    if style.wrapper in ("said", "said_after", "according"):
        options.append("wrapper")
    if not options:
        return None
    choice = rng.choice(options)
    if choice == "wrapper":
        others = tuple(w for w in ("said", "said_after", "according") if w != style.wrapper)
        return replace(style, wrapper=rng.choice(others))
    return replace(style, front=choice)


REWRITES = {"synonym": _rewrite_synonym, "passive": rewrite_voice, "converse": rewrite_converse,
             "dative": _rewrite_dative, "reorder": _rewrite_order}


def rewrite_surface(rng: random.Random, event: Event, style: Style, count: int) -> Style:
    """Applies up to `count` meaning-preserving rewrites (fewer where fewer apply)."""
    names = list(REWRITES)
    rng.shuffle(names)
    for name in names:
        if count == 0:
            break
        rewritten = REWRITES[name](rng, event, style)
        if rewritten is not None:
            style, count = rewritten, count - 1
    return style


def near_miss(rng: random.Random, event: Event, style: Style) -> str:
    """A past tense that changes the meaning (bought -> rented, praised -> criticized): a negative in both tasks."""
    if event.frame == "transfer":
        forms = lex.TRANSFER_CONVERSES[event.verb_index][1 if style.voice == "converse" else 0]
        return rng.choice([b for a, b in lex.TRANSFER_NEAR_MISSES if a == forms[2]])
    table = lex.PERSON_VERBS if event.frame == "person" else lex.THING_VERBS
    return table[event.verb_index][2]
