"""The lens library: neutral settings are exact no-ops, real settings change the computation,
and the math each lens claims holds."""

import json

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten
from numerics import same_logits

from lenscope.core.engine import Request
from lenscope.core.hooks import HookState, collect, hooked
from lenscope.errors import BadInput
from lenscope.lenses import directions
from lenscope.lenses.base import Variant
from lenscope.lenses.probe import Probe
from lenscope.lenses.registry import KINDS
from lenscope.lenses.rotations import grouped_matrix, plane_rotation, slerp_to
from lenscope.lenses.spec import parse, parse_inline
from lenscope.lenses.weights import gaussian_blur
from lenscope.storage.files import save_direction

PROMPT = "the hat is green. tom saw a big dog. question: what color is the hat? answer: the hat is"

# (neutral spec, active spec) for every kind: the first must reproduce the baseline exactly
CASES = {
    "identity": ("identity", None),
    "emphasis": ("emphasis:strength=0", "emphasis:strength=4"),
    "hold": ("hold:ceiling=0", "hold:target=0.5,ceiling=8"),
    "decay": ("decay:strength=0", "decay:strength=2,scope=all"),
    "topk-attention": ("topk-attention:n=0", "topk-attention:n=2"),
    "steer": ("steer:strength=0,token=happy", "steer:strength=40,token=happy"),
    "ablate": ("ablate:fraction=0,token=green", "ablate:fraction=1,token=green,layers=0|1|2|3"),
    "slerp": ("slerp:t=0,token=happy", "slerp:t=0.6,token=happy"),
    "rotate": ("rotate:angle=0,a=happy,b=sad", "rotate:angle=90,a=happy,b=sad"),
    "grouped": ("grouped:angle=0,scale=1", "grouped:angle=90,scale=1.5"),
    "path": ("path:t=0,concepts=happy|sad", "path:t=0.7,concepts=happy|sad,steps=2"),
    "patch": ("patch:mode=reverse,span=3:4", "patch:mode=replace,source=the hat is red.,span=0:5,layers=-1"),
    "blur": ("blur:sigma=0", "blur:sigma=4,layers=0|1|2|3"),
    "noise": ("noise:scale=0", "noise:scale=1,layers=0|1|2|3"),
    "head-scale": ("head-scale:scale=1,heads=0|1", "head-scale:scale=0,heads=0|1|2|3|4|5|6|7"),
    "svd-remove": ("svd-remove:k=0", "svd-remove:k=8,layers=0|1|2|3"),
    "temperature": ("temperature:start=0,end=0", "temperature:start=3,end=3"),
    "explore": ("explore:exclude_top=0", "explore:exclude_top=1"),
    "bias": ("bias:words=happy,value=0", "bias:words=happy,value=50"),
    "scale": ("scale:factor=1@0|1@9", "scale:factor=3,layers=0|1"),
    "constrain": ('constrain:regex="[\\s\\S]*"', 'constrain:regex=" (blue|purple)\\."'),
    "force": ("force:text=", 'force:text=" purple"'),
}
# lenses read from files made for one model (lenscope fit, mlx_lm.lora): their own tests make
# those files for the model under test (test_fit.py)
FILE_KINDS = {"fitted", "adapter"}
NOT_NEUTRAL_BY_DECLARATION = {"patch", "temperature", "constrain"}  # no-ops by their values, not by is_neutral
MASKS = {"constrain"}  # even an allow-all grammar bans special tokens: allowed logits must stay exact


def test_every_kind_has_a_case():
    assert set(CASES) | FILE_KINDS == set(KINDS) and not set(CASES) & FILE_KINDS


@pytest.mark.parametrize("kind", sorted(CASES))
def test_neutral_is_baseline_and_active_changes(engine, kind):
    neutral, active = CASES[kind]
    ids = engine.encode(PROMPT)
    marks = engine.tokens.marks_from_text(PROMPT, ids, ["green"])
    variants = [parse_inline(neutral)] + ([parse_inline(active)] if active else [])
    res = engine.compare(Request(PROMPT, variants, marks, max_tokens=8, temperature=0.0, seed=1,
                                 keep_logits=True))
    res.run()
    rows = res.result.rows
    assert rows[1].token_ids == rows[0].token_ids, f"{neutral} changed the output"
    if kind in MASKS:
        kept = [np.isfinite(step[1]) for step in res.logits]
        assert all(k.sum() > 500 for k in kept), f"{neutral} banned ordinary tokens"  # of 660 (byte pieces go)
        assert all(same_logits(step[1][k], step[0][k]) for step, k in zip(res.logits, kept))
    else:
        assert all(same_logits(step[1], step[0]) for step in res.logits), f"{neutral} changed the logits"
    if active:
        # a lens that does nothing gives the baseline's logits exactly; sampling lenses
        # (temperature) leave the logits and change the tokens
        moved = any(not same_logits(step[2], step[0]) for step in res.logits)
        assert moved or rows[2].token_ids != rows[0].token_ids, f"{active} changed nothing"


@pytest.mark.parametrize("kind", sorted(CASES))
def test_neutral_lens_installs_no_hook(engine, kind):
    neutral, active = CASES[kind]
    lens = parse_inline(neutral).lenses[0]
    assert lens.is_neutral() is (kind not in NOT_NEUTRAL_BY_DECLARATION)
    if lens.is_neutral():
        assert not any(collect([[lens]], engine.n_layers).values())
    if active:
        assert not parse_inline(active).lenses[0].is_neutral()


@pytest.mark.parametrize("spec,neutral", [
    ("emphasis:strength=0@0|3@5|0@10", False),  # zero at both ends, not in between
    ("emphasis:strength=0@0|0@7", True),
    ("rotate:angle=360,a=x,b=y", True),
    ("rotate:angle=0@0|360@10,a=x,b=y", False),  # passes 180 on the way
    ("scale:factor=1@0|2@4", False),
    ("grouped:angle=-360,scale=1", True),
])
def test_neutral_means_at_every_step(spec, neutral):
    assert parse_inline(spec).lenses[0].is_neutral() is neutral


def test_scale_matches_hand_finished_forward(engine):
    """Multiply a captured hidden state by the factor and finish the forward by hand."""
    layer, factor = 1, 0.5
    run = engine.compare(Request(PROMPT, [parse_inline(f"scale:layers={layer},factor={factor}")], max_tokens=1,
                                 keep_logits=True))
    run.run()
    ids = engine.encode(PROMPT)
    h = (engine.hidden_states(ids, [layer])[layer] * factor)[None]
    for blk in engine.model.model.layers[layer + 1 :]:
        h = blk(h, mask="causal", cache=None)
    logits = engine.model.model.embed_tokens.as_linear(engine.model.model.norm(h))[0, -1]
    np.testing.assert_allclose(np.array(logits), run.logits[0][1], atol=2e-4)
    assert not np.allclose(run.logits[0][1], run.logits[0][0], atol=1e-3)
    # keyframed: 1 (the identity) at step 0, so the first step is the baseline's exactly
    res = engine.compare(Request(PROMPT, [parse_inline("scale:factor=1@0|0.2@1,layers=0|1|2")], max_tokens=4,
                                 keep_logits=True))
    res.run()
    assert res.result.rows[1].kl_from_baseline[0] == pytest.approx(0.0, abs=1e-6)
    assert not same_logits(res.logits[1][1], res.logits[1][0])


def test_engine_offers_the_whole_probe(engine):
    members = {n for n in vars(Probe) if not n.startswith("_")} | set(Probe.__annotations__)
    assert members >= {"hidden_states", "other_model", "capture_attention", "n_layers"}
    assert [n for n in sorted(members) if not hasattr(engine, n)] == []


def test_slerp_keeps_norms_and_hits_endpoints():
    rng = np.random.default_rng(0)
    h = mx.array(rng.standard_normal((1, 5, 16)).astype(np.float32))
    d = mx.array(directions.unit(rng.standard_normal(16), "d"))
    norms = np.linalg.norm(np.array(h), axis=-1)
    for t in (0.0, 0.25, 0.5, 1.0):
        out = np.array(slerp_to(h, d, mx.full((5, 1), t)))
        np.testing.assert_allclose(np.linalg.norm(out, axis=-1), norms, rtol=1e-5)
    np.testing.assert_allclose(np.array(slerp_to(h, d, mx.zeros((5, 1)))), np.array(h), atol=1e-5)
    end = np.array(slerp_to(h, d, mx.ones((5, 1))))
    np.testing.assert_allclose(end, norms[..., None] * np.array(d), atol=1e-5)
    # the midpoint makes equal angles with both ends
    mid = np.array(slerp_to(h, d, mx.full((5, 1), 0.5)))[0]
    u = np.array(h)[0] / norms[0][:, None]
    cos_start = (mid * u).sum(-1) / np.linalg.norm(mid, axis=-1)
    cos_end = (mid @ np.array(d)) / np.linalg.norm(mid, axis=-1)
    np.testing.assert_allclose(cos_start, cos_end, atol=1e-5)


def test_rotations_are_orthogonal_and_compose():
    rng = np.random.default_rng(1)
    u = directions.unit(rng.standard_normal(12), "u")
    v = rng.standard_normal(12)
    v = directions.unit(v - (v @ u) * u, "v")
    u_, v_ = mx.array(u), mx.array(v)
    eye = mx.eye(12)

    def matrix(theta):
        return np.array(plane_rotation(eye, u_, v_, mx.full((12, 1), theta)))

    r = matrix(0.7)
    np.testing.assert_allclose(r @ r.T, np.eye(12), atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-5)
    np.testing.assert_allclose(matrix(0.3) @ matrix(0.4), r, atol=1e-5)
    np.testing.assert_allclose(matrix(2 * np.pi), np.eye(12), atol=1e-5)


def test_grouped_touches_only_its_groups():
    m = grouped_matrix(16, 4, (1, 3), 90.0, 2.0)
    x = np.random.default_rng(2).standard_normal(16).astype(np.float32)
    y = m @ x
    untouched = np.r_[0:4, 8:12]
    np.testing.assert_array_equal(y[untouched], x[untouched])
    assert not np.allclose(y[4:8], x[4:8])
    np.testing.assert_allclose(np.linalg.norm(y[4:8]), 2.0 * np.linalg.norm(x[4:8]), rtol=1e-5)
    np.testing.assert_array_equal(grouped_matrix(16, 4, None, 0.0, 1.0), np.eye(16))


def test_blur_width_zero_is_identity_and_blur_smooths():
    w = np.random.default_rng(3).standard_normal((32, 24)).astype(np.float32)
    np.testing.assert_array_equal(gaussian_blur(w, 0.0, 0), w)
    b = gaussian_blur(w, 2.0, 1)
    assert np.abs(np.diff(b, axis=1)).mean() < 0.5 * np.abs(np.diff(w, axis=1)).mean()
    np.testing.assert_allclose(b.mean(), w.mean(), atol=0.05)


def test_weight_restore_byte_exact_after_100_cycles(engine):
    before = {k: bytes(np.array(v)) for k, v in tree_flatten(engine.model.parameters())}
    variant = parse_inline("blur:sigma=2,layers=0|1+noise:scale=0.5+svd-remove:k=2,layers=3")
    engine.prepare([variant])
    ids = engine.encode(PROMPT)
    classes = [type(m) for _, m in engine.model.named_modules()]
    for _ in range(100):
        state = HookState([[], variant.lenses], engine.n_layers, len(ids))
        with engine.lock, hooked(engine.model, state):
            pass
    state = HookState([[], variant.lenses], engine.n_layers, len(ids))
    with engine.lock, hooked(engine.model, state):
        state.begin(mx.arange(len(ids)))
        out = engine.model(mx.array([ids, ids]))
    assert not np.allclose(np.array(out[0]), np.array(out[1]))  # the lens row really differs
    assert [type(m) for _, m in engine.model.named_modules()] == classes
    assert {k: bytes(np.array(v)) for k, v in tree_flatten(engine.model.parameters())} == before


def test_steering_matches_hand_finished_forward(engine):
    """Add the vector to a captured hidden state and finish the forward by hand."""
    layer, strength = 1, 12.0
    variant = parse_inline(f"steer:layers={layer},strength={strength},positive=tom was happy.,negative=tom was sad.")
    run = engine.compare(Request(PROMPT, [variant], max_tokens=1, keep_logits=True))
    run.run()
    lensed = run.logits[0][1]
    d = np.array(variant.lenses[0].direction[layer])
    ids = engine.encode(PROMPT)
    h = engine.hidden_states(ids, [layer])[layer] + mx.array(strength * d)[None]
    h = h[None]
    for blk in engine.model.model.layers[layer + 1 :]:
        h = blk(h, mask="causal", cache=None)
    logits = engine.model.model.embed_tokens.as_linear(engine.model.model.norm(h))[0, -1]
    np.testing.assert_allclose(np.array(logits), lensed, atol=2e-4)
    # and the direction is the normalised difference of the two prompts' last-token states
    pos = np.array(engine.hidden_states(engine.encode("tom was happy."), [layer])[layer])[-1]
    neg = np.array(engine.hidden_states(engine.encode("tom was sad."), [layer])[layer])[-1]
    np.testing.assert_allclose(d, (pos - neg) / np.linalg.norm(pos - neg), atol=1e-5)


def test_keyframes_interpolate(engine):
    lens = parse_inline("steer:strength=0@0|10@4,token=happy").lenses[0]
    np.testing.assert_allclose(lens.value_at("strength", np.array([0, 2, 4, 9])), [0, 5, 10, 10])
    # strength 0 at step 0: the first token is the baseline's, later ones may move
    res = engine.compare(Request(PROMPT, [parse_inline("steer:strength=0@0|60@1,token=happy")],
                                 max_tokens=4)).run()
    assert res.rows[1].kl_from_baseline[0] == pytest.approx(0.0, abs=1e-5)
    assert res.rows[1].token_ids != res.rows[0].token_ids


def test_slerp_points_expand_to_rows():
    rows = parse("slerp:t=1,points=5,token=happy")  # equidistant in [0, t]
    assert [round(v.lenses[0].t, 2) for v in rows] == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_auto_heads_pick_low_attention_heads(engine):
    ids = engine.encode(PROMPT)
    marks = engine.tokens.marks_from_text(PROMPT, ids, ["green"])
    variant = parse_inline("emphasis:strength=3,auto_heads=2")
    engine.prepare([variant], ids, marks)
    auto = variant.lenses[0].prepared()["auto_heads"]
    assert set(auto) == set(range(engine.n_layers)) and all(len(h) == 2 for h in auto.values())
    probs = engine.capture_attention(ids)
    share = probs[:, :, min(marks):, :][..., marks].sum(-1).mean(-1)
    for layer, heads in auto.items():
        others = [h for h in range(share.shape[1]) if h not in heads]
        assert share[layer, heads].max() <= share[layer, others].min() + 1e-6


def test_topk_attention_keeps_n_keys(engine):
    ids = engine.encode(PROMPT)
    probs = engine.capture_attention(ids, parse_inline("topk-attention:n=3").lenses)
    assert ((probs > 0).sum(-1) <= 3).all() and ((probs > 0).sum(-1)[..., 5:] == 3).all()


def test_lens_files_toml_json_and_errors(tmp_path):
    toml = tmp_path / "v.toml"
    toml.write_text('[[variant]]\nname = "focus"\n[[variant.lens]]\nkind = "emphasis"\nstrength = 2.5\n'
                    '[[variant.lens]]\nkind = "steer"\ntoken = "happy"\nlayers = [1, 2]\n'
                    '[[variant]]\nname = "warm"\n[[variant.lens]]\nkind = "temperature"\nstart = 1.5\n')
    vs = parse(str(toml))
    assert [v.name for v in vs] == ["focus", "warm"]
    assert vs[0].lenses[1].layers == (1, 2) and vs[0].lenses[0].strength == 2.5
    js = tmp_path / "one.json"
    js.write_text(json.dumps({"kind": "emphasis", "strength": [[0, 0], [10, 4]]}))
    (v,) = parse(str(js))
    assert v.lenses[0].value_at("strength", 5) == pytest.approx(2.0)
    bad = tmp_path / "bad.toml"
    bad.write_text('[[variant]]\nname = "x"\n[[variant.lens]]\nkind = "emphasis"\nstrenght = 1\n')
    with pytest.raises(BadInput, match=r"bad.toml' variant 'x' lens 1: lens 'emphasis' has no key 'strenght'"):
        parse(str(bad))
    broken = tmp_path / "broken.toml"
    broken.write_text("[[variant]\n")
    with pytest.raises(BadInput, match="not valid TOML"):
        parse(str(broken))


def test_direction_files_never_unpickle(tmp_path, engine):
    d = np.random.default_rng(0).standard_normal(engine.hidden_size).astype(np.float32)
    path = save_direction(tmp_path / "d.npy", directions.unit(d, "d"))
    assert np.allclose(directions.load(str(path), engine.hidden_size) @ directions.unit(d, "d"), 1.0)
    st = save_direction(tmp_path / "d.safetensors", directions.unit(d, "d"))
    assert np.allclose(directions.load(str(st), engine.hidden_size), directions.unit(d, "d"))
    pickled = tmp_path / "evil.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(BadInput, match="unreadable"):
        directions.load(str(pickled), engine.hidden_size)
    with pytest.raises(BadInput, match="hidden size"):
        directions.load(str(path), engine.hidden_size + 1)
    res = engine.compare(Request(PROMPT, [parse_inline(f"steer:file={path},strength=30")], max_tokens=3)).run()
    assert res.rows[1].kl_from_baseline[0] > 0


def test_patch_from_same_prompt_and_model_is_neutral_and_swap_acts(engine):
    from lenscope.models import DEMO_MODEL_DIR

    n = len(engine.encode(PROMPT))
    specs = [f"patch:source={PROMPT},span=0:{n}", f"patch:source={PROMPT},span=0:{n},model={DEMO_MODEL_DIR}",
             "patch:mode=swap,span=1:3,other=5:7,layers=0|1|2"]
    res = engine.compare(Request(PROMPT, [parse_inline(s) for s in specs], max_tokens=6)).run()
    assert res.rows[1].token_ids == res.rows[0].token_ids == res.rows[2].token_ids
    assert res.rows[3].kl_from_baseline[0] > 1e-5
    with pytest.raises(BadInput, match="same length"):
        engine.compare(Request(PROMPT, [parse_inline("patch:mode=swap,span=1:3,other=5:8")]))


def test_batched_capture_equals_row_by_row(engine):
    """Every kind's active lens captured in one padded batch (rows of different lengths)
    gives each row's attention and hidden states as its own forward does."""
    from lenscope.core.capture import capture_rows

    variants = [parse_inline(active) for _, active in CASES.values() if active]
    ids = engine.encode(PROMPT)
    marks = engine.tokens.marks_from_text(PROMPT, ids, ["green"])
    run = engine.compare(Request(PROMPT, variants, marks, max_tokens=6, temperature=0.0, seed=1))
    result = run.run()
    result.rows[1].token_ids, result.rows[1].tokens = result.rows[1].token_ids[:2], result.rows[1].tokens[:2]  # shorter
    batched = capture_rows(engine, result, run.variants)
    for r, cap in enumerate(batched):
        alone = capture_rows(engine, result, run.variants, [r])[0]
        assert cap.ids == alone.ids and cap.attention.shape == alone.attention.shape
        np.testing.assert_allclose(cap.attention, alone.attention, atol=2e-5, err_msg=cap.name)
        np.testing.assert_allclose(cap.hidden, alone.hidden, atol=2e-4, rtol=1e-4, err_msg=cap.name)


def test_hold_keeps_the_marks_share_at_its_target(engine):
    """hold's bias is exact: each head's share on the marks is at least the target at every step
    (exactly it where the plain share was below), and the fresh target is the plain model's
    share from the queries right after the marks."""
    ids = engine.encode(PROMPT)
    marks = engine.tokens.marks_from_text(PROMPT, ids, ["green"])
    variants = [parse_inline("hold:target=0.4,ceiling=50"), parse_inline("hold:ceiling=50"),
                parse_inline("hold:target=0.4,ceiling=0.5")]
    res = engine.compare(Request(PROMPT, variants, marks, max_tokens=6, stop_at_eos=False)).run()
    base, held, fresh, capped = (r.attention_to_marks for r in res.rows)
    assert max(base) < 0.4
    assert all(0.4 - 1e-3 <= a for a in held) and min(held) < 0.45  # heads below 0.4 are lifted to it
    assert all(b < c < a for b, c, a in zip(base, capped, held))  # the ceiling binds
    lens = variants[1].lenses[0]
    probs = engine.capture_attention(ids)
    after = list(range(max(marks) + 1, max(marks) + 5))
    np.testing.assert_allclose(lens.fresh, probs[:, :, after][..., marks].sum(-1).mean(-1), atol=1e-6)
    assert all(f >= b - 1e-6 for f, b in zip(fresh, base))
    # later queries give the marks at least what their head gave them fresh (all but the rare
    # head, e.g. one held by an attention sink, whose share is below e^-50: there the ceiling binds)
    from lenscope.core.capture import capture_rows

    cap = capture_rows(engine, res, [Variant("baseline")] + variants, [2])[0]
    later = cap.attention[:, :, max(marks) + 1 :][..., marks].sum(-1)  # (layers, H, queries)
    assert (later >= lens.fresh[:, :, None] - 1e-4).mean() > 0.98
    assert np.isclose(later, lens.fresh[:, :, None], atol=1e-4).mean() > 0.3  # lifted to exactly it, often


def test_batched_capture_goes_in_groups_that_fit_the_capture_limit(engine, monkeypatch):
    from lenscope.core import budget
    from lenscope.core import engine as engine_module

    ids = engine.encode(PROMPT)
    rows = [(ids, parse_inline(spec)) for spec in ("identity", "emphasis:strength=4", "steer:strength=40,token=happy")]
    alone = [engine.inspect_rows([row], prompt_len=len(ids))[0] for row in rows]
    one = budget.capture_bytes(budget.model_sizes(engine.model), len(ids), engine.n_layers)
    calls = []
    real = engine_module.hooked
    monkeypatch.setattr(engine_module, "CAPTURE_MAX_BYTES", 2 * one + 1)  # two rows at a time fit
    monkeypatch.setattr(engine_module, "hooked", lambda model, state: calls.append(len(state.rows)) or real(model, state))
    grouped = engine.inspect_rows(rows, prompt_len=len(ids))
    assert calls == [2, 1]
    for (a, h), (a1, h1) in zip(grouped, alone):
        np.testing.assert_allclose(a, a1, atol=2e-5)
        np.testing.assert_allclose(h, h1, atol=2e-4, rtol=1e-4)
