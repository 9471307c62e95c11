"""`--precision auto` is chosen once per model, machine and BLAS, never by a path that
changes the model's greedy answer, and kept (models/precision_choice.py)."""

import mlx.core as mx
import numpy as np
import pytest
from mlx import nn
from mlx.utils import tree_flatten
from tiny_models import build

from lenscope.models import precision, precision_choice


def _bytes(model):
    return {k: np.array(v.astype(mx.float32)).tobytes() for k, v in tree_flatten(model.parameters())}


def test_checking_a_float_path_puts_the_stored_model_back(loaded):
    model = build("llama")
    nn.quantize(model, group_size=32, bits=4)
    before, kinds = _bytes(model), [type(m) for _, m in model.named_modules()]
    ids = loaded.tokenizer.encode("the hat is green.")
    reference = precision_choice._greedy(model, ids)
    assert precision_choice.keeps_answer(model, ids, "float32", reference)
    assert _bytes(model) == before and [type(m) for _, m in model.named_modules()] == kinds
    assert not precision_choice.keeps_answer(model, ids, "float32", [t + 1 for t in reference])


def test_a_choice_is_measured_once_and_kept(loaded, tmp_path, monkeypatch):
    monkeypatch.setenv("LENSCOPE_CACHE", str(tmp_path))
    model = build("llama")
    nn.quantize(model, group_size=32, bits=4)
    calls = []
    monkeypatch.setattr(precision, "measure_paths", lambda m, memory: calls.append(1) or
                        {"native": 9.0, "float32": 3.0, "bfloat16": 1.0})
    monkeypatch.setattr(precision_choice, "keeps_answer", lambda *a: False)  # bfloat16 changes the answer
    first = precision_choice.choose(model, loaded.tokenizer, tmp_path, 1 << 34)
    assert first[0] == "float32" and "bfloat16 changed the answer" in first[2]
    # however the machine times the paths later, the kept choice stands
    monkeypatch.setattr(precision, "measure_paths", lambda m, memory: pytest.fail("measured again"))
    again = precision_choice.choose(model, loaded.tokenizer, tmp_path, 1 << 34)
    assert again[0] == "float32" and again[2].startswith("kept since") and calls == [1]
    assert precision_choice.forget() == 1
    assert precision_choice.read_all() == {}


@pytest.mark.real_model
def test_smollm2_auto_never_takes_bfloat16s_other_answer(tmp_path, monkeypatch):
    """On MLX's reference BLAS bfloat16 times fastest, and SmolLM2 in bfloat16 answers
    'What is the capital of France?' with "L'Etoile, ..." instead of Paris."""
    from conftest import real_model_or_skip

    from lenscope import models

    loaded = real_model_or_skip(lambda: models.load("smollm2", precision="native"))
    monkeypatch.setenv("LENSCOPE_CACHE", str(tmp_path))
    monkeypatch.setattr(precision, "measure_paths", lambda m, memory: {"native": 270.0, "float32": 200.0,
                                                                        "bfloat16": 60.0})
    before = _bytes(loaded.model)
    choice, measured, how = precision_choice.choose(loaded.model, loaded.tokenizer, loaded.path, 1 << 34)
    assert choice == "float32" and "bfloat16" not in measured and "bfloat16 changed the answer" in how
    assert _bytes(loaded.model) == before
