"""coreference (WNLI): Winograd schemas, entailment (label 1, 50%) or not_entailment (label 0).

sentence1 has two candidates of the same kind (two women, two men or two things) and a pronoun; sentence2 repeats
the pronoun's clause with one candidate in its place. Each schema has two twin words that flip the answer ("...
because it was too big / small"), so only world knowledge (size, weight, emotions, cause and effect) resolves the
pronoun. Phenomena are `people` and `objects`.

Self-contained apart from the names in `lexicon`. `coreference_builder(kind, correct)` returns the builder of one
phenomenon; the weights are in `task_generator`.
"""

from __future__ import annotations

import random
from typing import Callable

from . import lexicon as lex

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


def coreference_builder(kind: str, correct: bool) -> Callable[[random.Random], tuple[str, str]]:
    build = _coreference_people if kind == "people" else _coreference_objects
    return lambda rng: build(rng, correct)

