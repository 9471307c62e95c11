"""Lens effects claimed in docs/measured.md, checked on SmolLM2-135M-Instruct (small n here;
its tables come from `lenscope measure ... --model smollm2` at n >= 40)."""

from __future__ import annotations

import random

import pytest

from lenscope.core.engine import Request
from lenscope.core.logprob import score
from lenscope.lab import prompt_sets as ps
from lenscope.lenses.spec import parse

pytestmark = pytest.mark.real_model


def _far_fact(engine, item, rng):
    prompt = item.prompt(ps.filler(rng, 6))
    return prompt, engine.tokens.marks_from_text(prompt, engine.encode(prompt), [item.context])


def test_identity_row_equals_baseline(smollm2_engine):
    res = smollm2_engine.compare(Request("Tell me about the sea.", parse("identity"), max_tokens=12)).run()
    assert res.rows[1].token_ids == res.rows[0].token_ids


def test_emphasis_keeps_a_far_counterfactual_fact(smollm2_engine):
    """Six filler sentences between fact and question: emphasis raises attention on the
    fact and makes at least as many answers follow it (docs/measured.md: 0.81 -> 1.00 at n=48)."""
    rng = random.Random(1)
    follows, share = [0, 0], [0.0, 0.0]
    for item in ps.counterfact(12):
        prompt, marks = _far_fact(smollm2_engine, item, rng)
        res = smollm2_engine.compare(Request(prompt, parse("emphasis:strength=1"), marks, max_tokens=4)).run()
        for r in (0, 1):
            follows[r] += ps.answer_of(res.rows[r].text, [item.answer, item.known]) == item.answer
            share[r] += res.rows[r].attention_to_marks[0]
    assert share[1] > 1.3 * share[0]
    assert follows[1] >= follows[0] and follows[1] >= 10


def test_emphasis_raises_the_score_of_the_context_answer(smollm2_engine):
    """Teacher-forced: log p(fake city) goes up and log p(known city) down under emphasis."""
    rng = random.Random(3)
    gains = []
    for item in ps.counterfact(6):
        prompt, marks = _far_fact(smollm2_engine, item, rng)
        fake = score(smollm2_engine, prompt, " " + item.answer, parse("emphasis:strength=1"), marks)[2]
        gains.append(fake[1].logprob - fake[0].logprob)
    assert sum(g > 0 for g in gains) >= 5


def test_patching_moves_the_fact(smollm2_engine):
    from lenscope.lab.measure_real import patch

    rep = patch(smollm2_engine, n=6)
    assert rep["items"] >= 4 and rep["patched_names_source_city"] >= 0.75


def test_steering_shifts_mood_both_ways(smollm2_engine):
    """A contrast direction at layer 15, +-0.1 of each token's norm: more positive words one
    way, fewer the other, over the same sampled stories (shared noise). docs/measured.md, n=40:
    positive share 0.61 -> 0.98 and 0.08."""
    variants = [v for v in parse("examples/lenses/mood_smollm2.toml") if v.name in ("mean -0.1", "mean +0.1")]
    pos, neg = _mood_words(smollm2_engine, variants)
    assert pos["mean +0.1"] > pos["baseline"] and neg["mean +0.1"] <= neg["baseline"]
    assert neg["mean -0.1"] > neg["baseline"] and pos["mean -0.1"] <= pos["baseline"]


def _mood_words(engine, variants) -> tuple[dict[str, int], dict[str, int]]:
    from lenscope.chat.templates import apply

    pos = {"baseline": 0, **{v.name: 0 for v in variants}}
    neg = dict.fromkeys(pos, 0)
    for seed in range(6):
        prompt = apply(engine.tokenizer, ps.STORY_PROMPTS[seed % len(ps.STORY_PROMPTS)]).text
        res = engine.compare(Request(prompt, variants, max_tokens=32, temperature=0.8, seed=seed)).run()
        for row in res.rows:
            p, q = ps.mood_counts(row.text)
            pos[row.name] += p
            neg[row.name] += q
    return pos, neg


def test_smollm2_example_says_what_its_comments_claim(smollm2_engine, run_cli, tmp_path, monkeypatch):
    import json

    from lenscope import models

    monkeypatch.setattr(models, "load", lambda *a, **k: smollm2_engine.loaded)  # loaded once per session
    code, _, err = run_cli("run", "examples/smollm2.toml", "--out", str(tmp_path / "out"))
    assert code == 0, err
    lines = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    first = lambda rec: [row["text"].split(".")[0].strip() for row in rec["rows"]]
    assert first(lines[0]) == ["Beijing", "Oslo", "Oslo"]
    assert first(lines[1]) == ["Paris", "Berlin"]
    assert lines[2]["rows"][0]["text"].startswith("The capital of France is Paris")


def test_scored_log_probs_match_float64_over_the_whole_vocabulary(smollm2_engine):
    """A float32 sum over 49,152 logits in MLX drifts by ~1e-4 relative; summed in two stages
    the scored log-probs match numpy's float64 over the same logits to 1e-5."""
    import mlx.core as mx
    import numpy as np

    eng = smollm2_engine
    prompt, continuation = "The capital of France is", " Paris, the city of light."
    p_ids, c_ids, rows = score(eng, prompt, continuation)
    with eng.lock:
        logits = np.asarray(eng.model(mx.array([p_ids + c_ids]))[0].astype(mx.float32), np.float64)
    z = logits[len(p_ids) - 1 : -1]
    m = z.max(-1, keepdims=True)
    lp = z - (np.log(np.exp(z - m).sum(-1, keepdims=True)) + m)
    want = lp[np.arange(len(c_ids)), c_ids]
    np.testing.assert_allclose(rows[0].token_logprobs, want, rtol=0, atol=1e-5)
