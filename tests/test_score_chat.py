"""`lenscope score` and chat mode, against computations done independently here."""

from __future__ import annotations

import json
import math

import mlx.core as mx
import numpy as np
import pytest

from lenscope.chat.templates import apply
from lenscope.core.engine import Request
from lenscope.core.logprob import score
from lenscope.errors import BadInput
from lenscope.lenses.spec import parse

PROMPT = "the key is blue. one day, tom went to the park. question: what color is the key? answer: the key is"


def test_score_equals_a_plain_forward(engine):
    p_ids, c_ids, rows = score(engine, PROMPT, " blue. then tom went home.")
    ids = p_ids + c_ids
    with engine.lock:
        logits = engine.model(mx.array([ids]))[0].astype(mx.float32)
    lp = np.array(logits - mx.logsumexp(logits, axis=-1, keepdims=True))
    want = [lp[len(p_ids) - 1 + t, c] for t, c in enumerate(c_ids)]
    np.testing.assert_allclose(rows[0].token_logprobs, want, atol=1e-4)


def test_score_agrees_with_generation(engine):
    """Teacher-forcing a row's own greedy output gives the probabilities generation saw."""
    variants = parse("emphasis:strength=2")
    gen = engine.compare(Request(PROMPT, variants, marks=[3], max_tokens=6, stop_at_eos=False)).run()
    for r, row in enumerate(gen.rows):
        cont = engine.tokenizer.decode(row.token_ids)
        _, c_ids, rows = score(engine, PROMPT, cont, variants, marks=[3])
        if c_ids != row.token_ids:
            continue  # decoding then re-encoding may merge tokens differently; nothing to compare
        got = np.exp(rows[r].token_logprobs)
        np.testing.assert_allclose(got, [alts[0].prob for alts in row.top], rtol=1e-3, atol=1e-5)


def test_score_rows_identity_equal_and_lens_differs(engine):
    _, _, rows = score(engine, PROMPT, " blue.", parse("identity") + parse("emphasis:strength=3"), marks=[3])
    assert rows[1].token_logprobs == pytest.approx(rows[0].token_logprobs, abs=1e-6)
    assert abs(rows[2].logprob - rows[0].logprob) > 1e-3


def test_score_bias_moves_the_score_and_json_stays_strict(engine, run_cli):
    from lenscope.core.logprob import RowScore

    blue = engine.encode(" blue")[0]
    code, out, _ = run_cli("score", "--prompt", PROMPT, "--continuation", " blue", "--lens",
                           f"bias:tokens={blue},value=-1000", "--json")
    assert code == 0
    rows = json.loads(out)["rows"]
    assert rows[1]["logprob"] < rows[0]["logprob"] - 900
    banned = RowScore("x", None, [-1.0, float("-inf")]).to_json([1, 2], ["a", "b"])
    assert banned["logprob"] is None and banned["token_logprobs"] == [-1.0, None]
    json.dumps(banned, allow_nan=False)


@pytest.mark.parametrize("args,msg", [
    (["--continuation", ""], "--continuation: empty"),
    (["--continuation", "x", "--system", "be brief"], "--system needs --chat"),
])
def test_score_bad_input(run_cli, args, msg):
    code, _, err = run_cli("score", "--prompt", PROMPT, *args)
    assert code == 2 and msg in err and len(err.strip().splitlines()) == 1


def test_chat_marks_only_the_users_text(engine):
    chat = apply(engine.tokenizer, "what color is the user's key?", system="the user likes red")
    assert chat.text.count("user") >= 2  # the template and the system text say "user" too
    ids = engine.encode(chat.text)
    marks = engine.tokens.marks_from_text(chat.text, ids, ["user"], chat.user_span)
    spans = engine.tokens.token_spans(chat.text, ids)
    a, b = chat.user_span
    assert marks and all(spans[m][0] < b and spans[m][1] > a for m in marks)
    with pytest.raises(BadInput, match="does not occur"):
        engine.tokens.marks_from_text(chat.text, ids, ["<|assistant|>"], chat.user_span)


def test_generate_chat_applies_the_template(run_cli):
    code, out, _ = run_cli("generate", "--chat", "--prompt", "what color is the sky?", "--max-tokens", "2", "--json")
    data = json.loads(out)
    assert code == 0 and data["prompt"].startswith("<|user|>what color is the sky?")
    assert data["prompt_tokens"][0] == "<|user|>" and data["prompt_tokens"][-1] == "<|assistant|>"


def test_logprob_math_is_natural_log(engine):
    _, _, rows = score(engine, PROMPT, " blue")
    assert rows[0].logprob <= 0 and math.isfinite(rows[0].logprob)


def test_chat_span_is_the_users_turn_even_for_text_the_template_repeats(engine):
    chat = apply(engine.tokenizer, "a")  # "a" also occurs in "<|assistant|>", after the user's turn
    a, b = chat.user_span
    assert chat.text[a:b] == "a" and chat.text[:a] == "<|user|>"
