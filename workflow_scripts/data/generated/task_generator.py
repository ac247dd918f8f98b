"""Four small English classification tasks in GLUE's schema, generated deterministically from a seed.

They mirror the four GLUE tasks of the AUBER paper, so the pipeline can run end to end without downloading GLUE,
while a pretrained model's knowledge of English (synonyms, hypernyms, irregular verbs, world knowledge) still
matters. Sentences are built from templates and the word lists in `lexicon`.

    from workflow_scripts.data.generated.task_generator import generate_task
    splits = generate_task("paraphrase", seed=0, split_sizes={"train": 1000, "validation": 300, "test": 300})
    splits["train"][0]  # {"sentence1": ..., "sentence2": ..., "label": 1, "idx": 0}

| kind            | mirrors | columns                          | labels                                        |
|-----------------|---------|----------------------------------|-----------------------------------------------|
| `paraphrase`    | MRPC    | sentence1, sentence2, label, idx | 1 = equivalent (68%), 0 = not_equivalent      |
| `acceptability` | CoLA    | sentence, label, idx             | 1 = acceptable (70%), 0 = unacceptable        |
| `entailment`    | RTE     | sentence1, sentence2, label, idx | 0 = entailment (50%), 1 = not_entailment      |
| `coreference`   | WNLI    | sentence1, sentence2, label, idx | 1 = entailment (50%), 0 = not_entailment      |

Each example comes from one phenomenon, drawn with the weights in `_PHENOMENA` (easy and hard ones mixed, so a
fine-tuned small model stays well below perfect). `generate_task_annotated` returns the phenomenon with each record.

paraphrase (MRPC): news-style sentences about a transfer ("Anna sold three old trucks to Ben in Denver"), a person
acting on a person ("the museum hired Ben") or a person acting on a thing, with optional price, place, day and a
reporting frame ("the police said that ...").
  equivalent: `synonym` (bought/purchased, car/automobile, big/large), `passive`, `converse` (sold X to B /
    B bought X from A; beat / lost to), `dative` (sold Ben the car / sold the car to Ben), `reorder` (fronted
    adverbial, "X, officials said" / "according to officials, X"), `combined` (two or three of these at once).
  not equivalent: `role_swap` (the two people trade places, often together with a voice change), `number_change`
    (count or price), `place_or_day`, `antonym` (old/new), `negation`, `near_synonym` (bought/rented,
    praised/criticized, beat/lost to), `denial` (said that / denied that). Half of the negatives also get a
    meaning-preserving rewrite, so that word overlap alone does not give the label away.

acceptability (CoLA): acceptable sentences vary subject (name, pronoun, determiner + adjective + noun, with a
prepositional or relative-clause modifier), tense (present, past, perfect, progressive, modal, do-negation) and
verb frame (transitive, intransitive, "put X on Y", be + adjective). Unacceptable ones make one error:
  `agreement` (The teachers likes ...), `agreement_attractor` (The key near the windows are ... : the verb agrees
  with the nearer noun; hard), `determiner_number` (a teachers, these book), `intransitive_object` (Anna arrived the
  box), `missing_argument` (Anna devoured. / Anna put the book.), `participle_form` (has went, did took, will takes),
  `word_order` (Anna the book took. / the box old), `pronoun_case` (Him saw the dog.).
  Acceptable ones include the same constructions done right (agreement across an attractor, "He saw her.").

entailment (RTE): a premise with modifiers, an appositive ("Anna, a nurse from Boston,") or a conjunction, and a
short hypothesis.
  entailment: `hypernym` (poodle -> dog -> animal), `drop_modifier`, `passive_or_converse`, `conjunction`
    (Anna and Ben sold ... -> Ben sold ...), `appositive` (-> Anna is a nurse.), `implicative` (managed to fix ->
    fixed), `downward_monotone` (did not buy any animals -> did not buy any dogs).
  not_entailment: `hyponym` (dog -> poodle), `role_swap`, `negation`, `unsupported_modifier` (adds a colour, city
    or day), `quantity_change`, `non_implicative` (tried to fix -> fixed), `appositive_mismatch`, `disjunction`
    (Anna or Ben ... -> Ben ...), `upward_under_negation` (did not buy any dogs -> did not buy any animals),
    `near_synonym` (bought -> rented).

coreference (WNLI): Winograd schemas. sentence1 has two candidates of the same kind (two women, two men or two
things) and a pronoun; sentence2 repeats the pronoun's clause with one candidate in its place. Each schema has two
twin words that flip the answer ("... because it was too big / small"), so only world knowledge (size, weight,
emotions, cause and effect) resolves the pronoun. Phenomena are `people` and `objects`.

Guarantees: the same (kind, seed, split_sizes) gives identical records in every process (one `random.Random` per
split, seeded from a string; no set or hash order is ever iterated); labels follow the ratios above exactly (up to
rounding); no sentence appears in two splits (for coreference: no sentence1, since short hypotheses such as "The
suitcase was too small." recur, as in WNLI); no record repeats within a split; `idx` counts from 0 in each split.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Callable

from . import lexicon as lex

TASK_KINDS: tuple[str, ...] = ("paraphrase", "acceptability", "entailment", "coreference")

# Draws per example before giving up: a task whose sentence space is nearly used up fails loudly, not slowly.
_MAX_ATTEMPTS_PER_EXAMPLE = 400

# ---------------------------------------------------------------------------------------------------------------
# Small helpers for English
# ---------------------------------------------------------------------------------------------------------------


def _with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _sentence(clause: str) -> str:
    return clause[0].upper() + clause[1:] + "."


def _number_word(count: int) -> str:
    return lex.NUMBER_WORDS[count - 2]


_PARENT = {singular: parent for singular, _, parent in lex.NOUN_TAXONOMY}
_PLURAL = {singular: plural for singular, plural, _ in lex.NOUN_TAXONOMY} | lex.NOUN_SYNONYM_PLURALS
_NOUN_SYNONYM = dict(lex.NOUN_SYNONYMS)
_ADJECTIVE_SYNONYM = dict(lex.ADJECTIVE_SYNONYMS)
_ANTONYM = dict(lex.ADJECTIVE_ANTONYMS) | {b: a for a, b in lex.ADJECTIVE_ANTONYMS}
_THING_ADJECTIVES = tuple(word for pair in lex.ADJECTIVE_ANTONYMS for word in pair)
# Countable nouns that have a parent: these can be replaced by a hypernym (and their parent by them).
_NOUNS_WITH_PARENT = tuple(s for s, p, parent in lex.NOUN_TAXONOMY if p is not None and parent is not None)
_COUNT_NOUNS = tuple(s for s, p, _ in lex.NOUN_TAXONOMY if p is not None)


def _ancestors(noun: str) -> list[str]:
    chain = []
    while _PARENT.get(noun) is not None:
        noun = _PARENT[noun]
        chain.append(noun)
    return chain


def _children(noun: str) -> tuple[str, ...]:
    return tuple(s for s, p, parent in lex.NOUN_TAXONOMY if parent == noun and p is not None)


def _person(rng: random.Random, gender: str | None = None) -> str:
    names = {"f": lex.FEMALE_NAMES, "m": lex.MALE_NAMES}.get(gender or rng.choice("fm"))
    first = rng.choice(names)
    return f"{first} {rng.choice(lex.SURNAMES)}" if rng.random() < 0.4 else first


def _two_people(rng: random.Random) -> tuple[str, str]:
    first = _person(rng)
    second = _person(rng)
    while second.split()[0] == first.split()[0]:
        second = _person(rng)
    return first, second


# ---------------------------------------------------------------------------------------------------------------
# Events: what a paraphrase or entailment sentence says, and how it is said
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Thing:
    noun: str                      # singular, from NOUN_TAXONOMY (a mass noun such as "furniture" has no plural)
    count: int = 1                 # 1: "a car"; n >= 2: "three cars"
    adjective: str | None = None
    determiner: str = "indefinite"  # "indefinite" | "definite" | "any" (only under negation)


@dataclass(frozen=True)
class _Event:
    frame: str                     # "transfer" (A sold X to B) | "person" (A hired B) | "thing" (A repaired X)
    verb_index: int                # into TRANSFER_CONVERSES / PERSON_VERBS / THING_VERBS
    agent: str                     # giver in a transfer
    other: str | None = None       # taker in a transfer, object person in a "person" event
    thing: _Thing | None = None
    price: str | None = None       # "for 40 dollars", only with sell/buy
    place: str | None = None
    day: str | None = None
    negated: bool = False
    appositive: str | None = None  # "a nurse from Boston", after the agent in the active voice
    control: str | None = None     # "managed to", "tried to": the agent's verb becomes its complement


@dataclass(frozen=True)
class _Style:
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


def _thing_phrase(thing: _Thing, style: _Style) -> str:
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
        counted = f"{_number_word(thing.count)} {words}"
        return f"the {counted}" if thing.determiner == "definite" else counted
    return f"the {words}" if thing.determiner == "definite" else _with_article(words)


def _thing_is_plural(thing: _Thing) -> bool:
    if _PLURAL.get(thing.noun) is None:
        return False
    return thing.count > 1 or thing.determiner == "any"


def _verb_forms(event: _Event) -> tuple[str, ...]:
    if event.frame == "transfer":
        return lex.TRANSFER_CONVERSES[event.verb_index][0]
    table = lex.PERSON_VERBS if event.frame == "person" else lex.THING_VERBS
    return table[event.verb_index][0]


def _synonym_past(event: _Event, past: str) -> str | None:
    if event.frame == "transfer":
        return dict(lex.TRANSFER_SYNONYMS).get(past)
    table = lex.PERSON_VERBS if event.frame == "person" else lex.THING_VERBS
    return table[event.verb_index][1]


def _finite_verb(event: _Event, style: _Style, base: str, past: str) -> str:
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


def _core_clause(event: _Event, style: _Style) -> str:
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


def _adverbials(event: _Event) -> list[tuple[str, str]]:
    found = []
    if event.price:
        found.append(("price", f"for {event.price}"))
    if event.place:
        found.append(("place", f"in {event.place}"))
    if event.day:
        found.append(("day", f"on {event.day}"))
    return found


def _clause(event: _Event, style: _Style) -> str:
    adverbials = _adverbials(event)
    fronted = [text for key, text in adverbials if key == style.front]
    trailing = " ".join(text for key, text in adverbials if key != style.front)
    clause = _core_clause(event, style) + (f" {trailing}" if trailing else "")
    return f"{fronted[0]}, {clause}" if fronted else clause


def _say(event: _Event, style: _Style) -> str:
    clause = _clause(event, style)
    if style.wrapper == "said":
        return _sentence(f"{style.source} said that {clause}")
    if style.wrapper == "denied":
        return _sentence(f"{style.source} denied that {clause}")
    if style.wrapper == "said_after":
        return _sentence(f"{clause}, {style.source} said")
    if style.wrapper == "according":
        return _sentence(f"according to {style.source}, {clause}")
    return _sentence(clause)


def _random_thing(rng: random.Random, nouns: tuple[str, ...] = _COUNT_NOUNS) -> _Thing:
    count = 1 if rng.random() < 0.6 else rng.randint(2, 7)
    adjective = None
    roll = rng.random()
    if roll < 0.4:
        adjective = rng.choice(_THING_ADJECTIVES)
    elif roll < 0.55:
        adjective = rng.choice(lex.COLOURS)
    determiner = "definite" if rng.random() < 0.25 else "indefinite"
    return _Thing(rng.choice(nouns), count, adjective, determiner)


def _random_event(rng: random.Random, frame: str | None = None, people_only: bool = False,
                  modifier_rate: float = 0.45) -> _Event:
    frame = frame or rng.choice(("transfer", "transfer", "person", "thing"))
    agent, other = _two_people(rng)
    if not people_only and frame != "transfer" and rng.random() < 0.2:
        agent = rng.choice(lex.ORGANISATIONS)
    table = {"transfer": lex.TRANSFER_CONVERSES, "person": lex.PERSON_VERBS, "thing": lex.THING_VERBS}[frame]
    verb_index = rng.randrange(len(table))
    nouns = _COUNT_NOUNS
    if frame == "thing" and verb_index == 0:  # "repaired a poodle" is nonsense: repair only artefacts
        nouns = tuple(n for n in _COUNT_NOUNS if ([n] + _ancestors(n))[-1] not in ("animal", "fruit"))
    thing = _random_thing(rng, nouns) if frame != "person" else None
    price = rng.choice(lex.PRICES) if frame == "transfer" and verb_index == 0 and rng.random() < 0.4 else None
    place = rng.choice(lex.CITIES) if rng.random() < modifier_rate else None
    day = rng.choice(lex.DAYS) if rng.random() < modifier_rate else None
    return _Event(frame, verb_index, agent, other if frame != "thing" else None, thing, price, place, day)


def _random_style(rng: random.Random, event: _Event) -> _Style:
    keys = [key for key, _ in _adverbials(event)]
    return _Style(
        voice="passive" if rng.random() < 0.2 else "active",
        dative=event.frame == "transfer" and rng.random() < 0.2,
        front=rng.choice(keys) if keys and rng.random() < 0.3 else None,
        wrapper=rng.choice(("said", "said_after", "according")) if rng.random() < 0.3 else None,
        source=rng.choice(lex.REPORT_SOURCES),
    )


# Meaning-preserving rewrites of a style; each returns None where it does not apply to the event.

def _rewrite_synonym(rng: random.Random, event: _Event, style: _Style) -> _Style | None:
    options = ["verb_synonym"] if _verb_synonym_applies(event, style) else []
    if event.thing and event.thing.noun in _NOUN_SYNONYM:
        options.append("noun_synonym")
    if event.thing and event.thing.adjective in _ADJECTIVE_SYNONYM:
        options.append("adjective_synonym")
    if not options:
        return None
    key = rng.choice(options)
    return replace(style, **{key: not getattr(style, key)})


def _verb_synonym_applies(event: _Event, style: _Style) -> bool:
    if style.voice == "passive" or event.negated or event.control or style.verb_override:
        return False
    if event.frame == "transfer":
        forms = lex.TRANSFER_CONVERSES[event.verb_index][1 if style.voice == "converse" else 0]
        return _synonym_past(event, forms[2]) is not None
    return style.voice == "active" and _synonym_past(event, "") is not None


def _rewrite_voice(rng: random.Random, event: _Event, style: _Style) -> _Style | None:
    if event.control or event.appositive or (event.thing and event.thing.determiner == "any"):
        return None
    return replace(style, voice="active" if style.voice == "passive" else "passive", verb_synonym=False)


def _rewrite_converse(rng: random.Random, event: _Event, style: _Style) -> _Style | None:
    has_converse = event.frame == "transfer" or (event.frame == "person" and _verb_forms(event)[0] in _PERSON_CONVERSE)
    if not has_converse or event.control:
        return None
    return replace(style, voice="active" if style.voice == "converse" else "converse", verb_synonym=False)


def _rewrite_dative(rng: random.Random, event: _Event, style: _Style) -> _Style | None:
    if event.frame != "transfer" or style.voice != "active":
        return None
    return replace(style, dative=not style.dative)


def _rewrite_order(rng: random.Random, event: _Event, style: _Style) -> _Style | None:
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


_REWRITES = {"synonym": _rewrite_synonym, "passive": _rewrite_voice, "converse": _rewrite_converse,
             "dative": _rewrite_dative, "reorder": _rewrite_order}


def _rewrite_surface(rng: random.Random, event: _Event, style: _Style, count: int) -> _Style:
    """Applies up to `count` meaning-preserving rewrites (fewer where fewer apply)."""
    names = list(_REWRITES)
    rng.shuffle(names)
    for name in names:
        if count == 0:
            break
        rewritten = _REWRITES[name](rng, event, style)
        if rewritten is not None:
            style, count = rewritten, count - 1
    return style


# ---------------------------------------------------------------------------------------------------------------
# paraphrase (MRPC)
# ---------------------------------------------------------------------------------------------------------------


def _paraphrase_positive(name: str) -> Callable[[random.Random], tuple[str, str] | None]:
    def build(rng: random.Random) -> tuple[str, str] | None:
        event = _random_event(rng, frame="transfer" if name in ("dative", "converse") and rng.random() < 0.8 else None)
        style = _random_style(rng, event)
        if name == "combined":
            other_style = _rewrite_surface(rng, event, style, rng.choice((2, 3)))
        else:
            other_style = _REWRITES[name](rng, event, style)
        if other_style is None:
            return None
        return _say(event, style), _say(event, other_style)
    return build


def _perturb_for_paraphrase(rng: random.Random, name: str, event: _Event, style: _Style
                            ) -> tuple[_Event, _Style] | None:
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
        return event, replace(style, verb_override=_near_miss(rng, event, style))
    if name == "denial":
        return event, replace(style, wrapper="denied")
    raise AssertionError(name)


def _near_miss(rng: random.Random, event: _Event, style: _Style) -> str:
    if event.frame == "transfer":
        forms = lex.TRANSFER_CONVERSES[event.verb_index][1 if style.voice == "converse" else 0]
        return rng.choice([b for a, b in lex.TRANSFER_NEAR_MISSES if a == forms[2]])
    table = lex.PERSON_VERBS if event.frame == "person" else lex.THING_VERBS
    return table[event.verb_index][2]


def _paraphrase_negative(name: str) -> Callable[[random.Random], tuple[str, str] | None]:
    def build(rng: random.Random) -> tuple[str, str] | None:
        frames = _NEGATIVE_FRAMES.get(name)
        event = _random_event(rng, frame=rng.choice(frames) if frames else None, people_only=name == "role_swap")
        if name == "number_change":
            event = replace(event, thing=replace(event.thing, determiner="indefinite"))
        if name == "antonym":
            event = replace(event, thing=replace(event.thing, adjective=rng.choice(_THING_ADJECTIVES)))
        if name == "place_or_day" and not (event.place or event.day):
            event = replace(event, place=rng.choice(lex.CITIES))
        style = _random_style(rng, event)
        if name == "denial":
            style = replace(style, wrapper="said")
        if name == "near_synonym":
            converse = style.voice == "converse" and event.frame == "transfer"
            style = replace(style, voice="converse" if converse else "active", dative=False)
        changed_event, changed_style = _perturb_for_paraphrase(rng, name, event, style)
        if rng.random() < 0.5 and name not in ("near_synonym", "denial"):
            changed_style = _rewrite_surface(rng, changed_event, changed_style, rng.choice((1, 2)))
        return _say(event, style), _say(changed_event, changed_style)
    return build


# Frames an edit needs: a role swap needs two people, a number or an antonym needs a thing.
_NEGATIVE_FRAMES = {"role_swap": ("transfer", "person"), "number_change": ("transfer", "thing"),
                    "antonym": ("transfer", "thing")}


# ---------------------------------------------------------------------------------------------------------------
# entailment (RTE)
# ---------------------------------------------------------------------------------------------------------------


def _premise(rng: random.Random, frame: str | None = None, people_only: bool = False) -> _Event:
    """A premise event with more modifiers than a hypothesis usually has."""
    event = _random_event(rng, frame=frame, people_only=people_only, modifier_rate=0.6)
    if rng.random() < 0.3 and not event.agent.startswith("the "):
        profession = rng.choice(lex.PROFESSIONS)[0]
        event = replace(event, appositive=f"{_with_article(profession)} from {rng.choice(lex.CITIES)}")
    return event


def _hypothesis_of(rng: random.Random, premise: _Event) -> _Event:
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


def _plain_style(rng: random.Random, event: _Event) -> _Style:
    return _Style(voice="passive" if rng.random() < 0.15 and not event.control else "active",
                  dative=event.frame == "transfer" and rng.random() < 0.15)


def _entail_pair(rng: random.Random, premise: _Event, hypothesis: _Event,
                 hypothesis_style: _Style | None = None) -> tuple[str, str]:
    premise_style = _plain_style(rng, premise)
    if premise.appositive or premise.control:
        premise_style = replace(premise_style, voice="active")
    return _say(premise, premise_style), _say(hypothesis, hypothesis_style or _plain_style(rng, hypothesis))


def _entailment_hypernym(rng: random.Random) -> tuple[str, str]:
    premise = _premise(rng, frame=rng.choice(("transfer", "thing")))
    premise = replace(premise, thing=replace(premise.thing, noun=rng.choice(_NOUNS_WITH_PARENT)))
    hypothesis = _hypothesis_of(rng, premise)
    general = rng.choice(_ancestors(premise.thing.noun))
    return _entail_pair(rng, premise, replace(hypothesis, thing=replace(hypothesis.thing, noun=general)))


def _entailment_hyponym(rng: random.Random) -> tuple[str, str] | None:
    premise = _premise(rng, frame=rng.choice(("transfer", "thing")))
    parents = tuple(s for s in _COUNT_NOUNS if _children(s))
    premise = replace(premise, thing=replace(premise.thing, noun=rng.choice(parents)))
    hypothesis = _hypothesis_of(rng, premise)
    specific = rng.choice(_children(premise.thing.noun))
    return _entail_pair(rng, premise, replace(hypothesis, thing=replace(hypothesis.thing, noun=specific)))


def _entailment_drop_modifier(rng: random.Random) -> tuple[str, str] | None:
    premise = _premise(rng)
    hypothesis = _hypothesis_of(rng, premise)
    return _entail_pair(rng, premise, hypothesis)


def _entailment_rewrite(rng: random.Random) -> tuple[str, str] | None:
    premise = replace(_premise(rng), appositive=None)
    hypothesis = _hypothesis_of(rng, premise)
    style = _plain_style(rng, hypothesis)
    rewrite = _rewrite_converse if rng.random() < 0.5 else _rewrite_voice
    rewritten = rewrite(rng, hypothesis, style) or _rewrite_voice(rng, hypothesis, style)
    return _entail_pair(rng, premise, hypothesis, rewritten)


def _entailment_role_swap(rng: random.Random) -> tuple[str, str] | None:
    premise = _premise(rng, frame=rng.choice(("transfer", "person")), people_only=True)
    hypothesis = _hypothesis_of(rng, premise)
    swapped = replace(hypothesis, agent=hypothesis.other, other=hypothesis.agent)
    style = _plain_style(rng, swapped)
    if rng.random() < 0.4:
        style = _rewrite_converse(rng, swapped, style) or _rewrite_voice(rng, swapped, style)
    return _entail_pair(rng, premise, swapped, style)


def _entailment_negation(rng: random.Random) -> tuple[str, str] | None:
    premise = _premise(rng)
    hypothesis = replace(_hypothesis_of(rng, premise), negated=True)
    if rng.random() < 0.3:  # the negation is in the premise instead
        premise, hypothesis = replace(premise, negated=True, appositive=None), replace(hypothesis, negated=False)
    return _entail_pair(rng, premise, hypothesis)


def _entailment_unsupported_modifier(rng: random.Random) -> tuple[str, str] | None:
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


def _entailment_quantity(rng: random.Random) -> tuple[str, str] | None:
    premise = _premise(rng, frame=rng.choice(("transfer", "thing")))
    premise = replace(premise, thing=replace(premise.thing, determiner="indefinite"))
    hypothesis = _hypothesis_of(rng, premise)
    larger = rng.randint(premise.thing.count + 1, min(premise.thing.count + 4, 12))
    return _entail_pair(rng, premise, replace(hypothesis, thing=replace(hypothesis.thing, count=larger)))


def _entailment_implicative(entailed: bool) -> Callable[[random.Random], tuple[str, str]]:
    def build(rng: random.Random) -> tuple[str, str]:
        control = rng.choice(lex.SUCCESS_VERBS if entailed else lex.ATTEMPT_VERBS)
        premise = replace(_premise(rng, frame=rng.choice(("transfer", "person", "thing"))), control=control)
        return _entail_pair(rng, premise, replace(_hypothesis_of(rng, premise), control=None))
    return build


def _entailment_appositive(entailed: bool) -> Callable[[random.Random], tuple[str, str]]:
    def build(rng: random.Random) -> tuple[str, str]:
        premise = _premise(rng, people_only=True)
        profession, city = rng.choice(lex.PROFESSIONS)[0], rng.choice(lex.CITIES)
        premise = replace(premise, appositive=f"{_with_article(profession)} from {city}")
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
        claim = f"is {_with_article(profession)}" if rng.random() < 0.5 else f"is from {city}"
        return _say(premise, _Style()), _sentence(f"{subject} {claim}")
    return build


def _entailment_conjunction(entailed: bool) -> Callable[[random.Random], tuple[str, str]]:
    def build(rng: random.Random) -> tuple[str, str]:
        premise = _premise(rng, people_only=True)
        first, second = premise.agent, _person(rng)
        if second.split()[0] in (first.split()[0], (premise.other or "-").split()[0]):
            return None
        joined = f"{first} and {second}" if entailed else f"either {first} or {second}"
        premise = replace(premise, agent=joined, appositive=None)
        hypothesis = replace(_hypothesis_of(rng, premise), agent=rng.choice((first, second)))
        return _entail_pair(rng, premise, hypothesis)
    return build


def _entailment_monotone(entailed: bool) -> Callable[[random.Random], tuple[str, str]]:
    """Under negation a general noun entails a specific one: did not buy any animals -> did not buy any dogs."""
    def build(rng: random.Random) -> tuple[str, str]:
        specific = rng.choice(_NOUNS_WITH_PARENT)
        general = rng.choice(_ancestors(specific))
        premise_noun, hypothesis_noun = (general, specific) if entailed else (specific, general)
        event = _random_event(rng, frame=rng.choice(("transfer", "thing")), modifier_rate=0.0)
        premise = replace(event, negated=True, thing=_Thing(premise_noun, determiner="any"))
        hypothesis = replace(premise, thing=_Thing(hypothesis_noun, determiner="any"))
        return _say(premise, _Style()), _say(hypothesis, _Style())
    return build


def _entailment_near_synonym(rng: random.Random) -> tuple[str, str]:
    premise = _premise(rng)
    hypothesis = _hypothesis_of(rng, premise)
    style = _Style()
    return _entail_pair(rng, premise, hypothesis, replace(style, verb_override=_near_miss(rng, hypothesis, style)))


# ---------------------------------------------------------------------------------------------------------------
# acceptability (CoLA)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _NounPhrase:
    text: str
    plural: bool


_SINGULAR_DETERMINERS = ("the", "the", "a", "this", "that", "every")
_PLURAL_DETERMINERS = ("the", "the", "these", "those", "some", "many", "several", "two", "three")
_PRONOUNS = (("he", "him", False), ("she", "her", False), ("they", "them", True), ("we", "us", True))


def _noun_phrase(rng: random.Random, noun: tuple[str, str], plural: bool, adjectives: tuple[str, ...],
                 adjective_rate: float = 0.3, wrong_determiner: bool = False) -> _NounPhrase:
    """"the old teacher", "these keys"; wrong_determiner picks a determiner of the other number ("a teachers")."""
    determiners = _PLURAL_DETERMINERS if plural != wrong_determiner else _SINGULAR_DETERMINERS
    if wrong_determiner:
        determiners = tuple(d for d in determiners if d != "the")
    determiner = rng.choice(determiners)
    adjective = rng.choice(adjectives) if rng.random() < adjective_rate else None
    head = noun[1] if plural else noun[0]
    words = f"{adjective} {head}" if adjective else head
    if determiner == "a":
        return _NounPhrase(_with_article(words), plural)
    return _NounPhrase(f"{determiner} {words}", plural)


def _subject_modifier(rng: random.Random, head_plural: bool, attractor: bool) -> str:
    """A prepositional phrase or relative clause after the subject; an attractor has the other number."""
    local_plural = (not head_plural) if attractor else rng.random() < 0.5
    if rng.random() < 0.55:
        preposition, singular, plural = rng.choice(lex.PERSON_MODIFIER_PLACES)
        return f"{preposition} the {plural if local_plural else singular}"
    inner = _noun_phrase(rng, rng.choice(lex.PERSON_NOUNS), local_plural, (), adjective_rate=0.0)
    forms = rng.choice(lex.RELATIVE_CLAUSE_VERBS)
    verb = forms[2] if rng.random() < 0.5 else (forms[0] if inner.plural else forms[1])
    return f"{'who' if rng.random() < 0.6 else 'that'} {inner.text} {verb}"


def _acceptability_subject(rng: random.Random, plural: bool, modifier: str) -> tuple[str, bool]:
    """The subject: a name, a pronoun or a noun phrase; modifier is "none", "free" or "attractor"."""
    if modifier == "none" and rng.random() < 0.35:
        if rng.random() < 0.5:
            return _person(rng) if not plural else f"{_person(rng)} and {_person(rng)}", plural
        subject = rng.choice([p for p in _PRONOUNS if p[2] == plural])[0]
        return subject, plural
    phrase = _noun_phrase(rng, rng.choice(lex.PERSON_NOUNS), plural, lex.PERSON_ADJECTIVES)
    if modifier == "none":
        return phrase.text, plural
    return f"{phrase.text} {_subject_modifier(rng, plural, attractor=modifier == 'attractor')}", plural


def _agreeing(forms_or_pair: tuple[str, str], plural: bool, wrong: bool) -> str:
    """Picks the singular or plural form of ("is", "are"), ("has", "have") or (3sg, base)."""
    return forms_or_pair[1] if plural != wrong else forms_or_pair[0]


def _verb_group(rng: random.Random, forms: tuple[str, ...], plural: bool, tense: str, error: str | None) -> str:
    """Tensed verb words for a subject of the given number; error is None, "agreement" or "participle_form"."""
    wrong_agreement = error == "agreement"
    if tense == "present":
        return _agreeing((forms[1], forms[0]), plural, wrong_agreement)
    if tense == "past":
        return forms[2]
    if tense == "perfect":
        participle = forms[2] if error == "participle_form" else forms[3]
        return f"{_agreeing(('has', 'have'), plural, wrong_agreement)} {participle}"
    if tense == "progressive":
        participle = forms[0] if error == "participle_form" else forms[4]
        return f"{_agreeing(('is', 'are'), plural, wrong_agreement)} {participle}"
    if tense == "past_progressive":
        return f"{_agreeing(('was', 'were'), plural, wrong_agreement)} {forms[4]}"
    if tense == "modal":
        verb = rng.choice((forms[1], forms[2])) if error == "participle_form" else forms[0]
        return f"{rng.choice(('will', 'can', 'should', 'might', 'must'))} {verb}"
    if tense == "do_negation":
        verb = forms[2] if error == "participle_form" else forms[0]
        return f"{_agreeing(('does', 'do'), plural, wrong_agreement)} not {verb}"
    if tense == "did_negation":
        verb = forms[2] if error == "participle_form" else forms[0]
        return f"did not {verb}"
    raise AssertionError(tense)


_AGREEING_TENSES = ("present", "present", "perfect", "progressive", "past_progressive", "do_negation")
_ALL_TENSES = _AGREEING_TENSES + ("past", "past", "modal", "did_negation")


def _tense_for(rng: random.Random, error: str | None, forms: tuple[str, ...]) -> str:
    if error in ("agreement", "agreement_attractor"):
        return rng.choice(_AGREEING_TENSES)
    if error == "pronoun_case":  # tenses without agreement, so that the case is the only error
        return rng.choice(("past", "modal", "did_negation"))
    if error == "participle_form":
        options = ["modal", "did_negation", "do_negation"] + ["perfect"] * 3 * (forms[2] != forms[3])
        return rng.choice(options + ["progressive"] * (forms[0] not in lex.STATIVE_VERBS))
    if forms[0] in lex.STATIVE_VERBS and error in ("agreement", "agreement_attractor"):
        return rng.choice(("present", "perfect", "do_negation"))
    if forms[0] in lex.STATIVE_VERBS:  # "is needing" is odd: no progressive for states
        return rng.choice(tuple(t for t in _ALL_TENSES if "progressive" not in t))
    return rng.choice(_ALL_TENSES)


def _object_phrase(rng: random.Random, object_class: str, wrong_determiner: bool = False) -> str:
    if not wrong_determiner and rng.random() < 0.15:  # an object pronoun, the contrast to pronoun_case errors
        return rng.choice(_PRONOUNS)[1] if object_class == "person" else rng.choice(("it", "them"))
    if object_class == "person" and rng.random() < 0.25 and not wrong_determiner:
        return _person(rng)
    noun = rng.choice(lex.ACCEPTABILITY_OBJECTS[object_class])
    adjectives = lex.PERSON_ADJECTIVES if object_class == "person" else lex.THING_ADJECTIVES
    return _noun_phrase(rng, noun, rng.random() < 0.4, adjectives, wrong_determiner=wrong_determiner).text


def _acceptable_or_not(rng: random.Random, error: str | None) -> str | None:
    """One sentence; error names the single mistake it makes (None: a grammatical sentence)."""
    plural = rng.random() < 0.45
    modifier = "none"
    if error == "agreement_attractor" or (error is None and rng.random() < 0.3):
        modifier = "attractor"
    elif rng.random() < 0.25 and error != "pronoun_case":
        modifier = "free"
    subject, plural = _acceptability_subject(rng, plural, modifier)
    frame = rng.choice(("transitive", "transitive", "transitive", "obligatory", "intransitive", "put", "adjective"))
    if error in ("intransitive_object",):
        frame = "intransitive"
    elif error == "missing_argument":
        frame = rng.choice(("obligatory", "put"))
    elif error in ("participle_form", "word_order", "pronoun_case", "determiner_number"):
        frame = "transitive"
    agreement_error = "agreement" if error in ("agreement", "agreement_attractor") else None

    if frame == "adjective":
        adjective = rng.choice(("tired", "happy", "late", "angry", "busy", "hungry", "asleep", "ready", "nervous"))
        be = _agreeing(("is", "are"), plural, bool(agreement_error)) if rng.random() < 0.5 \
            else _agreeing(("was", "were"), plural, bool(agreement_error))
        return _sentence(f"{subject} {be} {adjective}")
    if frame == "intransitive":
        forms = rng.choice(lex.INTRANSITIVE_VERBS)
        tense = _tense_for(rng, agreement_error, forms)
        verb = _verb_group(rng, forms, plural, tense, agreement_error)
        if error == "intransitive_object":
            return _sentence(f"{subject} {verb} {_object_phrase(rng, 'thing')}")
        return _sentence(f"{subject} {verb} {rng.choice(lex.INTRANSITIVE_ENDINGS)}")
    if frame == "put":
        forms = ("put", "puts", "put", "put", "putting")
        tense = _tense_for(rng, agreement_error, forms)
        verb = _verb_group(rng, forms, plural, tense, agreement_error)
        preposition, place = rng.choice(lex.LOCATIONS)
        thing = _object_phrase(rng, "thing")
        if error == "missing_argument":
            return _sentence(rng.choice((f"{subject} {verb} {thing}", f"{subject} {verb} {preposition} the {place}")))
        return _sentence(f"{subject} {verb} {thing} {preposition} the {place}")
    if frame == "obligatory":
        forms, object_class = rng.choice(lex.OBLIGATORY_OBJECT_VERBS)
    else:
        forms, object_class = rng.choice(lex.IRREGULAR_TRANSITIVE_VERBS)
    tense = _tense_for(rng, error, forms)
    verb = _verb_group(rng, forms, plural, tense, agreement_error or (error if error == "participle_form" else None))
    if error == "missing_argument":
        ending = rng.choice(("", " yesterday", " carefully", " again", " in the morning"))
        return _sentence(f"{subject} {verb}{ending}")
    obj = _object_phrase(rng, object_class, wrong_determiner=error == "determiner_number")
    if error == "word_order":
        return _scrambled(rng, subject, verb, obj)
    if error == "pronoun_case":
        return _wrong_case(rng, verb, obj)
    return _sentence(f"{subject} {verb} {obj}")


def _scrambled(rng: random.Random, subject: str, verb: str, obj: str) -> str | None:
    """One local word-order error: object before the verb, or a determiner/adjective after its noun."""
    words = obj.split()
    roll = rng.random()
    if roll < 0.4 or len(words) < 2:
        return _sentence(f"{subject} {obj} {verb}")
    if roll < 0.7 and len(words) == 3 and words[0] in ("the", "a", "an", "these", "those", "this", "that"):
        return _sentence(f"{subject} {verb} {words[0]} {words[2]} {words[1]}")
    return _sentence(f"{subject} {verb} {' '.join(words[1:])} {words[0]}")


def _wrong_case(rng: random.Random, verb: str, obj: str) -> str:
    """An object pronoun as subject ("Him saw the dog.") or a subject pronoun as object ("Anna saw she.")."""
    subject_form, object_form, _ = rng.choice(_PRONOUNS)
    if rng.random() < 0.5:
        return _sentence(f"{object_form} {verb} {obj}")
    return _sentence(f"{_person(rng)} {verb} {subject_form}")


def _acceptability(error: str | None) -> Callable[[random.Random], str | None]:
    def build(rng: random.Random) -> tuple[str] | None:
        sentence = _acceptable_or_not(rng, error)
        return None if sentence is None else (sentence,)
    return build


# ---------------------------------------------------------------------------------------------------------------
# coreference (WNLI)
# ---------------------------------------------------------------------------------------------------------------

# (premise, hypothesis, twin word when the pronoun means {a}, twin word when it means {b}). {p} is the pronoun.
_PEOPLE_SCHEMAS = (
    ("{a} could not lift {b} because {p} was so {w}.", "{c} was so {w}.", "weak", "heavy"),
    ("{a} asked {b} for help because {p} {w}.", "{c} {w}.", "did not know the answer", "knew the answer"),
    ("{a} paid {b} a lot of money because {p} {w}.", "{c} {w}.", "was very generous", "had done excellent work"),
    ("{a} yelled at {b} because {p} was {w}.", "{c} was {w}.", "furious", "late again"),
    ("{a} visited {b} in the hospital because {p} was {w}.", "{c} was {w}.", "worried", "sick"),
    ("{a} beat {b} in the race because {p} was much {w}.", "{c} was much {w}.", "faster", "slower"),
    ("{a} lent {b} an umbrella because {p} {w}.", "{c} {w}.", "had an extra one", "had forgotten one"),
    ("{a} tutored {b} in math because {p} was {w}.", "{c} was {w}.", "good at it", "struggling with it"),
    ("{a} apologized to {b} because {p} had {w}.", "{c} had {w}.", "behaved badly", "been offended"),
    ("{a} envied {b} because {p} had {w}.", "{c} had {w}.", "never been lucky", "just won the lottery"),
    ("{a} stopped {b} from crossing the street because {p} {w}.", "{c} {w}.", "saw the truck coming",
     "did not see the truck"),
    ("{a} could not see {b} on the stage because {p} was {w}.", "{c} was {w}.", "sitting in the back row",
     "hidden behind the curtain"),
    ("{a} told {b} a joke, but {p} {w}.", "{c} {w}.", "told it badly", "did not laugh"),
    ("{a} trusted {b} because {p} was {w}.", "{c} was {w}.", "very naive", "always honest"),
    ("{a} hired {b} because {p} {w}.", "{c} {w}.", "needed an assistant", "was very experienced"),
    ("{a} interviewed {b} because {p} {w}.", "{c} {w}.", "was writing an article", "had won an award"),
    ("{a} made dinner for {b} because {p} {w}.", "{c} {w}.", "loved cooking", "was hungry"),
    ("{a} called {b} to apologize because {p} had {w}.", "{c} had {w}.", "forgotten the meeting",
     "been waiting for an hour"),
    ("{a} woke {b} up early because {p} {w}.", "{c} {w}.", "needed a ride to work", "had overslept again"),
    ("{a} comforted {b} because {p} {w}.", "{c} {w}.", "was a kind person", "was crying"),
)
# Schemas about two things: ({x} pool, {y} pool, premise, hypothesis, twin for {x}, twin for {y}).
_SMALL_ITEMS = ("trophy", "guitar", "laptop", "painting", "lamp", "vase", "clock", "drum", "helmet", "toaster")
_CONTAINERS = ("suitcase", "box", "bag", "backpack", "drawer", "basket", "crate", "cupboard")
_FURNITURE = ("sofa", "piano", "bookcase", "desk", "bed", "wardrobe", "fridge", "table")
_OPENINGS = ("door", "doorway", "gate", "window", "hallway", "elevator")
_FRAGILE = ("glass", "plate", "vase", "mirror", "cup", "bowl", "light bulb", "jar")
_HARD_SURFACES = ("stone floor", "pavement", "tile floor", "concrete step", "marble counter", "rock")
_POURERS = ("bottle", "jug", "pitcher", "kettle", "bucket", "flask")
_RECEIVERS = ("glass", "cup", "bowl", "vase", "mug", "pot")
_PREDATORS = ("cat", "fox", "hawk", "owl", "dog", "snake")
_PREY = ("mouse", "rabbit", "squirrel", "lizard", "chicken", "frog")
_OBJECT_SCHEMAS = (
    (_SMALL_ITEMS, _CONTAINERS, "The {x} did not fit in the {y} because it was too {w}.", "The {c} was too {w}.",
     "big", "small"),
    (_CONTAINERS, _SMALL_ITEMS, "The {x} could not hold the {y} because it was too {w}.", "The {c} was too {w}.",
     "small", "big"),
    (_FURNITURE, _OPENINGS, "The {x} would not go through the {y} because it was too {w}.",
     "The {c} was too {w}.", "wide", "narrow"),
    (_FRAGILE, _HARD_SURFACES, "The {x} broke when it hit the {y} because it was so {w}.", "The {c} was so {w}.",
     "fragile", "hard"),
    (_POURERS, _RECEIVERS, "{name} poured water from the {x} into the {y} until it was {w}.", "The {c} was {w}.",
     "empty", "full"),
    (_PREDATORS, _PREY, "The {x} could not catch the {y} because it was too {w}.", "The {c} was too {w}.",
     "slow", "fast"),
    (_PREY, _PREDATORS, "The {x} ran away from the {y} because it was {w}.", "The {c} was {w}.",
     "frightened", "dangerous"),
    (_SMALL_ITEMS, _CONTAINERS, "{name} took the {x} out of the {y} because it was {w}.", "The {c} was {w}.",
     "needed", "being cleaned"),
    (_FURNITURE, _SMALL_ITEMS, "The {x} was much heavier than the {y}, so it was {w} to carry.",
     "The {c} was {w} to carry.", "harder", "easier"),
)


def _coreference_people(rng: random.Random, correct: bool) -> tuple[str, str]:
    premise, hypothesis, word_a, word_b = rng.choice(_PEOPLE_SCHEMAS)
    gender = rng.choice("fm")
    a = rng.choice({"f": lex.FEMALE_NAMES, "m": lex.MALE_NAMES}[gender])
    b = rng.choice([n for n in {"f": lex.FEMALE_NAMES, "m": lex.MALE_NAMES}[gender] if n != a])
    referent_is_a = rng.random() < 0.5
    word = word_a if referent_is_a else word_b
    candidate = (a if referent_is_a else b) if correct else (b if referent_is_a else a)
    pronoun = "she" if gender == "f" else "he"
    return premise.format(a=a, b=b, p=pronoun, w=word), hypothesis.format(c=candidate, w=word)


def _coreference_objects(rng: random.Random, correct: bool) -> tuple[str, str]:
    pool_x, pool_y, premise, hypothesis, word_x, word_y = rng.choice(_OBJECT_SCHEMAS)
    x = rng.choice(pool_x)
    y = rng.choice([item for item in pool_y if item != x])
    referent_is_x = rng.random() < 0.5
    word = word_x if referent_is_x else word_y
    candidate = (x if referent_is_x else y) if correct else (y if referent_is_x else x)
    name = rng.choice(lex.FEMALE_NAMES + lex.MALE_NAMES)
    return premise.format(x=x, y=y, w=word, name=name), hypothesis.format(c=candidate, w=word)


def _coreference(kind: str, correct: bool) -> Callable[[random.Random], tuple[str, str]]:
    build = _coreference_people if kind == "people" else _coreference_objects
    return lambda rng: build(rng, correct)


# ---------------------------------------------------------------------------------------------------------------
# The tasks: columns, label convention, and phenomena with their weights
# ---------------------------------------------------------------------------------------------------------------

Builder = Callable[[random.Random], "tuple[str, ...] | None"]


@dataclass(frozen=True)
class _TaskSpec:
    columns: tuple[str, ...]   # text columns, in GLUE's order
    holds_label: int           # the label when the relation holds (equivalent / acceptable / entailed / correct)
    holds_share: float         # share of examples where it holds, as in the GLUE task
    max_total: int             # the most examples over all splits that stay clear of duplicates
    holds: tuple[tuple[str, float, Builder], ...]
    fails: tuple[tuple[str, float, Builder], ...]
    unique_column: str | None = None  # for cross-split checks, only this column (None: every text column)


_PHENOMENA: dict[str, _TaskSpec] = {
    "paraphrase": _TaskSpec(
        columns=("sentence1", "sentence2"), holds_label=1, holds_share=0.68, max_total=60_000,
        holds=(
            ("synonym", 2.0, _paraphrase_positive("synonym")),
            ("passive", 1.5, _paraphrase_positive("passive")),
            ("converse", 1.5, _paraphrase_positive("converse")),
            ("dative", 0.7, _paraphrase_positive("dative")),
            ("reorder", 1.0, _paraphrase_positive("reorder")),
            ("combined", 2.0, _paraphrase_positive("combined")),
        ),
        fails=(
            ("role_swap", 2.0, _paraphrase_negative("role_swap")),
            ("number_change", 1.0, _paraphrase_negative("number_change")),
            ("place_or_day", 1.0, _paraphrase_negative("place_or_day")),
            ("antonym", 1.0, _paraphrase_negative("antonym")),
            ("negation", 0.7, _paraphrase_negative("negation")),
            ("near_synonym", 2.0, _paraphrase_negative("near_synonym")),
            ("denial", 0.5, _paraphrase_negative("denial")),
        ),
    ),
    "acceptability": _TaskSpec(
        columns=("sentence",), holds_label=1, holds_share=0.70, max_total=60_000,
        holds=(("grammatical", 1.0, _acceptability(None)),),
        fails=(
            ("agreement", 1.0, _acceptability("agreement")),
            ("agreement_attractor", 0.6, _acceptability("agreement_attractor")),
            ("determiner_number", 1.0, _acceptability("determiner_number")),
            ("intransitive_object", 1.5, _acceptability("intransitive_object")),
            ("missing_argument", 1.5, _acceptability("missing_argument")),
            ("participle_form", 1.0, _acceptability("participle_form")),
            ("word_order", 1.5, _acceptability("word_order")),
            ("pronoun_case", 1.0, _acceptability("pronoun_case")),
        ),
    ),
    "entailment": _TaskSpec(
        columns=("sentence1", "sentence2"), holds_label=0, holds_share=0.50, max_total=60_000,
        holds=(
            ("hypernym", 1.5, _entailment_hypernym),
            ("drop_modifier", 1.5, _entailment_drop_modifier),
            ("passive_or_converse", 1.0, _entailment_rewrite),
            ("conjunction", 1.5, _entailment_conjunction(True)),
            ("appositive", 0.8, _entailment_appositive(True)),
            ("implicative", 0.6, _entailment_implicative(True)),
            ("downward_monotone", 0.3, _entailment_monotone(True)),
        ),
        fails=(
            ("hyponym", 1.2, _entailment_hyponym),
            ("role_swap", 1.2, _entailment_role_swap),
            ("negation", 1.5, _entailment_negation),
            ("unsupported_modifier", 1.5, _entailment_unsupported_modifier),
            ("quantity_change", 1.2, _entailment_quantity),
            ("non_implicative", 0.6, _entailment_implicative(False)),
            ("appositive_mismatch", 0.8, _entailment_appositive(False)),
            ("disjunction", 0.4, _entailment_conjunction(False)),
            ("upward_under_negation", 0.4, _entailment_monotone(False)),
            ("near_synonym", 0.6, _entailment_near_synonym),
        ),
    ),
    "coreference": _TaskSpec(
        columns=("sentence1", "sentence2"), holds_label=1, holds_share=0.50, max_total=20_000,
        holds=(("people", 2.0, _coreference("people", True)), ("objects", 1.0, _coreference("objects", True))),
        fails=(("people", 2.0, _coreference("people", False)), ("objects", 1.0, _coreference("objects", False))),
        unique_column="sentence1",
    ),
}


# ---------------------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------------------


def generate_task(kind: str, seed: int, split_sizes: dict[str, int]) -> dict[str, list[dict]]:
    """split_sizes like {"train": 1000, "validation": 300, "test": 300}; returns the same keys -> list of records.

    Records have GLUE's columns for the kind (see the module docstring) and an `idx` counting from 0 per split.
    """
    annotated = generate_task_annotated(kind, seed, split_sizes)
    return {split: [{k: v for k, v in r.items() if k != "phenomenon"} for r in records]
            for split, records in annotated.items()}


def generate_task_annotated(kind: str, seed: int, split_sizes: dict[str, int]) -> dict[str, list[dict]]:
    """Like `generate_task`, with each record's phenomenon under "phenomenon" (for error analysis)."""
    spec = _validated_spec(kind, split_sizes)
    split_of_text: dict[str, str] = {}  # every text used so far -> the split that used it
    output = {}
    for split, size in split_sizes.items():
        # A string seed is hashed with SHA-512 by `random`, so it does not depend on PYTHONHASHSEED.
        rng = random.Random(f"{kind}/{seed}/{split}")
        output[split] = _generate_split(rng, spec, kind, split, size, split_of_text)
    return output


def _validated_spec(kind: str, split_sizes: dict[str, int]) -> _TaskSpec:
    if kind not in _PHENOMENA:
        raise ValueError(f"unknown task kind {kind!r}; expected one of {', '.join(TASK_KINDS)}")
    for split, size in split_sizes.items():
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"split size for {split!r} must be a non-negative integer, got {size!r}")
    spec = _PHENOMENA[kind]
    total = sum(split_sizes.values())
    if total > spec.max_total:
        raise ValueError(f"{kind}: {total} examples requested in all, but at most {spec.max_total} can be generated "
                         f"without duplicates; ask for fewer")
    return spec


def _label_schedule(rng: random.Random, spec: _TaskSpec, size: int) -> list[bool]:
    """Whether the relation holds, per example: exactly round(share * size) True, in random order."""
    holding = round(spec.holds_share * size)
    schedule = [True] * holding + [False] * (size - holding)
    rng.shuffle(schedule)
    return schedule


def _generate_split(rng: random.Random, spec: _TaskSpec, kind: str, split: str, size: int,
                    split_of_text: dict[str, str]) -> list[dict]:
    records: list[dict] = []
    seen_records: set[tuple[str, ...]] = set()  # membership only; never iterated
    for holds in _label_schedule(rng, spec, size):
        phenomena = spec.holds if holds else spec.fails
        for _ in range(_MAX_ATTEMPTS_PER_EXAMPLE):
            name, _, build = rng.choices(phenomena, weights=[w for _, w, _ in phenomena])[0]
            texts = build(rng)
            if texts is None or len(set(texts)) < len(texts) or texts in seen_records:
                continue
            checked = texts if spec.unique_column is None else (texts[spec.columns.index(spec.unique_column)],)
            if any(split_of_text.get(text, split) != split for text in checked):
                continue
            break
        else:
            raise ValueError(f"{kind}: could not fill split {split!r} with {size} distinct examples (stopped at "
                             f"{len(records)}); ask for fewer examples")
        seen_records.add(texts)
        for text in checked:
            split_of_text[text] = split
        label = spec.holds_label if holds else 1 - spec.holds_label
        records.append({**dict(zip(spec.columns, texts)), "label": label, "idx": len(records), "phenomenon": name})
    return records
