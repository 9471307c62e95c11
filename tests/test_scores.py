"""Score parts against hand computations, and score files refused in one line."""

import math

import mlx.core as mx
import numpy as np
import pytest

from lenscope.batch.scores import Score, judge_yes_no
from lenscope.core.engine import Request
from lenscope.core.logprob import score
from lenscope.errors import BadInput
from lenscope.lenses.spec import parse_inline

PROMPT = "the key is blue. question: what color is the key? answer: the key is"


@pytest.fixture(scope="module")
def run(engine):
    variants = [parse_inline("bias:words=happy,value=15"), parse_inline("identity")]
    comparison = engine.compare(Request(PROMPT, variants, max_tokens=6))
    return comparison.run(), comparison.variants


def values(engine, run, entry):
    result, variants = run
    return [r["parts"] for r in Score.from_data([entry], "test").evaluate(engine, result, variants)]


def test_text_parts_by_hand(engine, run):
    result, _ = run
    texts = [row.text for row in result.rows]
    got = values(engine, run, {"kind": "contains", "text": "happy"})
    assert [v["contains:text=happy"] for v in got] == [float("happy" in t.lower()) for t in texts]
    assert got[1]["contains:text=happy"] == 1.0 and got[0]["contains:text=happy"] == 0.0
    got = values(engine, run, {"kind": "contains", "text": "happy", "count": True})
    assert [v["contains:text=happy,count=True"] for v in got] == [float(t.lower().count("happy")) for t in texts]
    got = values(engine, run, {"kind": "regex", "pattern": r"\bha\w+", "count": True})
    import re

    assert [next(iter(v.values())) for v in got] == [float(len(re.findall(r"\bha\w+", t))) for t in texts]
    got = values(engine, run, {"kind": "words", "words": ["happy", "blue"]})
    assert [next(iter(v.values())) for v in got] == [
        float(sum(w in ("happy", "blue") for w in re.findall(r"[a-z']+", t.lower()))) for t in texts]


def test_divergence_is_the_mean_kl_while_prefixes_agree(engine, run):
    result, _ = run
    got = [next(iter(v.values())) for v in values(engine, run, {"kind": "divergence"})]
    assert got[0] == 0.0 and got[2] == pytest.approx(0.0, abs=1e-6)  # identity
    kl = [k for k in result.rows[1].kl_from_baseline if k is not None]
    assert got[1] == pytest.approx(sum(kl) / len(kl)) and got[1] > 0.1


def test_distinct_is_the_share_of_distinct_ngrams(engine, run):
    from lenscope.batch.scores import distinct_share

    assert distinct_share([5, 6, 5, 6, 5]) == 2 / 5 and distinct_share([5, 6, 5, 6, 5], 2) == 2 / 4
    assert distinct_share([1, 2, 3], 4) == 1.0 and distinct_share([], 1) == 0.0  # an empty reply is not varied
    result, _ = run
    got = [next(iter(v.values())) for v in values(engine, run, {"kind": "distinct", "n": 2})]
    assert got == [distinct_share(r.token_ids, 2) for r in result.rows] and all(0 < g <= 1 for g in got)


def test_logprob_and_fluency_by_hand(engine, run):
    result, _ = run
    got = [next(iter(v.values())) for v in values(engine, run, {"kind": "logprob", "continuation": " blue"})]
    ids = engine.encode(PROMPT)
    target = engine.encode(PROMPT + " blue")[len(ids):]
    with engine.lock:
        logits = engine.model(mx.array([ids + target]))[0].astype(mx.float32)
    lp = np.array(logits - mx.logsumexp(logits, axis=-1, keepdims=True))
    by_hand = sum(lp[len(ids) - 1 + i, t] for i, t in enumerate(target))
    assert got[0] == pytest.approx(by_hand, abs=1e-4) and got[2] == pytest.approx(by_hand, abs=1e-4)
    assert got[1] < got[0]  # the bias toward 'happy' lowers 'blue'
    flu = [next(iter(v.values())) for v in values(engine, run, {"kind": "fluency"})]
    _, c_ids, rows = score(engine, PROMPT, result.rows[1].text)
    assert flu[1] == pytest.approx(rows[0].logprob / len(c_ids))


def test_weighted_sum(engine, run):
    result, variants = run
    s = Score.from_data([{"kind": "contains", "text": "happy", "weight": 2.0},
                         {"kind": "divergence", "weight": -0.5}], "test")
    out = s.evaluate(engine, result, variants)
    for row in out:
        a, b = row["parts"].values()
        assert row["score"] == pytest.approx(2.0 * a - 0.5 * b)


def test_judge_is_p_yes_minus_p_no(engine):
    got = judge_yes_no(engine, "is the key blue?", "the key is blue.")
    assert -1.0 <= got <= 1.0 and math.isfinite(got)
    # by hand: the judge prompt as written, the next-token distribution, every spelling's first token
    from lenscope.batch.scores import JUDGE_TEMPLATE
    from lenscope.chat.templates import model_prompt, template_name

    text = JUDGE_TEMPLATE.format(question="is the key blue?", text="the key is blue.")
    prompt, _ = model_prompt(engine.tokenizer, text, template_name(engine.tokenizer) is not None)
    with engine.lock:
        logits = np.array(engine.model(mx.array([engine.encode(prompt)]))[0, -1].astype(mx.float32))
    p = np.exp(logits - logits.max())
    p /= p.sum()

    def first_tokens(word):
        forms = (word, word.capitalize(), " " + word, " " + word.capitalize())
        return {engine.tokenizer.encode(f, add_special_tokens=False)[0] for f in forms}

    assert got == pytest.approx(p[sorted(first_tokens("yes"))].sum() - p[sorted(first_tokens("no"))].sum(), abs=1e-5)


@pytest.mark.parametrize("entry, words", [
    ({"kind": "nope"}, "score kind must be one of"),
    ({"kind": "contains"}, "needs 'text'"),
    ({"kind": "regex", "pattern": "("}, "does not compile"),
    ({"kind": "contains", "text": "a", "weight": "x"}, "weight must be a number"),
    ({"kind": "words", "list": "angry"}, "list must be one of"),
    ({"kind": "fluency", "colour": 1}, "has no key 'colour'"),
    ("contains", "must be a table"),
])
def test_bad_score_parts(entry, words):
    with pytest.raises(BadInput, match=words):
        Score.from_data([entry], "search.toml")
