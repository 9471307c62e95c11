"""gemma-3-270m Q4_K_M, the second real architecture (gemma3: SentencePiece with BOS,
sliding-window layers, soft-capped logits): every lens kind acts, every view renders,
and lenses that take a word act on that word's tokens, never on BOS."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten
from test_lenses import CASES

from lenscope.core.capture import capture_rows
from lenscope.core.engine import Request
from lenscope.lenses.spec import parse_inline

pytestmark = pytest.mark.real_model

COLOUR = "My favourite colour is"


def test_a_word_bias_moves_that_word(gemma_engine):
    """The repro: the word was encoded with BOS and the BOS got the bias."""
    res = gemma_engine.compare(Request(COLOUR, [parse_inline("bias:words=green,value=20"),
                                                parse_inline("bias:words=green,value=6")], max_tokens=6)).run()
    assert res.rows[0].text.startswith(" blue")
    assert res.rows[1].text.startswith(" green") and res.rows[2].text.startswith(" green")


def test_a_word_direction_is_no_bos(gemma_engine):
    res = gemma_engine.compare(Request(COLOUR, [parse_inline("slerp:token=red,t=0.3,layers=9")], max_tokens=6)).run()
    row = res.rows[1]
    assert "<bos>" not in row.text and gemma_engine.tokenizer.bos_token_id not in row.token_ids
    assert "red" in row.text.lower()


def test_every_lens_kind_acts_and_restores_the_weights(gemma_engine):
    eng = gemma_engine
    prompt = "The hat is green. Tom saw a big dog. Question: what color is the hat? Answer: the hat is"
    ids = eng.encode(prompt)
    marks = eng.tokens.marks_from_text(prompt, ids, ["green"])
    active = {k: a for k, (_, a) in CASES.items() if a}
    active["head-scale"] = "head-scale:scale=0,heads=0|1|2|3"  # gemma-3-270m has 4 heads
    active["steer"] = "steer:strength=200,token=happy"  # hidden states of norm ~ 1e3
    before = {k: np.array(v.view(mx.uint8)).tobytes() for k, v in tree_flatten(eng.model.parameters())[:40]}
    run = eng.compare(Request(prompt, [parse_inline(s) for s in active.values()], marks, max_tokens=3,
                              stop_at_eos=False, keep_logits=True))
    res = run.run()
    for r, (kind, spec) in enumerate(active.items(), start=1):
        row = res.rows[r]
        if kind == "temperature":  # sampling lenses leave the logits and change the draw
            continue
        changed = row.token_ids != res.rows[0].token_ids or not np.allclose(run.logits[0][r], run.logits[0][0],
                                                                             atol=1e-3)
        assert changed, f"{spec} did nothing on gemma"
        assert eng.tokenizer.bos_token_id not in row.token_ids, spec
    assert {k: np.array(v.view(mx.uint8)).tobytes() for k, v in tree_flatten(eng.model.parameters())[:40]} == before


def test_every_view_renders(gemma_engine, run_cli):
    import json

    for args in (["attention", "--layer", "5"], ["logit-lens", "--pin", "green", "--max-tokens", "2"],
                 ["geometry", "--layer", "9", "--max-tokens", "2"]):
        code, out, err = run_cli(*args, "--model", "gemma3-270m", "--prompt", COLOUR, "--lens", "emphasis:strength=2",
                                 "--json")
        assert code == 0, err
        assert json.loads(out)
    for args in (["heads", "--length", "24"], ["score", "--prompt", COLOUR, "--continuation", " green",
                                               "--lens", "bias:words=green,value=3"]):
        code, out, err = run_cli(*args, "--model", "gemma3-270m", "--json")
        assert code == 0, err
        assert json.loads(out)
    res = gemma_engine.compare(Request(COLOUR, [parse_inline("steer:strength=200,token=happy")], max_tokens=2)).run()
    caps = capture_rows(gemma_engine, res, [parse_inline("identity"), parse_inline("steer:strength=200,token=happy")])
    assert caps[0].attention.shape[0] == gemma_engine.n_layers and np.isfinite(caps[1].hidden).all()
