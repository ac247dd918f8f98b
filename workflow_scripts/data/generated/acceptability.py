"""acceptability (CoLA): one sentence, acceptable (label 1, 70%) or unacceptable (label 0).

Acceptable sentences vary subject (name, pronoun, determiner + adjective + noun, with a prepositional or
relative-clause modifier), tense (present, past, perfect, progressive, modal, do-negation) and verb frame
(transitive, intransitive, "put X on Y", be + adjective). Unacceptable ones make one error:
  `agreement` (The teachers likes ...), `agreement_attractor` (The key near the windows are ... : the verb agrees
  with the nearer noun; hard), `determiner_number` (a teachers, these book), `intransitive_object` (Anna arrived the
  box), `missing_argument` (Anna devoured. / Anna put the book.), `participle_form` (has went, did took, will takes),
  `word_order` (Anna the book took. / the box old), `pronoun_case` (Him saw the dog.).
  Acceptable ones include the same constructions done right (agreement across an attractor, "He saw her.").

Self-contained apart from `lexicon` and `english` (it does not use `grammar`'s events).
`acceptability_builder(error)` returns the builder of one phenomenon (error None: a grammatical sentence); the
weights are in `task_generator`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from . import lexicon as lex
from .english import as_sentence, person, with_article


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
        return _NounPhrase(with_article(words), plural)
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
            return person(rng) if not plural else f"{person(rng)} and {person(rng)}", plural
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
        return person(rng)
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
        return as_sentence(f"{subject} {be} {adjective}")
    if frame == "intransitive":
        forms = rng.choice(lex.INTRANSITIVE_VERBS)
        tense = _tense_for(rng, agreement_error, forms)
        verb = _verb_group(rng, forms, plural, tense, agreement_error)
        if error == "intransitive_object":
            return as_sentence(f"{subject} {verb} {_object_phrase(rng, 'thing')}")
        return as_sentence(f"{subject} {verb} {rng.choice(lex.INTRANSITIVE_ENDINGS)}")
    if frame == "put":
        forms = ("put", "puts", "put", "put", "putting")
        tense = _tense_for(rng, agreement_error, forms)
        verb = _verb_group(rng, forms, plural, tense, agreement_error)
        preposition, place = rng.choice(lex.LOCATIONS)
        thing = _object_phrase(rng, "thing")
        if error == "missing_argument":
            return as_sentence(rng.choice((f"{subject} {verb} {thing}", f"{subject} {verb} {preposition} the {place}")))
        return as_sentence(f"{subject} {verb} {thing} {preposition} the {place}")
    if frame == "obligatory":
        forms, object_class = rng.choice(lex.OBLIGATORY_OBJECT_VERBS)
    else:
        forms, object_class = rng.choice(lex.IRREGULAR_TRANSITIVE_VERBS)
    tense = _tense_for(rng, error, forms)
    verb = _verb_group(rng, forms, plural, tense, agreement_error or (error if error == "participle_form" else None))
    if error == "missing_argument":
        ending = rng.choice(("", " yesterday", " carefully", " again", " in the morning"))
        return as_sentence(f"{subject} {verb}{ending}")
    obj = _object_phrase(rng, object_class, wrong_determiner=error == "determiner_number")
    if error == "word_order":
        return _scrambled(rng, subject, verb, obj)
    if error == "pronoun_case":
        return _wrong_case(rng, verb, obj)
    return as_sentence(f"{subject} {verb} {obj}")


def _scrambled(rng: random.Random, subject: str, verb: str, obj: str) -> str | None:
    """One local word-order error: object before the verb, or a determiner/adjective after its noun."""
    words = obj.split()
    roll = rng.random()
    if roll < 0.4 or len(words) < 2:
        return as_sentence(f"{subject} {obj} {verb}")
    if roll < 0.7 and len(words) == 3 and words[0] in ("the", "a", "an", "these", "those", "this", "that"):
        return as_sentence(f"{subject} {verb} {words[0]} {words[2]} {words[1]}")
    return as_sentence(f"{subject} {verb} {' '.join(words[1:])} {words[0]}")


def _wrong_case(rng: random.Random, verb: str, obj: str) -> str:
    """An object pronoun as subject ("Him saw the dog.") or a subject pronoun as object ("Anna saw she.")."""
    subject_form, object_form, _ = rng.choice(_PRONOUNS)
    if rng.random() < 0.5:
        return as_sentence(f"{object_form} {verb} {obj}")
    return as_sentence(f"{person(rng)} {verb} {subject_form}")


def acceptability_builder(error: str | None) -> Callable[[random.Random], str | None]:
    def build(rng: random.Random) -> tuple[str] | None:
        sentence = _acceptable_or_not(rng, error)
        return None if sentence is None else (sentence,)
    return build

