"""Prompt sets in ordinary English for measuring lens effects on real models.

- counterfact: an in-context fact that contradicts what the model knows (PASTA's
  CounterFact setting): does the answer follow the context or the model's memory?
- recall: a fact, then neutral filler sentences, then a question about the fact.
- mood: positive and negative word lists for sampled continuations, and contrast
  sentences for a steering direction.
All sets are fixed lists drawn with a seeded RNG, so every run measures the same items.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from lenscope.batch.scores import NEGATIVE_WORDS, POSITIVE_WORDS

# (subject, what the model knows) for "X is located in CITY"
LANDMARKS = [
    ("The Eiffel Tower", "Paris"), ("The Colosseum", "Rome"), ("Big Ben", "London"),
    ("The Statue of Liberty", "New York"), ("The Brandenburg Gate", "Berlin"), ("The Sagrada Familia", "Barcelona"),
    ("The Kremlin", "Moscow"), ("The Golden Gate Bridge", "San Francisco"), ("The Sydney Opera House", "Sydney"),
    ("The Taj Mahal", "Agra"), ("The Acropolis", "Athens"), ("The Forbidden City", "Beijing"),
    ("The Space Needle", "Seattle"), ("The CN Tower", "Toronto"), ("The Burj Khalifa", "Dubai"),
    ("The Louvre", "Paris"), ("The Vatican", "Rome"), ("The Prado Museum", "Madrid"),
    ("The Rijksmuseum", "Amsterdam"), ("The Hagia Sophia", "Istanbul"), ("Times Square", "New York"),
    ("The Little Mermaid statue", "Copenhagen"), ("Tower Bridge", "London"), ("The Christ the Redeemer statue", "Rio de Janeiro"),
]
# (country, its capital) for "The capital of X is CITY"
CAPITALS = [
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"),
    ("Russia", "Moscow"), ("Egypt", "Cairo"), ("Canada", "Ottawa"), ("Australia", "Canberra"), ("China", "Beijing"),
    ("Greece", "Athens"), ("Portugal", "Lisbon"), ("Austria", "Vienna"), ("Norway", "Oslo"), ("Sweden", "Stockholm"),
    ("Poland", "Warsaw"), ("Ireland", "Dublin"), ("Kenya", "Nairobi"), ("Peru", "Lima"), ("Argentina", "Buenos Aires"),
    ("Thailand", "Bangkok"), ("Turkey", "Ankara"), ("Mexico", "Mexico City"), ("India", "New Delhi"),
]
FAKE_CITIES = ["Paris", "Rome", "London", "Berlin", "Tokyo", "Madrid", "Moscow", "Cairo", "Sydney", "Toronto",
               "Lisbon", "Vienna", "Oslo", "Dublin", "Athens", "Seoul", "Chicago", "Mumbai", "Nairobi", "Lima"]

FILLER = [
    "The weather was mild for most of the week.", "Many people enjoy reading in the evening.",
    "The train left the station a few minutes late.", "A small shop on the corner sells fresh bread.",
    "The meeting was moved to the following Tuesday.", "Children played football in the park after school.",
    "The library extended its opening hours this month.", "Most of the guests arrived before dinner.",
    "The river was calm and the boats moved slowly.", "She wrote a long letter to her grandmother.",
    "The museum added a new wing for modern art.", "Traffic on the main road was heavier than usual.",
    "He spent the afternoon fixing an old bicycle.", "The garden needed water after the dry summer.",
    "The concert started with a short piece for piano.", "A new bakery opened near the post office.",
    "The students prepared for their final exams.", "Snow fell on the mountains during the night.",
    "The committee approved the budget for next year.", "Birds gathered on the roof of the old barn.",
]

POSITIVE_SENTENCES = ["I am so happy today, everything is wonderful.", "What a joyful, beautiful morning!",
                      "We laughed and celebrated all night.", "She smiled, full of love and hope.",
                      "This is the best day of my life.", "I feel grateful, cheerful and excited."]
NEGATIVE_SENTENCES = ["I am so sad today, everything is awful.", "What a gloomy, miserable morning.",
                      "We cried and grieved all night.", "She wept, full of sorrow and fear.",
                      "This is the worst day of my life.", "I feel lonely, tired and hopeless."]
STORY_PROMPTS = ["Write a short story about a weekend at the lake.", "Describe your visit to your grandmother.",
                 "Tell me about the first day at a new job.", "Write about a rainy afternoon in the city.",
                 "Describe a family dinner.", "Write a short story about a trip to the mountains.",
                 "Tell me about a day at the beach.", "Describe moving into a new apartment."]


@dataclass(frozen=True)
class FactItem:
    context: str  # the in-context fact, the span to mark
    question: str  # what the model is asked, ending where the answer begins
    answer: str  # the in-context answer
    known: str  # what the model knows from training

    def prompt(self, filler: str = "") -> str:
        middle = f" {filler}" if filler else ""
        return f"Remember this: {self.context}{middle} {self.question}"


def counterfact(n: int = 48, seed: int = 0) -> list[FactItem]:
    """n items, half landmarks and half capitals, each with a fake city it is not in."""
    rng = random.Random(seed)
    items = []
    pool = [("landmark", s, k) for s, k in LANDMARKS] + [("capital", s, k) for s, k in CAPITALS]
    rng.shuffle(pool)
    for kind, subject, known in (pool * (n // len(pool) + 1))[:n]:
        fake = rng.choice([c for c in FAKE_CITIES if c != known])
        if kind == "landmark":
            items.append(FactItem(f"{subject} is located in {fake}.",
                                  f"Question: In which city is {subject[0].lower() + subject[1:]} located? "
                                  f"Answer: {subject} is located in", fake, known))
        else:
            items.append(FactItem(f"The capital of {subject} is {fake}.",
                                  f"Question: What is the capital of {subject}? Answer: The capital of {subject} is",
                                  fake, known))
    return items


def filler(rng: random.Random, sentences: int) -> str:
    return " ".join(rng.sample(FILLER, min(sentences, len(FILLER))))


def answer_of(text: str, candidates: list[str]) -> str | None:
    """Which candidate the generated text names first (None: neither)."""
    hits = [(m.start(), c) for c in candidates if (m := re.search(re.escape(c), text))]
    return min(hits)[1] if hits else None


def mood_counts(text: str) -> tuple[int, int]:
    words = re.findall(r"[a-z]+", text.lower())
    return sum(w in POSITIVE_WORDS for w in words), sum(w in NEGATIVE_WORDS for w in words)
