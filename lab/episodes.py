"""Synthetic English for the bundled demo model, and the probes that measure lenses.

Everything here is generated offline from small word lists, so the corpus has a
licence we control and the episodes have answers we can score:

- stories: short simple-English stories (the "prose" part of the corpus);
- recall episodes: a fact early ("the key is blue."), filler, then a cue
  ("question: what color is the key? answer: the key is") whose next word is the fact;
- mood stories: happy or sad stories, so a steering vector has an attribute to move.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

NAMES = ["tom", "anna", "ben", "lily", "sam", "mia", "max", "sara", "leo", "emma", "jack", "nora"]
ANIMALS = ["cat", "dog", "bird", "fox", "rabbit", "frog", "duck", "horse", "mouse", "bear"]
PLACES = ["park", "garden", "forest", "river", "school", "beach", "farm", "town", "hill", "lake"]
THINGS = ["ball", "kite", "book", "boat", "box", "hat", "cup", "key", "bag", "car", "door", "coat"]
COLORS = ["red", "blue", "green", "yellow", "black", "white", "pink", "brown", "orange", "purple"]
SIZES = ["big", "small", "little", "tall", "old", "new", "soft", "long"]
TIMES = ["one day", "in the morning", "after lunch", "that night", "on sunday", "in the evening"]
WEATHER = ["the sun was warm", "the wind was cold", "it was raining", "the sky was clear", "the snow was deep"]
FOODS = ["apples", "bread", "soup", "cake", "rice", "cookies", "milk", "eggs"]
VERBS_PAST = [
    ("walked to", "place"), ("ran to", "place"), ("went to", "place"), ("looked at", "thing"),
    ("found", "thing"), ("picked up", "thing"), ("played with", "thing"), ("saw", "animal"),
    ("talked to", "name"), ("helped", "name"), ("ate some", "food"), ("made some", "food"),
]

HAPPY = {
    "adjectives": ["happy", "glad", "cheerful", "joyful", "bright"],
    "verbs": ["smiled", "laughed", "sang", "danced", "cheered"],
    "nouns": ["joy", "fun", "a big smile", "a warm hug"],
    "endings": [
        "it was the best day ever", "everyone was happy and laughed together",
        "they smiled all the way home", "it was a happy day",
    ],
}
SAD = {
    "adjectives": ["sad", "unhappy", "lonely", "gloomy", "upset"],
    "verbs": ["cried", "sighed", "frowned", "wept", "sobbed"],
    "nouns": ["tears", "a heavy heart", "sorrow", "a long sigh"],
    "endings": [
        "it was the worst day ever", "everyone was sad and quiet",
        "they cried all the way home", "it was a sad day",
    ],
}
MOODS = {"happy": HAPPY, "sad": SAD}
HAPPY_WORDS = {"happy", "glad", "cheerful", "joyful", "bright", "smiled", "laughed", "sang",
               "danced", "cheered", "joy", "fun", "smile", "hug", "best"}
SAD_WORDS = {"sad", "unhappy", "lonely", "gloomy", "upset", "cried", "sighed", "frowned",
             "wept", "sobbed", "tears", "heavy", "sorrow", "sigh", "worst", "quiet"}


def _pick_object(rng: random.Random, kind: str, colors: bool = True) -> str:
    adjectives = SIZES + COLORS if colors else SIZES
    if kind == "place":
        return "the " + rng.choice(PLACES)
    if kind == "thing":
        return f"the {rng.choice(adjectives)} {rng.choice(THINGS)}"
    if kind == "animal":
        return f"a {rng.choice(adjectives)} {rng.choice(ANIMALS)}"
    if kind == "name":
        return rng.choice(NAMES)
    return rng.choice(FOODS)


def sentence(rng: random.Random, name: str | None = None, colors: bool = True) -> str:
    """One neutral story sentence, lower case, ending with a period; `colors=False`
    never names a colour (filler that cannot distract a colour recall)."""
    name = name or rng.choice(NAMES)
    form = rng.randrange(7)
    if form == 0:
        verb, kind = rng.choice(VERBS_PAST)
        return f"{name} {verb} {_pick_object(rng, kind, colors)}."
    if form == 1:
        return f"{rng.choice(TIMES)}, {rng.choice(WEATHER)}."
    if form == 2:
        return f"{name} had a {rng.choice(SIZES)} {rng.choice(ANIMALS)} named {rng.choice(NAMES)}."
    if form == 3:
        verb, kind = rng.choice(VERBS_PAST)
        other = rng.choice(NAMES)
        return f"{name} and {other} {verb} {_pick_object(rng, kind, colors)}."
    if form == 4:
        return f"the {rng.choice(ANIMALS)} was {rng.choice(SIZES)} and {rng.choice(COLORS if colors else SIZES)}."
    if form == 5:
        return f"{name} said, \"let us go to the {rng.choice(PLACES)}.\""
    return f"then {name} {rng.choice(['sat down', 'went home', 'took a nap', 'waved', 'looked around'])}."


def story(rng: random.Random, n_sentences: int | None = None, mood: str | None = None) -> str:
    """A short story; with a mood, mood words are woven in and it ends in that mood."""
    name = rng.choice(NAMES)
    n = n_sentences or rng.randint(3, 8)
    parts = [f"{rng.choice(TIMES)}, {name} {rng.choice(VERBS_PAST[:3])[0]} the {rng.choice(PLACES)}."]
    words = MOODS.get(mood) if mood else None
    for _ in range(n - 1):
        if words and rng.random() < 0.45:
            form = rng.randrange(3)
            if form == 0:
                parts.append(f"{name} was {rng.choice(words['adjectives'])}.")
            elif form == 1:
                parts.append(f"{name} {rng.choice(words['verbs'])}.")
            else:
                parts.append(f"{name} felt {rng.choice(words['nouns'])}.")
        else:
            parts.append(sentence(rng, name if rng.random() < 0.6 else None))
    if words:
        parts.append(rng.choice(words["endings"]) + ".")
    else:
        parts.append(f"then {name} went home.")
    return " ".join(parts)


@dataclass(frozen=True)
class RecallEpisode:
    """A fact, filler, and a cue whose correct continuation is `answer`."""

    fact: str  # "the key is blue."
    filler: str
    cue: str  # "question: what color is the key? answer: the key is"
    answer: str  # "blue"

    @property
    def prompt(self) -> str:
        return f"{self.fact} {self.filler} {self.cue}".replace("  ", " ")

    @property
    def text(self) -> str:
        return f"{self.prompt} {self.answer}."


def recall_episode(rng: random.Random, filler_sentences: int, distractors: int = 0,
                   colored_filler: bool = True) -> RecallEpisode:
    """The fact comes first; `distractors` other facts (other things, other colours)
    follow it. Filler sentences may name colours (the evaluation default: the further
    the fact, the more colours compete with it) or not (`colored_filler=False`)."""
    if distractors:
        things, colors = rng.sample(THINGS, 1 + distractors), rng.sample(COLORS, 1 + distractors)
    else:  # drawn as phase 1 of the demo model's training drew them (reproducibility)
        things, colors = [rng.choice(THINGS)], [rng.choice(COLORS)]
    thing, color = things[0], colors[0]
    others = " ".join(f"the {t} is {c}." for t, c in zip(things[1:], colors[1:]))
    filler = " ".join(sentence(rng, colors=colored_filler) for _ in range(filler_sentences))
    return RecallEpisode(
        fact=f"the {thing} is {color}.",
        filler=f"{others} {filler}".strip(),
        cue=f"question: what color is the {thing}? answer: the {thing} is",
        answer=color,
    )


# Training distances: recall is taught only with short filler so that it fails far away.
TRAIN_RECALL_FILLER = (0, 3)


def training_documents(seed: int, n_docs: int, recall_share: float | None = None,
                       recall_style: str = "distractors") -> list[str]:
    """The corpus. Default (phase 1): 45 % plain stories, 30 % mood stories, 25 % single-fact
    recall episodes. With `recall_share` (phase 2): that share of recall episodes with
    0-1 distractor facts, the rest split 60:40 between plain and mood stories.
    `recall_style="colorless"` (phase 3): one fact and filler that names no colour."""
    rng = random.Random(seed)
    docs = []
    if recall_share is None:
        for _ in range(n_docs):
            r = rng.random()
            if r < 0.45:
                docs.append(story(rng))
            elif r < 0.75:
                docs.append(story(rng, mood=rng.choice(["happy", "sad"])))
            else:
                docs.append(recall_episode(rng, rng.randint(*TRAIN_RECALL_FILLER)).text)
        return docs
    for _ in range(n_docs):
        r = rng.random()
        if r < recall_share:
            if recall_style == "colorless":
                ep = recall_episode(rng, rng.randint(*TRAIN_RECALL_FILLER), colored_filler=False)
            else:
                ep = recall_episode(rng, rng.randint(*TRAIN_RECALL_FILLER), distractors=rng.randint(0, 1))
            docs.append(ep.text)
        elif r < recall_share + (1 - recall_share) * 0.6:
            docs.append(story(rng))
        else:
            docs.append(story(rng, mood=rng.choice(["happy", "sad"])))
    return docs


def mood_counts(text: str) -> tuple[int, int]:
    """(happy, sad) word counts in a generation."""
    words = [w.strip(".,!?\"") for w in text.lower().split()]
    return sum(w in HAPPY_WORDS for w in words), sum(w in SAD_WORDS for w in words)
