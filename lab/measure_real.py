"""Measured lens effects on real models, on the English prompt sets of prompt_sets.py.

- counterfact: share of answers that follow an in-context fact contradicting what the
  model knows (the fact sentence marked), per row; with `filler` sentences between
  fact and question it is recall by distance;
- mood: positive/negative word counts in sampled continuations per row, each row's
  fluency (mean log-probability of its text under the plain model, via `score`) and its
  share of distinct tokens (repetition scores well on fluency), so a strength that
  produces gibberish shows as such;
- patch: the fake city patched in from another prompt (all layers, the city's tokens):
  share of answers that name the patched city.
Every item is one batched comparison: the rows share prompt, cache and noise.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lenscope.chat.templates import model_prompt
from lenscope.core.engine import Engine, Request
from lenscope.core.logprob import score
from lenscope.core.results import distinct_share
from lenscope.lab import prompt_sets as ps
from lenscope.lenses import words
from lenscope.lenses.spec import parse


def _marks(engine: Engine, prompt: str, text: str, region) -> list[int]:
    return engine.tokens.marks_from_text(prompt, engine.encode(prompt), [text], region)


def counterfact(engine: Engine, specs: Sequence[str], n: int = 48, filler: Sequence[int] = (0,),
                chat: bool = False, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    variants = [v for s in specs for v in parse(s)]
    names = ["baseline"] + [v.name for v in variants]
    items = ps.counterfact(n)
    rng = random.Random(1)
    table = []
    for d in filler:
        follows, knows, share = np.zeros(len(names)), np.zeros(len(names)), np.zeros(len(names))
        fluency: list[list[float]] = [[] for _ in names]
        example = {}
        for i, item in enumerate(items):
            if progress:
                progress(f"counterfact filler={d} {i + 1}/{len(items)}")
            prompt, region = model_prompt(engine.tokenizer, item.prompt(ps.filler(rng, d)), chat)
            marks = _marks(engine, prompt, item.context, region)
            res = engine.compare(Request(prompt, variants, marks, max_tokens=6)).run()
            for r, row in enumerate(res.rows):
                said = ps.answer_of(row.text, [item.answer, item.known])
                follows[r] += said == item.answer
                knows[r] += said == item.known
                share[r] += row.attention_to_marks[0] if row.attention_to_marks else 0.0
                example.setdefault(names[r], row.text.strip())
                if row.text.strip():  # the plain model's view of the answer: a lens that breaks the text shows here
                    fluency[r].append(score(engine, prompt, row.text)[2][0].logprob / max(len(row.token_ids), 1))
        table.append({"filler_sentences": d,
                      "follows_context": {nm: round(float(x / n), 3) for nm, x in zip(names, follows)},
                      "answers_from_memory": {nm: round(float(x / n), 3) for nm, x in zip(names, knows)},
                      "attention_to_fact": {nm: round(float(x / n), 4) for nm, x in zip(names, share)},
                      "fluency": {nm: round(float(np.mean(f)), 3) if f else None for nm, f in zip(names, fluency)},
                      "example": example})
    return {"items": n, "chat": chat, "rows": names, "table": table}


def mood(engine: Engine, specs: Sequence[str], n: int = 40, max_tokens: int = 40, temperature: float = 0.8,
         chat: bool = True, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    variants = [v for s in specs for v in parse(s)]
    names = ["baseline"] + [v.name for v in variants]
    pos, neg, fluency = np.zeros(len(names)), np.zeros(len(names)), [[] for _ in names]
    distinct = [[] for _ in names]  # repetition ("!!!!!") scores well on fluency: report it apart
    example = {}
    for seed in range(n):
        if progress:
            progress(f"mood {seed + 1}/{n}")
        prompt, _ = model_prompt(engine.tokenizer, ps.STORY_PROMPTS[seed % len(ps.STORY_PROMPTS)], chat)
        res = engine.compare(Request(prompt, variants, max_tokens=max_tokens, temperature=temperature,
                                     seed=seed)).run()
        for r, row in enumerate(res.rows):
            p, q = ps.mood_counts(row.text)
            pos[r] += p
            neg[r] += q
            example.setdefault(names[r], row.text.strip())
            if row.token_ids:
                distinct[r].append(distinct_share(row.token_ids))
            if row.text.strip():  # fluency: the plain model's view of what this row wrote
                fluency[r].append(score(engine, prompt, row.text)[2][0].logprob / max(len(row.token_ids), 1))
    return {"samples_per_row": n, "max_tokens": max_tokens, "temperature": temperature, "chat": chat,
            "rows": [{"name": nm, "positive_words": int(p), "negative_words": int(q),
                      "positive_share": round(float(p / max(p + q, 1)), 3),
                      "fluency": round(float(np.mean(f)), 3) if f else None,
                      "distinct_tokens": round(float(np.mean(u)), 3) if u else None, "example": example[nm]}
                     for nm, p, q, f, u in zip(names, pos, neg, fluency, distinct)]}


def patch(engine: Engine, n: int = 48, chat: bool = False,
          progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Patch a second fake city (same token count) over the marked one, at the embeddings
    and after every block."""
    items = ps.counterfact(n)
    rng = random.Random(2)
    layers = "|".join(str(i) for i in range(engine.n_layers))
    flipped = kept = tried = 0
    examples = []
    for i, item in enumerate(items):
        if progress:
            progress(f"patch {i + 1}/{len(items)}")
        k = len(words.word_ids(engine.tokenizer, item.answer, "answer"))
        others = [c for c in ps.FAKE_CITIES if c not in (item.answer, item.known)
                  and len(words.word_ids(engine.tokenizer, c, "city")) == k]
        if not others:
            continue
        other = rng.choice(others)
        prompt, region = model_prompt(engine.tokenizer, item.prompt(), chat)
        marks = _marks(engine, prompt, " " + item.answer, region)
        source = item.context.replace(item.answer + ".", other)
        # the embeddings (-1) and every block's output: the span's keys and values at every
        # layer are then the source prompt's, as if it had said the other city
        spec = "+".join(f'patch:source="Remember this: {source}",span=marked,layers={ls}' for ls in ("-1", layers))
        res = engine.compare(Request(prompt, parse(spec), marks, max_tokens=6)).run()
        base = ps.answer_of(res.rows[0].text, [item.answer, item.known, other])
        lensed = ps.answer_of(res.rows[1].text, [item.answer, item.known, other])
        tried += 1
        flipped += lensed == other
        kept += base == item.answer
        if len(examples) < 3:
            examples.append({"prompt": item.prompt(), "patched_from": source,
                             "baseline": res.rows[0].text.strip(), "patched": res.rows[1].text.strip()})
    return {"items": tried, "baseline_follows_context": round(kept / max(tried, 1), 3),
            "patched_names_source_city": round(flipped / max(tried, 1), 3), "examples": examples}
