"""Importance propagation (`emphasis:propagate=p`): 0 is plain emphasis; above 0 the tokens
that read the marks get part of the boost, as computed here by hand."""

import mlx.core as mx
import numpy as np
from numerics import same_logits

from lenscope.core.engine import Request
from lenscope.lenses.attention import inherited_importance
from lenscope.lenses.base import Ctx
from lenscope.lenses.spec import parse_inline

PROMPT = "the key is blue. then jack waved. jack and max talked. question: what color is the key? answer: the key is"


def marks_of(engine):
    ids = engine.encode(PROMPT)
    return ids, engine.tokens.marks_from_text(PROMPT, ids, ["the key is blue."])


def test_propagate_zero_is_plain_emphasis(engine):
    _ids, marks = marks_of(engine)
    variants = [parse_inline("emphasis:strength=2"), parse_inline("emphasis:strength=2,propagate=0")]
    run = engine.compare(Request(PROMPT, variants, marks, max_tokens=4, keep_logits=True))
    res = run.run()
    assert res.rows[1].token_ids == res.rows[2].token_ids
    assert all(same_logits(step[1], step[2]) for step in run.logits)


def test_inherited_weights_by_hand_and_the_bias_they_give(engine):
    ids, marks = marks_of(engine)
    probs = engine.capture_attention(ids)
    mean = probs.astype(np.float64).mean(axis=(0, 1))
    by_hand = np.array([1.0 if j in marks else min(1.0, 3.0 * sum(mean[j, m] for m in marks)) for j in range(len(ids))])
    assert np.allclose(inherited_importance(probs, marks, 3.0), by_hand, atol=1e-6)
    lens = parse_inline("emphasis:strength=2,propagate=3").lenses[0]
    lens.ensure_prepared(engine, ids, marks)
    ctx = Ctx(layer=0, positions=mx.arange(len(ids)), prompt_len=len(ids), marks=tuple(marks),
              n_layers=engine.n_layers)
    bias = np.array(lens.attention_bias(ctx, engine.n_heads, len(ids)))[0, -1]  # last query's row
    assert np.allclose(bias, 2.0 * by_hand, atol=1e-5)
    assert (by_hand[max(marks) + 1 :] > 0).any()  # some later tokens did inherit


def test_propagation_raises_attention_on_the_inheriting_tokens(engine):
    ids, marks = marks_of(engine)
    weights = inherited_importance(engine.capture_attention(ids), marks, 3.0)
    heirs = [j for j in range(len(ids)) if j not in marks and weights[j] > 0.2]
    assert heirs
    shares = []
    for spec in ("emphasis:strength=2", "emphasis:strength=2,propagate=3"):
        probs = engine.capture_attention(ids, parse_inline(spec).lenses, marks=marks)
        shares.append(probs.mean(axis=(0, 1))[-1, heirs].sum())
    assert shares[1] > shares[0] + 0.05  # measured: 0.79 -> 0.87 of the last query's attention


def test_attention_on_text_shows_inherited_tokens_with_a_second_marker():
    from lenscope.views.attention_text import AttentionText

    text = AttentionText(["a", "b", "c", "d"], np.array([0.1, 0.2, 0.3, 0.4]), query=3, marked=[0],
                         inherited=[0, 2]).text()
    styles = {text.plain[s.start:s.end]: s.style for s in text.spans}
    assert styles["a"].underline and not styles["a"].overline  # marked: the first marker
    assert styles["c"].overline and styles["c"].italic  # inherited: the second
    assert not styles["b"].overline


async def test_tui_marks_the_tokens_propagation_reached():
    from tui_helpers import app, ready

    from lenscope.tui.widgets.attention_text_view import AttentionTextView

    a = app(marks=["blue"], lens_specs=["emphasis:strength=2,propagate=3", "emphasis:strength=2"])
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        a.main.query_one("#max-tokens").value = "3"
        await pilot.press("ctrl+r")
        await a.workers.wait_for_complete()
        await pilot.pause()
        inherited = a.main.query_one(AttentionTextView).inherited
        assert set(inherited) == {1}  # only the propagating row
        lens = a.ws.variants[0].lenses[0]
        assert inherited[1] == [int(j) for j in np.flatnonzero(lens.prepared()["inherited"] >= 0.05)]
        assert set(inherited[1]) - set(a.ws.marks)  # more than the marks themselves
