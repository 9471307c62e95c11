"""The views' numbers (logit lens, rollout, head map, geometry, head roles) against
computations written independently here, their renderables, and their commands."""

import json

import mlx.core as mx
import numpy as np
import pytest
from rich.console import Console

from lenscope.core.capture import capture_row
from lenscope.core.engine import Request
from lenscope.lenses.spec import parse_inline
from lenscope.views import head_roles
from lenscope.views import hidden_states as geometry
from lenscope.views.attention import head_entropy, head_shares, rollout, token_weights
from lenscope.views.attention_text import AttentionText
from lenscope.views.head_map import HeadMap
from lenscope.views.hidden_states import geometry_json
from lenscope.views.logit_lens import logit_lens
from lenscope.views.logit_lens_table import LogitLensTable, pick_layers

PROMPT = "the key is blue. one day, tom went to the park. question: what color is the key? answer: the key is"


@pytest.fixture(scope="module")
def captured(engine):
    """A comparison with a baseline, an identity row and a steered row, each captured."""
    variants = [parse_inline("identity"), parse_inline("steer:layers=2,strength=30,token=happy")]
    ids = engine.encode(PROMPT)
    marks = [i for i, t in enumerate(ids) if engine.token_text(t).strip() == "blue"]
    run = engine.compare(Request(PROMPT, variants, marks, max_tokens=4), capture=True)
    result = run.run()
    return result, [capture_row(engine, result, run.variants, r) for r in range(3)]


def render(renderable, width=80, height=24) -> str:
    console = Console(width=width, height=height, record=True, color_system="truecolor")
    console.print(renderable, height=height)
    return console.export_text()


# -- logit lens ---------------------------------------------------------------------------

def test_logit_lens_last_layer_is_the_models_logits(engine, captured):
    _, caps = captured
    cap = caps[0]
    with engine.lock:
        logits = np.array(engine.model(mx.array([cap.ids]))[0].astype(mx.float32))
    lens = logit_lens(engine, cap.hidden, range(len(cap.ids)), top_k=3)
    assert np.array_equal(lens.top_ids[-1, :, 0], logits.argmax(-1))
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    assert np.allclose(lens.top_probs[-1, :, 0], probs.max(-1), atol=1e-5)


def test_logit_lens_decodes_each_layer_by_hand(engine, captured):
    """Final norm + unembedding written here, on the embeddings and a middle layer."""
    _, caps = captured
    cap = caps[0]
    norm, w = engine.model.model.norm, engine.unembedding_matrix()
    lens = logit_lens(engine, cap.hidden, [3, len(cap.ids) - 1], top_k=1, pinned=[5])
    for index in (0, 2):
        h = mx.array(cap.hidden[index, [3, len(cap.ids) - 1]])
        logits = np.array((norm(h) @ w.T).astype(mx.float32))
        assert lens.top_ids[index, :, 0].tolist() == logits.argmax(-1).tolist()
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        assert np.allclose(lens.pinned_probs[index, :, 0], p[:, 5], atol=1e-5)


def test_first_top1_layer():
    from lenscope.views.logit_lens import LogitLens

    top = np.array([[[7]], [[3]], [[9]], [[9]]])
    lens = LogitLens([0], top, np.ones_like(top, float), [], np.zeros((4, 1, 0)))
    assert lens.first_top1_layer(0, 9) == 2 and lens.first_top1_layer(0, 3) == 1
    assert lens.first_top1_layer(0, 4) is None


# -- attention: rollout, per-token weights, head map -----------------------------------

def test_rollout_equals_the_matrix_product(captured):
    _, caps = captured
    att = caps[0].attention
    t = att.shape[-1]
    expected = np.eye(t)
    for layer in range(att.shape[0]):
        a = np.zeros((t, t))
        for h in range(att.shape[1]):
            a += att[layer, h] / att.shape[1]
        a = 0.5 * a + 0.5 * np.eye(t)
        a = a / a.sum(axis=1)[:, None]
        expected = a @ expected
    got = rollout(att)
    assert np.allclose(got, expected, atol=1e-6)
    assert np.allclose(got.sum(-1), 1.0, atol=1e-6) and np.allclose(np.triu(got, 1), 0)
    for q in (0, t // 2, t - 1):
        assert np.allclose(token_weights(att, q, use_rollout=True), got[q], atol=1e-6)


def test_token_weights_modes(captured):
    _, caps = captured
    att = caps[0].attention
    q = att.shape[-1] - 1
    assert np.allclose(token_weights(att, q), att[:, :, q].mean(axis=(0, 1)))
    assert np.allclose(token_weights(att, q, layer=1), att[1, :, q].mean(axis=0))
    assert np.allclose(token_weights(att, q, layer=2, head=3), att[2, 3, q])


def test_head_shares_are_sums_over_the_marked_keys(captured):
    result, caps = captured
    att = caps[0].attention
    marks = result.marked_token_indices
    assert marks
    q = len(caps[0].ids) - 1
    shares = head_shares(att, marks, q)
    for layer in range(att.shape[0]):
        for h in range(att.shape[1]):
            assert shares[layer, h] == pytest.approx(sum(float(att[layer, h, q, m]) for m in marks), abs=1e-6)
    ent = head_entropy(att, q)
    p = att[1, 2, q, : q + 1].astype(np.float64)
    assert ent[1, 2] == pytest.approx(-sum(x * np.log(x) for x in p if x > 0), abs=1e-5)


def test_emphasis_raises_head_shares_on_the_marks(engine, captured):
    """The head map's 'lens minus baseline' on an emphasis row: at layer 0 (same input) every
    head gains on the marks; later layers, on other hidden states, mostly gain."""
    result, _ = captured
    run = engine.compare(Request(PROMPT, [parse_inline("emphasis:strength=3")], result.marked_token_indices,
                                 max_tokens=1), capture=True)
    res = run.run()
    base, lensed = (capture_row(engine, res, run.variants, r, hidden=False) for r in (0, 1))
    q = len(res.prompt_token_ids) - 1
    diff = head_shares(lensed.attention, res.marked_token_indices, q) - \
        head_shares(base.attention, res.marked_token_indices, q)
    assert (diff[0] > 0).all() and diff.mean() > 0.02 and (diff > 0).mean() > 0.8


# -- geometry -----------------------------------------------------------------------------

def test_geometry_identity_is_one_and_steering_moves_from_its_layer(captured):
    _, caps = captured
    cos, ratio = geometry.compare(caps[1].hidden, caps[0].hidden)
    assert np.allclose(cos, 1.0, atol=1e-5) and np.allclose(ratio, 1.0, atol=1e-5)
    cos, _ = geometry.compare(caps[2].hidden, caps[0].hidden)
    # hidden index l + 1 is block l's output: steering at block 2 leaves 0..2 alone
    assert np.allclose(cos[:3, : caps[0].prompt_len], 1.0, atol=1e-5)
    assert cos[3].min() < 0.99


def test_pca_projects_on_the_main_axes():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 6)) * np.array([10, 3, 0.1, 0.1, 0.1, 0.1])
    (pa, pb), explained = geometry.pca_2d([a[:12], a[12:]])
    assert pa.shape == (12, 2) and pb.shape == (8, 2)
    assert explained[0] > 0.8 and explained[0] + explained[1] > 0.99
    centred = a - a.mean(0)
    assert np.allclose(np.abs(np.concatenate([pa, pb])[:, 0]),
                       np.abs(centred @ np.linalg.svd(centred)[2][0]), atol=1e-8)
    (single,), explained = geometry.pca_2d([a[:1]])
    assert single.shape == (1, 2) and np.allclose(single, 0)


def test_geometry_json(captured):
    _, caps = captured
    data = geometry_json(caps)
    assert data["layers"][0] == "emb" and len(data["layers"]) == caps[0].hidden.shape[0]
    assert [r["name"] for r in data["rows"]] == [c.name for c in caps]
    assert all(len(r["pca"]) == len(c.ids) - c.prompt_len for r, c in zip(data["rows"], caps))


# -- head roles ---------------------------------------------------------------------------

def test_head_role_scores_on_synthetic_attention():
    n, offset = 5, 1
    t = offset + 2 * n
    att = np.zeros((2, 3, t, t))
    for q in range(t):
        att[0, 0, q, max(q - 1, 0)] = 1  # previous token
        att[1, 2, q, 0] = 1  # sink
        k = q - n + 1 if q >= offset + n + 1 else 0  # induction: the token after the earlier copy
        att[0, 1, q, k] = 1
    s = head_roles.scores(att, n, offset)
    assert s["previous"][0, 0] == 1 and s["induction"][0, 1] == 1 and s["sink"][1, 2] == 1
    assert s["previous"][1, 2] == 0 and s["induction"][0, 0] == 0


def test_head_roles_measured_on_the_demo_model(engine):
    roles = head_roles.measure(engine, n=16)
    assert roles.scores["previous"].shape == (engine.n_layers, engine.n_heads)
    data = roles.to_json()
    assert set(data["heads"]) == set(head_roles.ROLES)
    for role, heads in data["heads"].items():
        assert all(roles.scores[role][layer, h] >= head_roles.THRESHOLD for layer, h in heads)


# -- renderables --------------------------------------------------------------------------

def test_head_map_fits_32_by_32_at_120x40_and_shows_flags_and_cursor():
    values = np.linspace(0, 1, 32 * 32).reshape(32, 32)
    text = render(HeadMap(values, cursor=(3, 4), flags={(5, 6): "I"}, title="shares"), 120, 40)
    lines = text.splitlines()
    assert lines[0].startswith("shares") and "pooled" not in text
    assert sum(1 for line in lines if line.startswith("L")) == 32
    assert "◆" in lines[2 + 3] and "I" in lines[2 + 5]
    small = render(HeadMap(values, title="shares"), 80, 24)
    assert "32x32 pooled to" in small and len(small.splitlines()) <= 24


def test_attention_text_colours_up_to_the_query():
    console = Console(width=80, record=True, color_system="truecolor")
    console.print(AttentionText(["a", " b", " c", " d"], np.array([0.1, 0.9, 0.5, 0.0]), query=2, marked=[1]))
    assert "a b c d" in console.export_text(clear=False)
    html = console.export_html(inline_styles=True)
    assert "text-decoration: underline" in html  # the mark
    assert html.count("background-color") >= 2


def test_logit_lens_table_keeps_first_and_last_layers():
    assert pick_layers(31, 10)[0] == 0 and pick_layers(31, 10)[-1] == 30 and len(pick_layers(31, 10)) <= 10
    n, p = 31, 6
    tokens = [[f"t{i}" for _ in range(p)] for i in range(n)]
    table = LogitLensTable(tokens, np.full((n, p), 0.5), np.zeros((n, p), bool), [f"in{j}" for j in range(p)],
                           title="baseline")
    text = render(table, 80, 24)
    assert "t30" in text and "emb" in text and "of 31 layers" in text and len(text.splitlines()) <= 24


# -- commands ------------------------------------------------------------------------------

def test_logit_lens_cli_json(run_cli):
    code, out, _ = run_cli("logit-lens", "--prompt", PROMPT, "--lens", "identity", "--max-tokens", "2",
                           "--positions", "all", "--pin", " blue", "--json")
    assert code == 0
    data = json.loads(out)
    base, ident = data["rows"]
    assert len(base["positions"]) == data["prompt_len"] + 2
    last = base["positions"][data["prompt_len"] - 1]
    assert last["next"] == base["positions"][data["prompt_len"]]["input"]
    assert last["prediction"] == last["next"]  # greedy: the last layer's top-1 is what was generated
    # ids next to every token: the prediction matches the generated token by id, not by text
    assert last["prediction_id"] == last["next_id"] == base["positions"][data["prompt_len"]]["input_id"]
    assert last["layers"][-1]["top"][0]["id"] == last["prediction_id"]
    assert len(last["layers"]) == data["layers"] + 1
    assert [p["token"] for p in last["pinned"]] == [" blue"] and len(last["pinned"][0]["probs"]) == data["layers"] + 1
    assert ident == {**base, "name": ident["name"]}


def test_geometry_and_heads_cli(run_cli):
    code, out, _ = run_cli("geometry", "--prompt", PROMPT, "--lens", "identity", "--max-tokens", "2", "--json")
    assert code == 0
    rows = json.loads(out)["rows"]
    assert all(abs(v - 1) < 1e-4 for layer in rows[1]["cosine"] for v in layer)
    code, out, _ = run_cli("heads", "--length", "8", "--json")
    assert code == 0 and set(json.loads(out)["scores"]) == set(head_roles.ROLES)


@pytest.mark.parametrize("args, words", [
    (("logit-lens", "--prompt", "hi", "--positions", "x"), "--positions"),
    (("logit-lens", "--prompt", "hi", "--positions", "99"), "outside"),
    (("geometry", "--prompt", "hi", "--layer", "40"), "--layer 40"),
])
def test_view_commands_refuse_bad_input_in_one_line(run_cli, args, words):
    code, _, err = run_cli(*args)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1


def test_one_layer_numbering_for_views_lenses_and_directions(run_cli, engine):
    """`--layer L` in every command and `layers=L` in every lens name block L's output."""
    from lenscope.lenses import directions

    code, out, _ = run_cli("geometry", "--prompt", "the hat is green.", "--lens", "steer:layers=1,token=dog",
                           "--max-tokens", "2", "--layer", "1", "--json")
    data = json.loads(out)
    assert code == 0 and data["pca_layer"] == "L1" and data["layers"][0] == "emb"
    # the cosine to the baseline first drops at the steered block's output, L1
    cos = [min(c) for c in data["rows"][1]["cosine"]]
    assert min(cos[:2]) > 1 - 1e-5 and cos[2] < 1 - 1e-3
    code, out, _ = run_cli("geometry", "--prompt", "the hat is green.", "--max-tokens", "1", "--layer", "emb", "--json")
    assert code == 0 and json.loads(out)["pca_layer"] == "emb"
    # direction --layer 1 reads the same states: block 1's output
    ids = engine.encode("the hat")
    state = np.array(engine.hidden_states(ids, [1])[1][-1])
    np.testing.assert_allclose(directions.text_state(engine, "the hat", 1), state)
