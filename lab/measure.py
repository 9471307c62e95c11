"""Measured lens effects on the bundled model (the numbers in docs/measured.md and MODEL_CARD).

- recall: a fact early, filler, a cue; accuracy by distance for the baseline and each
  lens row, with the fact's tokens marked (what `emphasis` and `decay` act on);
- attribute: happy/sad word counts in sampled stories, baseline vs each lens row.
Every comparison is one batched run, so rows see the same prompt and the same noise.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from lenscope.core.engine import Engine, Request
from lenscope.core.marks import overlapping
from lenscope.lab import episodes
from lenscope.lenses.spec import parse

DISTANCES = (0, 2, 4, 8, 12, 16, 20)
STORY_PROMPT = "one day, tom went to the park."
HAPPY_TEXTS = ("tom was happy.", "anna smiled and laughed.", "it was a happy day.", "they sang and danced.",
               "lily felt joy.", "max was glad and cheerful.")
SAD_TEXTS = ("tom was sad.", "anna cried and sighed.", "it was a sad day.", "they wept and sobbed.",
             "lily felt sorrow.", "max was lonely and gloomy.")
STEER_SPEC = "steer:layers=1,strength=30,positive={},negative={}".format("|".join(HAPPY_TEXTS), "|".join(SAD_TEXTS))


def doc_start(engine: Engine) -> str:
    """Episodes start as training documents do, after an end-of-text token; it also
    keeps the attention sink at position 0 out of the marked fact."""
    return getattr(engine.tokenizer, "eos_token", None) or ""


def recall(engine: Engine, specs: Sequence[str], distances: Sequence[int] = DISTANCES, n: int = 40,
           seed: int = 1234) -> dict[str, Any]:
    """Accuracy by filler length (sentences; mean token distance reported too)."""
    variants = [v for s in specs for v in parse(s)]
    names = ["baseline"] + [v.name for v in variants]
    rng = random.Random(seed)
    table = []
    for d in distances:
        correct = np.zeros(len(names))
        mark_share = np.zeros(len(names))
        token_dist = []
        for _ in range(n):
            ep = episodes.recall_episode(rng, d)
            prompt = doc_start(engine) + ep.prompt
            ids = engine.encode(prompt)
            start = len(prompt) - len(ep.prompt)
            marks = sorted(overlapping(engine.tokens.token_spans(prompt, ids), start, start + len(ep.fact)))
            token_dist.append(len(ids) - max(marks) - 1)
            res = engine.compare(Request(prompt, variants, marks, max_tokens=1)).run()
            for r, row in enumerate(res.rows):
                first = row.tokens[0].strip() if row.tokens else ""
                correct[r] += first == ep.answer
                mark_share[r] += row.attention_to_marks[0] if row.attention_to_marks else 0.0
        table.append({"filler_sentences": d, "mean_token_distance": round(float(np.mean(token_dist)), 1),
                      "accuracy": {nm: round(float(c / n), 3) for nm, c in zip(names, correct)},
                      "attention_to_fact": {nm: round(float(a / n), 4) for nm, a in zip(names, mark_share)}})
    return {"episodes_per_distance": n, "rows": names, "table": table}


def attribute(engine: Engine, specs: Sequence[str], n: int = 24, max_tokens: int = 40, temperature: float = 0.8,
              prompt: str = STORY_PROMPT) -> dict[str, Any]:
    """Happy and sad word counts over n sampled generations per row (common random numbers)."""
    variants = [v for s in specs for v in parse(s)]
    names = ["baseline"] + [v.name for v in variants]
    happy = np.zeros(len(names), dtype=int)
    sad = np.zeros(len(names), dtype=int)
    samples: dict[str, str] = {}
    for seed in range(n):
        res = engine.compare(Request(prompt, variants, max_tokens=max_tokens, temperature=temperature,
                                     seed=seed)).run()
        for r, row in enumerate(res.rows):
            h, s = episodes.mood_counts(row.text)
            happy[r] += h
            sad[r] += s
            samples.setdefault(names[r], row.text)
    return {"samples_per_row": n, "max_tokens": max_tokens, "temperature": temperature, "prompt": prompt,
            "rows": [{"name": nm, "happy_words": int(h), "sad_words": int(s),
                      "happy_share": round(float(h / max(h + s, 1)), 3), "example": samples[nm]}
                     for nm, h, s in zip(names, happy, sad)]}


def render_recall(rep: dict[str, Any]) -> str:
    names = rep["rows"]
    head = f"{'filler':>6} {'tokens':>6}  " + "  ".join(f"{n[:22]:>22}" for n in names)
    lines = [(f"recall accuracy ({rep['episodes_per_distance']} episodes per distance; "
             "attention on the fact at the answer step in brackets)"), head]
    for row in rep["table"]:
        cells = "  ".join(f"{row['accuracy'][n]:>13.2f} [{row['attention_to_fact'][n]:.3f}]" for n in names)
        lines.append(f"{row['filler_sentences']:>6} {row['mean_token_distance']:>6}  {cells}")
    return "\n".join(lines)


def render_attribute(rep: dict[str, Any]) -> str:
    lines = [(f"mood words in {rep['samples_per_row']} samples per row (T={rep['temperature']}, "
             f"{rep['max_tokens']} tokens) after '{rep['prompt']}'")]
    for row in rep["rows"]:
        lines.append(f"  {row['name'][:50]:<50} happy {row['happy_words']:>4}  sad {row['sad_words']:>4}  "
                     f"happy share {row['happy_share']:.2f}")
    return "\n".join(lines)
