"""Probabilities over a whole vocabulary keep float32's precision (core/numerics.py)."""

import mlx.core as mx
import numpy as np
import pytest

from lenscope.core.numerics import log_softmax, logsumexp


@pytest.mark.parametrize("vocab", [660, 49152, 262144])  # the demo model, SmolLM2, gemma 3
def test_log_probs_match_a_float64_reference(vocab):
    x = (np.random.default_rng(0).standard_normal((3, vocab)) * 4 + 5).astype(np.float32)
    x[1, :100] = -np.inf  # banned tokens
    x64 = x.astype(np.float64)
    m = x64.max(-1, keepdims=True)
    ref = np.log(np.exp(x64 - m).sum(-1, keepdims=True)) + m
    np.testing.assert_allclose(np.array(logsumexp(mx.array(x))), ref, rtol=0, atol=1e-5)
    lp = np.array(log_softmax(mx.array(x)))
    finite = np.isfinite(x)
    np.testing.assert_allclose(lp[finite], (x64 - ref)[finite], rtol=0, atol=1e-5)
    assert (lp[~finite] == -np.inf).all()


def test_all_banned_gives_minus_infinity_not_nan():
    out = np.array(logsumexp(mx.full((1, 300), -mx.inf)))
    assert out[0, 0] == -np.inf


def test_kl_and_logprobs_of_a_run_match_float64(engine):
    """A comparison's KL to the baseline, recomputed in float64 from its own kept logits."""
    from lenscope.core.engine import Request
    from lenscope.lenses.spec import parse_inline

    run = engine.compare(Request("the hat is green. the dog", [parse_inline("steer:strength=8,token=dog")],
                                 max_tokens=3, stop_at_eos=False, keep_logits=True))
    res = run.run()
    z = np.asarray(run.logits[0], np.float64)
    lp = z - (np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)) + z.max(-1, keepdims=True))
    kl = float((np.exp(lp[0]) * (lp[0] - lp[1])).sum())
    assert abs(res.rows[1].kl_from_baseline[0] - kl) < 1e-5
