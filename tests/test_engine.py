"""The comparison engine on the bundled model: exactness, isolation, capture, restore."""

import mlx.core as mx
import mlx_lm
import numpy as np
import pytest
from mlx.utils import tree_flatten
from numerics import same_logits

from lenscope.core.engine import Request
from lenscope.errors import BadInput
from lenscope.lenses.base import HookPoint, Lens, Variant
from lenscope.lenses.spec import parse_inline

PROMPTS = [
    "one day, tom went to the park.",
    "the cup is red. anna saw a big dog. question: what color is the cup? answer: the cup is",
    "in the morning, lily was happy.",
]


def _snapshot(model) -> dict[str, bytes]:
    return {k: bytes(np.array(v)) for k, v in tree_flatten(model.parameters())}


@pytest.mark.parametrize("prompt", PROMPTS)
def test_baseline_equals_mlx_lm_greedy(engine, prompt):
    with engine.lock:  # mlx-lm runs the shared model: under its lock like any other caller
        want = [r.token for r in mlx_lm.stream_generate(engine.model, engine.tokenizer, prompt, max_tokens=16)]
    got = engine.compare(Request(prompt, max_tokens=16)).run().rows[0]
    eos = engine.eos_ids
    assert got.token_ids == [t for t in want if t not in eos]


@pytest.mark.parametrize("temperature,seed", [(0.0, 0), (0.8, 1), (0.8, 7), (1.5, 3)])
def test_identity_row_equals_baseline(engine, temperature, seed):
    run = engine.compare(Request(PROMPTS[0], [parse_inline("identity")], max_tokens=20,
                                 temperature=temperature, seed=seed))
    res = run.run()
    assert res.rows[1].token_ids == res.rows[0].token_ids
    assert res.rows[1].first_divergence is None
    assert all(k == 0.0 for k in res.rows[1].kl_from_baseline)


def test_sampling_depends_on_seed(engine):
    texts = {tuple(engine.compare(Request(PROMPTS[0], max_tokens=20, temperature=1.0, seed=s)).run().rows[0].token_ids)
             for s in range(4)}
    assert len(texts) > 1


def test_lens_on_row_1_leaves_row_0_untouched(engine):
    prompt = PROMPTS[1]
    ids = engine.encode(prompt)
    marks = engine.tokens.marks_from_text(prompt, ids, ["red"])
    alone = engine.compare(Request(prompt, [parse_inline("identity")], marks, max_tokens=12, keep_logits=True))
    alone.run()
    lensed = engine.compare(Request(prompt, [parse_inline("emphasis:strength=6+steer:strength=30,token=sad")],
                                    marks, max_tokens=12, keep_logits=True))
    res = lensed.run()
    assert res.rows[0].token_ids == alone.result.rows[0].token_ids
    assert all(same_logits(a[0], b[0]) for a, b in zip(alone.logits, lensed.logits))
    # and the lens really changed row 1
    assert any(not same_logits(a[1], b[1]) for a, b in zip(alone.logits, lensed.logits))


def test_parameters_byte_identical_after_runs(engine):
    before = _snapshot(engine.model)
    engine.compare(Request(PROMPTS[1], [parse_inline("emphasis:strength=5"), parse_inline("steer:token=dog")],
                           [2], max_tokens=6)).run()
    engine.capture_attention(engine.encode(PROMPTS[0]), [parse_inline("steer:token=cat").lenses[0]])

    class Boom(Lens):
        kind = "boom"

        def hooks(self, n_layers):
            return {HookPoint("residual", {1}): self.residual}

        def residual(self, ctx, h):
            if ctx.step >= 3:
                raise RuntimeError("boom")
            return h * 1.5

    with pytest.raises(BadInput, match="failed: RuntimeError: boom"):
        engine.compare(Request(PROMPTS[0], [Variant("boom", [Boom()])], max_tokens=10)).run()
    assert _snapshot(engine.model) == before
    # hooks are gone: the model is the plain model class again and generates as before
    assert all(type(layer).__name__ == "TransformerBlock" for layer in engine.model.layers)
    res = engine.compare(Request(PROMPTS[0], max_tokens=8)).run()
    with engine.lock:
        want = [r.token for r in mlx_lm.stream_generate(engine.model, engine.tokenizer, PROMPTS[0], max_tokens=8)]
    assert res.rows[0].token_ids == [t for t in want if t not in engine.eos_ids]


def _explicit_attention(model, ids, layer):
    """softmax(QK^T/sqrt(d) + causal mask) from the layer's own weights, by hand."""
    h = model.model.embed_tokens(mx.array([ids]))
    for blk in model.model.layers[:layer]:
        h = blk(h, mask="causal", cache=None)
    attn = model.model.layers[layer].self_attn
    x = model.model.layers[layer].input_layernorm(h)
    L = len(ids)
    q = attn.q_proj(x).reshape(1, L, attn.n_heads, -1).transpose(0, 2, 1, 3)
    k = attn.k_proj(x).reshape(1, L, attn.n_kv_heads, -1).transpose(0, 2, 1, 3)
    q, k = attn.rope(q), attn.rope(k)
    k = mx.repeat(k, attn.n_heads // attn.n_kv_heads, axis=1)
    d = q.shape[-1]
    scores = (q @ k.transpose(0, 1, 3, 2)) / np.sqrt(d)
    causal = np.triu(np.full((L, L), -np.inf), 1)
    scores = np.array(scores[0]) + causal
    scores = scores - scores.max(-1, keepdims=True)
    p = np.exp(scores)
    return p / p.sum(-1, keepdims=True)


def test_captured_attention_matches_explicit_softmax(engine):
    ids = engine.encode(PROMPTS[1])
    captured = engine.capture_attention(ids)
    assert captured.shape[0] == engine.n_layers and captured.shape[2:] == (len(ids), len(ids))
    np.testing.assert_allclose(captured.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.triu(captured, 1) == 0)
    for layer in (0, engine.n_layers - 1):
        np.testing.assert_allclose(captured[layer], _explicit_attention(engine.model, ids, layer), atol=1e-4)


def test_emphasis_raises_attention_on_marks(engine):
    prompt = PROMPTS[1]
    ids = engine.encode(prompt)
    marks = engine.tokens.marks_from_text(prompt, ids, ["red"])
    res = engine.compare(Request(prompt, [parse_inline("emphasis:strength=3")], marks, max_tokens=4)).run()
    assert res.rows[1].attention_to_marks[0] > res.rows[0].attention_to_marks[0] + 0.05
    captured = engine.capture_attention(ids, parse_inline("emphasis:strength=3").lenses, marks=marks)
    plain = engine.capture_attention(ids, marks=marks)
    assert captured[:, :, -1, marks].sum() > plain[:, :, -1, marks].sum()


def test_attention_to_marks_equals_captured_share(engine):
    prompt = PROMPTS[1]
    ids = engine.encode(prompt)
    marks = engine.tokens.marks_from_text(prompt, ids, ["cup"])
    res = engine.compare(Request(prompt, [], marks, max_tokens=3)).run()
    full = engine.capture_attention(ids + res.rows[0].token_ids[:2])
    P = len(ids)
    for t in range(2):
        share = full[:, :, P - 1 + t, marks].sum(-1).mean()
        assert abs(res.rows[0].attention_to_marks[t] - share) < 1e-4


def test_nan_row_stops_others_continue(engine):
    class Poison(Lens):
        kind = "poison"

        def hooks(self, n_layers):
            return {HookPoint("residual", {0}): self.residual}

        def residual(self, ctx, h):
            return h * (mx.nan if ctx.step >= 2 else 1.0)

    res = engine.compare(Request(PROMPTS[0], [Variant("poison", [Poison()])], max_tokens=8,
                                 stop_at_eos=False)).run()
    assert res.rows[1].finite is False and len(res.rows[1].token_ids) == 2
    assert res.rows[0].finite and len(res.rows[0].token_ids) == 8


def test_streaming_and_cancel(engine):
    run = engine.compare(Request(PROMPTS[0], [parse_inline("identity")], max_tokens=20, stop_at_eos=False))
    seen = []
    for step in run.steps():
        seen.append(step.token_ids)
        if step.index == 4:
            run.cancel()
    assert len(seen) == 5 and run.result.cancelled
    assert len(run.result.rows[0].token_ids) == 5


def test_marks_from_text_and_errors(engine):
    prompt = "the key is blue. the key is old."
    ids = engine.encode(prompt)
    marks = engine.tokens.marks_from_text(prompt, ids, ["key"])
    assert len(marks) == 2 and all("key" in engine.token_text(ids[i]) for i in marks)
    with pytest.raises(BadInput, match="does not occur"):
        engine.tokens.marks_from_text(prompt, ids, ["zebra"])
    with pytest.raises(BadInput, match="outside the prompt"):
        engine.compare(Request(prompt, marks=[999]))


def test_hidden_states_record_and_hook_state_isolated(engine):
    ids = engine.encode(PROMPTS[0])
    hs = engine.hidden_states(ids, [-1, 0, engine.n_layers - 1])
    assert set(hs) == {-1, 0, engine.n_layers - 1}
    assert hs[0].shape == (len(ids), engine.hidden_size)
    # the final hidden state, normed and unembedded, gives the model's logits
    with engine.lock:
        logits = engine.model(mx.array([ids]))[0]
    manual = engine.model.model.norm(hs[engine.n_layers - 1][None])
    manual = engine.model.model.embed_tokens.as_linear(manual)[0]
    np.testing.assert_allclose(np.array(manual), np.array(logits), atol=1e-4)


@pytest.mark.parametrize("heads,kv", [(8, 8), (9, 3), (8, 2)])
def test_decode_attention_equals_sdpa(heads, kv):
    """The tracked decode path (one softmax gives the output and the marks' share) computes
    the same attention as MLX's fused kernel, grouped heads included."""
    import mlx.core as mx

    from lenscope.core.hooks import _decode_attention

    mx.random.seed(0)
    q, k, v = mx.random.normal((2, heads, 1, 16)), mx.random.normal((2, kv, 7, 16)), mx.random.normal((2, kv, 7, 16))
    bias = mx.random.normal((2, 1, 1, 7))
    probs, out = _decode_attention(q, k, v, 0.25, bias)
    want = mx.fast.scaled_dot_product_attention(q, k, v, scale=0.25, mask=bias)
    assert mx.allclose(out, want, atol=1e-5).item()
    assert mx.allclose(probs.sum(-1), mx.ones((2, heads, 1)), atol=1e-5).item()


def test_prefill_reuses_prompts_read_before(engine):
    """A plain run starts from the longest prompt the engine has read: same logits as reading
    it afresh, the stored caches untouched by later runs, and never with marks or an inside lens."""
    from lenscope.core.prefixes import Prefixes

    short, long = PROMPTS[1], PROMPTS[1] + " red. and the dog is"
    temp = parse_inline("temperature:start=0,end=0")  # a step lens: the prefill stays plain

    def run(prompt, variants=(), marks=()):
        comparison = engine.compare(Request(prompt, list(variants), list(marks), max_tokens=5, stop_at_eos=False,
                                            keep_logits=True))
        result = comparison.run()
        return result, np.stack(comparison.logits)

    engine.prefixes = Prefixes()
    fresh_short = run(short)
    engine.prefixes = Prefixes()
    fresh_long = run(long)
    engine.prefixes = Prefixes()
    first = run(short)
    assert first[0].timing["prefill_reused_tokens"] == 0
    again = run(short, [temp])  # the whole prompt was read: no forward at all before the first step
    assert again[0].timing["prefill_reused_tokens"] == len(first[0].prompt_token_ids)
    longer = run(long)
    assert longer[0].timing["prefill_reused_tokens"] == len(first[0].prompt_token_ids)
    last = run(short)  # after a longer run decoded on top of the stored cache
    for got, want in ((first, fresh_short), (again, fresh_short), (longer, fresh_long), (last, fresh_short)):
        assert got[0].rows[0].token_ids == want[0].rows[0].token_ids
        np.testing.assert_allclose(got[1][:, 0], want[1][:, 0], atol=1e-4, rtol=1e-4)
    assert again[0].rows[1].token_ids == again[0].rows[0].token_ids
    assert run(short, marks=[1, 2])[0].timing["prefill_reused_tokens"] == 0
    assert run(short, [parse_inline("steer:strength=4,token=happy")])[0].timing["prefill_reused_tokens"] == 0
