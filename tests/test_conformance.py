"""Every lens means what its help says on every supported architecture and precision.

Each architecture is a tiny random-weight mlx-lm model with a tokenizer of the kind its
real files have (BPE without BOS, BPE with BOS, SentencePiece with BOS and prefix space),
in float32, bfloat16, float16 and MLX-quantized weights. The expected values are computed
here from the model's weights, its vocabulary and plain hidden states, not by the lens code.
"""

import re

import mlx.core as mx
import numpy as np
import pytest
from mlx import nn
from mlx.utils import tree_flatten
from test_lenses import CASES
from tiny_models import COMMON, _get_classes, tokenizer

from lenscope.core.engine import Engine, Request
from lenscope.errors import BadInput
from lenscope.lenses.registry import KINDS
from lenscope.lenses.spec import parse_inline
from lenscope.models import LoadedModel
from lenscope.models.precision import to_float

# (config, tokenizer kind) per architecture: mistral is llama's class in mlx-lm
ARCHS = {
    "llama": ({"model_type": "llama"}, "bpe"),  # SmolLM2
    "llama3": ({"model_type": "llama", "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                      "high_freq_factor": 4.0,
                                                      "original_max_position_embeddings": 64}}, "bpe-bos"),
    "mistral": ({"model_type": "mistral"}, "spm-bos"),
    "qwen2": ({"model_type": "qwen2"}, "bpe"),
    "qwen3": ({"model_type": "qwen3", "head_dim": 16}, "bpe"),
    "gemma2": ({"model_type": "gemma2", "head_dim": 16, "query_pre_attn_scalar": 16}, "spm-bos"),
    "gemma3": ({"model_type": "gemma3_text", "head_dim": 16, "sliding_window": 4, "sliding_window_pattern": 2,
                    "query_pre_attn_scalar": 16}, "spm-bos"),
    "phi3": ({"model_type": "phi3", "num_key_value_heads": 4}, "spm-bos"),
}
PRECISIONS = ("float32", "bfloat16", "float16", "q4")
# how close a value computed in the model's precision comes to the exact one, relative to its size
REL = {"float32": 2e-5, "q4": 2e-5, "bfloat16": 2e-2, "float16": 3e-3}
ATTENTION_KINDS = {"emphasis", "hold", "decay", "topk-attention"}
# gemma2 soft-caps its attention scores inside its own attention: nothing to hook
REFUSED = {"gemma2": ATTENTION_KINDS}
PROMPT = "the hat is green. tom saw a big dog. what color is the hat? the hat is"
LAYER = 0  # block 0's output is hidden state 1
# attention lenses are checked on a layer that sees the whole prompt (gemma3's block 0 slides a window of 4)
ATTENTION_LAYER = {"gemma3": 1}


def _engine(arch: str, precision: str, loaded) -> Engine:
    config, tok_kind = ARCHS[arch]
    tok = tokenizer(tok_kind, loaded.tokenizer)
    config = {**COMMON, **config, "vocab_size": len(tok.get_vocab())}  # no id past the vocabulary
    model_cls, args_cls = _get_classes(config)
    mx.random.seed(3)
    model = model_cls(args_cls.from_dict(config))
    if precision == "q4":
        nn.quantize(model, group_size=32, bits=4)
    else:
        to_float(model, precision)
    mx.eval(model.parameters())
    return Engine(LoadedModel(model, tok, f"{arch}-{precision}", loaded.path))


@pytest.fixture(scope="module", params=[(a, p) for a in ARCHS for p in PRECISIONS], ids=lambda ap: "-".join(ap))
def case(request, loaded):
    arch, precision = request.param
    eng = _engine(arch, precision, loaded)
    ids = eng.encode(PROMPT)
    marks = eng.tokens.marks_from_text(PROMPT, ids, ["green"])
    return arch, precision, eng, ids, marks


def _refused(arch: str, spec: str) -> bool:
    return spec.split(":")[0] in REFUSED.get(arch, ())


def _states(eng, ids, marks, *specs, attention=False):
    """Each row's attention over the prompt (None unless asked) and hidden states (layers + 1, L, D)."""
    rows = [(ids, parse_inline(s)) for s in ("identity",) + specs]
    out = eng.inspect_rows(rows, len(ids), marks, layers=None if attention else [])
    return [(att, np.asarray(h, dtype=np.float32)) for att, h in out]


def _close(got, want, precision, what):
    err = float(np.linalg.norm(np.asarray(got, np.float64) - want))
    scale = float(np.linalg.norm(want)) + 1e-6
    assert err <= REL[precision] * scale * 4 + 1e-5, f"{what}: off by {err:.3g} (size {scale:.3g})"


def _vocab_row(eng, word: str, which: str) -> tuple[int, np.ndarray]:
    """The word's mid-sentence token read off the vocabulary, and its matrix row, dequantized here."""
    marker = "\u2581" if "\u2581the" in eng.tokenizer.get_vocab() else "\u0120"
    tid = eng.tokenizer.convert_tokens_to_ids(marker + word)
    layer = eng.model.model.embed_tokens if which == "embedding" else getattr(eng.model, "lm_head", None)
    layer = layer or eng.model.model.embed_tokens  # tied
    if isinstance(layer, (nn.QuantizedEmbedding, nn.QuantizedLinear)):
        w = mx.dequantize(layer.weight, layer.scales, layer.biases, layer.group_size, layer.bits)
    else:
        w = layer.weight
    return tid, np.asarray(w[tid].astype(mx.float32))


def _unit(v):
    return v / np.linalg.norm(v)


def test_every_architecture_has_every_tokenizer_kind():
    assert {kind for _, kind in ARCHS.values()} == {"bpe", "bpe-bos", "spm-bos"}


def test_neutral_settings_are_the_baseline(case):
    arch, _precision, eng, _ids, marks = case
    specs = [n for n, _ in CASES.values() if not _refused(arch, n)]
    res = eng.compare(Request(PROMPT, [parse_inline(s) for s in specs], marks, max_tokens=5, stop_at_eos=False,
                              keep_logits=True))
    out = res.run()
    base = out.rows[0].token_ids
    for r, spec in enumerate(specs, start=1):
        same = 0
        while same < len(base) and out.rows[r].token_ids[same] == base[same]:
            same += 1
        for step in res.logits[: same + 1]:
            # constrain's allow-all grammar still bans special tokens, and bytes that are no UTF-8
            keep = np.isfinite(step[r])
            np.testing.assert_allclose(step[r][keep], step[0][keep], atol=1e-4 * max(1, np.abs(step[0]).max()),
                                       err_msg=spec)
        if same < len(base):  # a row may leave the baseline only where it bans the baseline's token
            assert spec.startswith("constrain") and res.logits[same][r][base[same]] == -np.inf, spec


def test_refused_kinds_say_so_in_one_line(case):
    arch, _, eng, _, marks = case
    for kind in REFUSED.get(arch, ()):
        with pytest.raises(BadInput, match=f"model type '{arch}': its attention does not call") as err:
            eng.compare(Request(PROMPT, [parse_inline(CASES[kind][1])], marks, max_tokens=2))
        assert "\n" not in str(err.value)
    assert set(REFUSED.get(arch, ())) <= set(KINDS)


def test_bias_raises_exactly_the_named_words_tokens(case):
    _, _, eng, _, marks = case
    res = eng.compare(Request(PROMPT, [parse_inline("bias:words=green|red,value=7")], marks, max_tokens=1,
                              stop_at_eos=False, keep_logits=True))
    res.run()
    base, row = (np.asarray(x, np.float64) for x in res.logits[0])
    moved = set(np.flatnonzero(np.abs(row - base) > 1e-3 * max(1, np.abs(base).max())))
    named = {_vocab_row(eng, w, "embedding")[0] for w in ("green", "red")}
    special = {eng.tokenizer.bos_token_id, *eng.eos_ids} - {None}
    starts = {int(eng.tokenizer.encode(w, add_special_tokens=False)[0]) for w in ("green", "red")} - special
    assert moved == named | starts and not moved & special
    np.testing.assert_allclose(row[sorted(moved)] - base[sorted(moved)], 7.0, rtol=0.02, atol=0.05)


@pytest.mark.parametrize("which", ["embedding", "unembedding"])
def test_a_token_direction_is_the_words_own_row(case, which):
    from lenscope.lenses.steering import resolve_direction

    _, _, eng, _, _ = case
    lens = parse_inline(f"steer:token=green,row={which}").lenses[0]
    got = resolve_direction(lens, eng, LAYER)
    np.testing.assert_allclose(got, _unit(_vocab_row(eng, "green", which)[1]), atol=1e-5)


def test_steer_adds_strength_times_unit_at_its_layer_and_positions(case):
    _, precision, eng, ids, marks = case
    d = _unit(_vocab_row(eng, "happy", "embedding")[1])
    specs = [f"steer:token=happy,strength=3,layers={LAYER},positions={p}" for p in ("all", "marked", "generated")]
    (_, base), *rows = _states(eng, ids, marks, *specs)
    assert all(np.array_equal(h[: LAYER + 1], base[: LAYER + 1]) for _, h in rows)  # before the layer: untouched
    for (_, h), where in zip(rows, (range(len(ids)), marks, [len(ids) - 1])):
        want = base[LAYER + 1].copy()
        want[list(where)] += 3 * d  # positions=generated: the last prompt position predicts the first output
        _close(h[LAYER + 1], want, precision, "steer")


def test_ablate_removes_and_scale_multiplies(case):
    _, precision, eng, ids, marks = case
    d = _unit(_vocab_row(eng, "dog", "embedding")[1])
    (_, base), (_, ablated), (_, scaled) = _states(eng, ids, marks, f"ablate:token=dog,layers={LAYER}",
                                                   f"scale:factor=1.7,layers={LAYER}")
    h = base[LAYER + 1]
    _close(ablated[LAYER + 1], h - np.outer(h @ d, d), precision, "ablate")
    _close(scaled[LAYER + 1], 1.7 * h, precision, "scale")


def _angles(h, d):
    return np.arccos(np.clip(h @ d / np.linalg.norm(h, axis=-1), -1, 1))


def test_slerp_and_path_move_a_fraction_of_the_angle_keeping_the_norm(case):
    _, precision, eng, ids, marks = case
    d = _unit(_vocab_row(eng, "happy", "embedding")[1])
    (_, base), (_, slerped), (_, path) = _states(eng, ids, marks, f"slerp:token=happy,t=0.4,layers={LAYER}",
                                                 f"path:concepts=happy|sad,t=0.4,layers={LAYER}")
    h = base[LAYER + 1]
    for got, what in ((slerped[LAYER + 1], "slerp"), (path[LAYER + 1], "path (step 0: its first concept)")):
        _close(np.linalg.norm(got, axis=-1), np.linalg.norm(h, axis=-1), precision, f"{what} norm")
        _close(_angles(got, d), 0.6 * _angles(h, d), precision, f"{what} angle")


def test_rotate_turns_the_plane_of_its_concepts_only(case):
    _, precision, eng, ids, marks = case
    a, b = (_vocab_row(eng, w, "embedding")[1] for w in ("happy", "sad"))
    u = _unit(a)
    v = _unit(b - (b @ u) * u)
    (_, base), (_, rot) = _states(eng, ids, marks, f"rotate:a=happy,b=sad,angle=90,layers={LAYER}")
    h = base[LAYER + 1]
    x, y = h @ u, h @ v
    want = h - np.outer(x, u) - np.outer(y, v) + np.outer(-y, u) + np.outer(x, v)  # 90 degrees from a to b
    _close(rot[LAYER + 1], want, precision, "rotate")


def test_grouped_touches_only_its_groups(case):
    _, precision, eng, ids, marks = case
    (_, base), (_, got) = _states(eng, ids, marks, f"grouped:group=8,groups=1,angle=0,scale=2,layers={LAYER}")
    want = base[LAYER + 1].copy()
    want[:, 8:16] *= 2
    _close(got[LAYER + 1], want, precision, "grouped")


def test_patch_copies_the_source_states_on_its_span(case):
    _, precision, eng, ids, marks = case
    source = "the cat saw a red sun."
    src_ids = eng.encode(source)  # a source is read as a prompt is: BOS where the model adds one
    src = np.asarray(eng.hidden_states(src_ids, [LAYER])[LAYER].astype(mx.float32))
    (_, base), (_, got) = _states(eng, ids, marks, f"patch:mode=replace,source={source},span=2:5,layers={LAYER}")
    want = base[LAYER + 1].copy()
    want[2:5] = src[len(src_ids) - 3:]
    _close(got[LAYER + 1, :5], want[:5], precision, "patch")


def _marks_share(att, marks, P):
    """(layers, heads) mean share of attention on the marks, from the queries after them."""
    q = np.arange(max(marks) + 1, P)
    return att[:, :, q][..., marks].sum(-1).mean(-1)


def test_emphasis_raises_the_marks_share_on_its_heads_only(case):
    arch, _, eng, ids, marks = case
    if _refused(arch, "emphasis"):
        pytest.skip("refused on this architecture (tested above)")
    layer = ATTENTION_LAYER.get(arch, 0)
    (base, _), (att, _) = _states(eng, ids, marks, f"emphasis:strength=3,heads=1,layers={layer}", attention=True)
    b, e = _marks_share(base, marks, len(ids)), _marks_share(att, marks, len(ids))
    assert e[layer, 1] > b[layer, 1] + 0.01
    others = [h for h in range(b.shape[1]) if h != 1]
    np.testing.assert_allclose(e[layer, others], b[layer, others], atol=2e-3)


def test_topk_keeps_n_keys_and_decay_lifts_far_keys(case):
    arch, _, eng, ids, marks = case
    if _refused(arch, "topk-attention"):
        pytest.skip("refused on this architecture (tested above)")
    layer = ATTENTION_LAYER.get(arch, 0)
    (base, _), (topk, _), (decay, _) = _states(eng, ids, marks, f"topk-attention:n=2,layers={layer}",
                                              f"decay:strength=2,scope=all,layers={layer}", attention=True)
    assert ((topk[layer] > 1e-6).sum(-1) <= 2).all()
    q = np.arange(len(ids))
    distance = np.maximum(q[:, None] - q[None, :], 0)  # query - key
    assert (decay[layer] * distance).sum(-1).mean() > (base[layer] * distance).sum(-1).mean() + 0.1


def test_hold_moves_the_marks_share_to_its_target(case):
    arch, _, eng, ids, marks = case
    if _refused(arch, "hold"):
        pytest.skip("refused on this architecture (tested above)")
    layer = ATTENTION_LAYER.get(arch, 0)
    (base, _), (att, _) = _states(eng, ids, marks, f"hold:target=0.5,ceiling=20,layers={layer}", attention=True)
    b, h = _marks_share(base, marks, len(ids))[layer], _marks_share(att, marks, len(ids))[layer]
    assert (np.abs(h - 0.5) <= np.abs(b - 0.5) + 1e-3).all() and np.abs(h - 0.5).max() < 0.05


def test_force_and_constrain_give_their_text(case):
    _, _, eng, _, marks = case
    out = eng.compare(Request(PROMPT, [parse_inline('force:text=" purple dog"'),
                                       parse_inline('constrain:regex=" (blue|red)\\."')], marks, max_tokens=8,
                              stop_at_eos=True)).run()
    # a SentencePiece decoder drops the leading space of a text it decodes alone
    assert out.rows[1].text.lstrip().startswith("purple dog")
    assert re.fullmatch(r" ?(blue|red)\.", out.rows[2].text.replace(eng.tokenizer.eos_token or "\0", ""))


def test_weight_lenses_change_the_output_and_restore_byte_for_byte(case):
    _, _, eng, _, marks = case
    before = {k: bytes(memoryview(np.asarray(v.astype(mx.float32)))) for k, v in tree_flatten(eng.model.parameters())}
    specs = ["blur:sigma=4,layers=0|1", "noise:scale=1,layers=0|1", "head-scale:scale=0,heads=0|1|2|3",
             "svd-remove:k=8,layers=0|1"]
    res = eng.compare(Request(PROMPT, [parse_inline(s) for s in specs], marks, max_tokens=1, stop_at_eos=False,
                              keep_logits=True))
    res.run()
    step = np.asarray(res.logits[0], np.float64)
    for r, spec in enumerate(specs, start=1):
        assert np.abs(step[r] - step[0]).max() > 1e-3, f"{spec} changed nothing"
    after = {k: bytes(memoryview(np.asarray(v.astype(mx.float32)))) for k, v in tree_flatten(eng.model.parameters())}
    assert after == before


def test_explore_bans_the_top_token(case):
    _, _, eng, _, marks = case
    res = eng.compare(Request(PROMPT, [parse_inline("explore:exclude_top=1")], marks, max_tokens=1,
                              stop_at_eos=False, keep_logits=True))
    out = res.run()
    top = int(np.argmax(res.logits[0][0]))
    assert res.logits[0][1][top] == -np.inf and out.rows[1].token_ids[0] != top


@pytest.mark.parametrize("arch", ["gemma3", "llama"])
def test_attention_lenses_and_the_marks_share_follow_a_sliding_window_cache(loaded, arch):
    """gemma3's block 0 keeps a window of 4 keys, in ring order once decoding wraps: the
    marks' share measured while decoding, and what emphasis and decay do, equal a capture
    of the whole text (no cache) at each step's query."""
    eng = _engine(arch, "float32", loaded)
    ids = eng.encode(PROMPT)
    P, steps = len(ids), 6
    marks = [P - 2]  # inside the window for the first decoding steps
    specs = ["identity", "emphasis:strength=3", "decay:strength=2,scope=all"]
    out = eng.compare(Request(PROMPT, [parse_inline(s) for s in specs[1:]], marks, max_tokens=steps,
                              stop_at_eos=False, keep_logits=True)).run()
    for row, spec in zip(out.rows, specs):
        full = ids + row.token_ids
        att, _ = eng.inspect_rows([(full, parse_inline(spec))], P, marks, hidden=False)[0]
        want = [att[:, :, P - 1 + t, marks].sum(-1).mean() for t in range(steps)]
        np.testing.assert_allclose(row.attention_to_marks, want, atol=1e-4, err_msg=spec)
