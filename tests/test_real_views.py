"""The views on SmolLM2-135M-Instruct (30 layers x 9 heads): what docs/guide/views.md says they show."""

import mlx.core as mx
import numpy as np
import pytest

from lenscope.core.capture import capture_row
from lenscope.core.engine import Request
from lenscope.lenses.spec import parse_inline
from lenscope.views import head_roles
from lenscope.views import hidden_states as geometry
from lenscope.views.attention import head_shares
from lenscope.views.logit_lens import logit_lens

pytestmark = pytest.mark.real_model

PROMPT = "The capital of France is Paris. The capital of Italy is"


def test_logit_lens_last_layer_is_the_models_logits_and_rome_appears_late(smollm2_engine):
    e = smollm2_engine
    ids = e.encode(PROMPT)
    _, hidden = e.inspect(ids)
    with e.lock:
        logits = np.array(e.model(mx.array([ids]))[0].astype(mx.float32))
    rome = e.encode(" Rome")[0]
    lens = logit_lens(e, hidden, [len(ids) - 1], pinned=[rome])
    assert int(lens.top_ids[-1, 0, 0]) == int(logits[-1].argmax()) == rome
    first = lens.first_top1_layer(0, rome)
    assert first is not None and first > e.n_layers // 2  # the answer forms in the upper half
    assert lens.pinned_probs[-1, 0, 0] > 0.3 and lens.pinned_probs[: e.n_layers // 2, 0, 0].max() < 0.05


def test_smollm2_has_induction_and_previous_token_heads(smollm2_engine):
    roles = head_roles.measure(smollm2_engine, n=32)
    assert len(roles.heads("induction")) >= 3 and roles.scores["induction"].max() > 0.7
    assert len(roles.heads("previous")) >= 3
    assert min(layer for layer, _ in roles.heads("induction")) > 2  # induction needs an earlier layer


def test_emphasis_moves_head_shares_and_steering_moves_hidden_states(smollm2_engine):
    e = smollm2_engine
    prompt = "The key is blue. Tom went to the park and the sun was warm. What color is the key? The key is"
    ids = e.encode(prompt)
    marks = e.tokens.marks_from_text(prompt, ids, ["blue"])
    variants = [parse_inline("emphasis:strength=2"), parse_inline("steer:layers=12,strength=0.2,unit=norm,"
                                                                  "positive=I am so happy,negative=I am so sad")]
    run = e.compare(Request(prompt, variants, marks, max_tokens=3), capture=True)
    res = run.run()
    caps = [capture_row(e, res, run.variants, r) for r in range(3)]
    q = len(ids) - 1
    gain = head_shares(caps[1].attention, marks, q) - head_shares(caps[0].attention, marks, q)
    assert (gain[0] > 0).all() and gain.mean() > 0.02
    cos, _ = geometry.compare(caps[2].hidden, caps[0].hidden)
    assert np.allclose(cos[:13, :q], 1.0, atol=1e-4)  # untouched up to block 12's input
    assert cos[13, 1:q].mean() < 0.995 and cos[-1, 1:q].mean() < cos[13, 1:q].mean()  # later layers amplify


def test_propagation_emphasises_what_reads_the_requirement(smollm2_engine):
    """`emphasis:propagate`: the tokens that read the marked requirement (here its
    consequence, "that closes the log") inherit part of its boost."""
    from lenscope.lenses.attention import inherited_importance

    e = smollm2_engine
    prompt = ("Requirement: register an atexit handler that closes the log. Then we wrote the parser, the tests "
              "and the config loader. Now write the main function. It must")
    ids = e.encode(prompt)
    marks = e.tokens.marks_from_text(prompt, ids, ["register an atexit handler"])
    weights = inherited_importance(e.capture_attention(ids), marks, 3.0)
    heirs = [j for j in range(len(ids)) if j not in marks and weights[j] > 0.2]
    assert "closes" in "".join(e.token_text(ids[j]) for j in heirs)
    share = [e.capture_attention(ids, parse_inline(s).lenses, marks=marks).mean(axis=(0, 1))[-1, heirs].sum()
             for s in ("emphasis:strength=2", "emphasis:strength=2,propagate=3")]
    assert share[1] > share[0] + 0.05  # measured 0.099 -> 0.179
