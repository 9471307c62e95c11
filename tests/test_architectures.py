"""Hooks on random-weight mlx-lm models of several architectures (no model code copied)."""

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten
from mlx_lm.generate import generate_step
from tiny_models import CONFIGS, build

from lenscope.core.engine import Engine, Request
from lenscope.core.hooks import check_hookable
from lenscope.errors import BadInput
from lenscope.lenses.spec import parse_inline
from lenscope.models import LoadedModel

PROMPT = "one day, tom went to the park."


@pytest.fixture(params=sorted(CONFIGS))
def arch_engine(request, loaded):
    model = build(request.param)
    return Engine(LoadedModel(model, loaded.tokenizer, request.param, loaded.path))


def test_rows_and_restore(arch_engine):
    eng = arch_engine
    before = {k: bytes(np.array(v)) for k, v in tree_flatten(eng.model.parameters())}
    classes = [type(layer) for layer in eng.model.layers]
    norm = eng.model.model.norm
    ids = eng.encode(PROMPT)
    with eng.lock:
        plain = [int(t) for t, _ in generate_step(mx.array(ids), eng.model, max_tokens=6)]
        full = np.array(eng.model(mx.array([ids]))[0, -1].astype(mx.float32))
    marks = [3, 4]
    run = eng.compare(Request(PROMPT, [parse_inline("identity"), parse_inline("emphasis:strength=8"),
                                       parse_inline("steer:strength=50,token=dog")], marks, max_tokens=6,
                              stop_at_eos=False, keep_logits=True))
    res = run.run()
    # the prefill computes the head on the last position only: the same logits as the full forward
    np.testing.assert_allclose(run.logits[0][0], full, atol=1e-4, rtol=1e-4)
    assert eng.model.model.norm is norm
    assert res.rows[0].token_ids == plain
    assert res.rows[1].token_ids == plain
    assert res.rows[2].attention_to_marks[0] > res.rows[0].attention_to_marks[0]
    assert res.rows[3].kl_from_baseline[0] > 0
    probs = eng.capture_attention(ids)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    assert [type(layer) for layer in eng.model.layers] == classes
    assert {k: bytes(np.array(v)) for k, v in tree_flatten(eng.model.parameters())} == before


def test_unhookable_attention_is_named():
    from mlx import nn

    class Recurrent(nn.Module):  # defined here: its module has no scaled_dot_product_attention
        def __init__(self):
            super().__init__()
            self.layers = [nn.Linear(4, 4)]

    with pytest.raises(BadInput, match="cannot hook"):
        check_hookable(Recurrent())


def test_quantized_model_hooks_and_weight_lens(loaded):
    from mlx import nn

    model = build("llama")
    nn.quantize(model, group_size=32, bits=4)
    assert isinstance(model.layers[0].mlp.down_proj, nn.QuantizedLinear)
    eng = Engine(LoadedModel(model, loaded.tokenizer, "llama-q4", loaded.path))
    before = {k: bytes(np.array(v)) for k, v in tree_flatten(model.parameters())}
    ids = eng.encode(PROMPT)
    with eng.lock:
        plain = [int(t) for t, _ in generate_step(mx.array(ids), model, max_tokens=5)]
    res = eng.compare(Request(PROMPT, [parse_inline("identity"), parse_inline("svd-remove:k=16,layers=0|1"),
                                       parse_inline("emphasis:strength=5")], [2, 3], max_tokens=5,
                              stop_at_eos=False, keep_logits=True)).run()
    assert res.rows[0].token_ids == plain and res.rows[1].token_ids == plain
    assert res.rows[2].kl_from_baseline[0] > 1e-4
    assert {k: bytes(np.array(v)) for k, v in tree_flatten(model.parameters())} == before


def test_gemma2_runs_residual_lenses_and_refuses_attention_ones_in_one_line(loaded):
    """mlx-lm's gemma2 soft-caps scores inside its own attention (no sdpa call to hook)."""
    from tiny_models import COMMON, _get_classes

    config = {**COMMON, "model_type": "gemma2", "head_dim": 16, "query_pre_attn_scalar": 16}
    model_cls, args_cls = _get_classes(config)
    model = model_cls(args_cls.from_dict(config))
    mx.eval(model.parameters())
    eng = Engine(LoadedModel(model, loaded.tokenizer, "gemma2", loaded.path))
    res = eng.compare(Request(PROMPT, [parse_inline("steer:strength=50,token=dog")], [], max_tokens=4,
                              stop_at_eos=False, keep_logits=False)).run()
    assert res.rows[1].kl_from_baseline[0] > 0
    with pytest.raises(BadInput, match="model type 'gemma2': its attention does not call"):
        eng.compare(Request(PROMPT, [parse_inline("emphasis:strength=8")], [3, 4], max_tokens=4))
