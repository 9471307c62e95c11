"""`lenscope fit` (steer, reft, lora), fitted lenses and mlx-lm adapters as rows, on the
bundled model; references computed apart from the code under test (numpy for the edits,
mlx-lm's own load_adapters + generate_step for an adapter's tokens)."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from lenscope.batch import fit
from lenscope.core.engine import Request
from lenscope.errors import BadInput
from lenscope.lenses import fitted
from lenscope.lenses.spec import parse, parse_inline

PROMPT = "sam has a cup. the cup is"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Short stories whose thing is always red: what a lens should learn."""
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("data") / "red.jsonl"
    names, things = ["tom", "mia", "leo", "max", "jack", "ana", "bob", "eve"], ["key", "hat", "box", "car", "pen"]
    lines = []
    for _ in range(20):
        n, t = rng.choice(names), rng.choice(things)
        lines.append({"prompt": f"{n} has a {t}. the {t} is", "completion": " red."})
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def rows(engine, specs, max_tokens=4) -> list[list[int]]:
    variants = [v for s in specs for v in (parse(s) if isinstance(s, str) else [s])]
    res = engine.compare(Request(PROMPT, variants, [], max_tokens=max_tokens, stop_at_eos=False)).run()
    return [r.token_ids for r in res.rows]


@pytest.mark.parametrize("kind", ["steer", "reft"])
def test_a_fitted_lens_learns_the_completion_and_is_a_lens(engine, data, tmp_path, kind):
    examples = fit.read_examples(engine, str(data))
    opts = fit.FitOptions(kind=kind, layers=(1, 2), rank=2, steps=25, seed=3)
    report = fit.fit(engine, examples, opts, tmp_path / "a")
    assert report.heldout["after"] < 0.5 * report.heldout["before"], report.heldout
    assert report.kl["before"] < 1e-6 < report.kl["after"]
    saved = json.loads((tmp_path / "a" / "fit.json").read_text())
    assert saved["loss"] == report.loss and len(report.loss) == 25
    # deterministic for a seed: the same tensors again
    fit.fit(engine, examples, opts, tmp_path / "b")
    a, _ = fitted.read(str(tmp_path / "a" / "lens.safetensors"))
    b, _ = fitted.read(str(tmp_path / "b" / "lens.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(np.array(a[k]), np.array(b[k])) for k in a)
    # a lens file like any other, from another folder: its tensors are found beside it
    here = os.getcwd()
    os.chdir(tmp_path.parent)
    try:
        base, learned, zero = rows(engine, [str(tmp_path / "a" / "lens.toml"),
                                            f"fitted:file={tmp_path / 'a' / 'lens.safetensors'},strength=0"])
    finally:
        os.chdir(here)
    red = engine.encode(" red")[-1]
    assert learned[0] == red and base[0] != red
    assert zero == base  # strength 0 is the baseline, exactly


def test_the_edits_are_the_formulas(engine):
    """steer adds v; reft adds R^T(W h + b - R h): checked against numpy on random tensors."""
    rng = np.random.default_rng(0)
    d, r = engine.hidden_size, 3
    h = rng.standard_normal((1, 5, d)).astype(np.float32)
    q, _ = np.linalg.qr(rng.standard_normal((d, r)))
    R, W, b = q.T.astype(np.float32), rng.standard_normal((r, d)).astype(np.float32), rng.standard_normal(r)
    t = {"layer.0.R": mx.array(R), "layer.0.W": mx.array(W), "layer.0.b": mx.array(b.astype(np.float32))}
    want = (h @ W.T + b - h @ R.T) @ R
    np.testing.assert_allclose(np.array(fitted.edit("reft", t, 0, mx.array(h))), want, rtol=1e-4, atol=1e-4)
    v = rng.standard_normal(d).astype(np.float32)
    np.testing.assert_allclose(np.array(fitted.edit("steer", {"layer.0.v": mx.array(v)}, 0, mx.array(h))),
                               np.broadcast_to(v, h.shape))


def test_reft_keeps_r_orthonormal(engine, data, tmp_path):
    fit.fit(engine, fit.read_examples(engine, str(data)), fit.FitOptions(kind="reft", layers=(2,), rank=3, steps=5),
            tmp_path)
    t, _ = fitted.read(str(tmp_path / "lens.safetensors"))
    R = np.array(t["layer.2.R"])
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-5)


def test_a_fitted_lens_is_refused_on_another_model_shape(engine, tmp_path):
    path = tmp_path / "lens.safetensors"
    meta = {"hidden_size": engine.hidden_size + 1, "n_layers": engine.n_layers,
            "vocab": fitted.vocab_hash(engine.tokenizer), "model": "x"}
    fitted.write(path, "steer", {"layer.1.v": np.zeros(engine.hidden_size + 1)}, meta)
    with pytest.raises(BadInput, match="hidden_size"):
        engine.prepare([parse_inline(f"fitted:file={path}")])
    fitted.write(path, "steer", {"layer.1.v": np.zeros(engine.hidden_size)},
                 {**meta, "hidden_size": engine.hidden_size, "vocab": "0" * 16})
    with pytest.raises(BadInput, match="vocab"):
        engine.prepare([parse_inline(f"fitted:file={path}")])


@pytest.mark.parametrize("content,needle", [
    (b"not safetensors", "not a safetensors file"),
    (None, "not a file lenscope fit wrote"),
])
def test_a_foreign_file_is_one_line(tmp_path, content, needle):
    path = tmp_path / "x.safetensors"
    if content is None:
        mx.save_safetensors(str(path), {"direction": mx.zeros((4,))})
    else:
        path.write_bytes(content)
    with pytest.raises(BadInput, match=needle):
        parse_inline(f"fitted:file={path}")


@pytest.mark.parametrize("line,needle", [
    ('[1, 2]', "not a JSON object"),
    ('{"prompt": "a"}', "expected prompt\\+completion"),
    ('{"prompt": "", "completion": "x"}', "'prompt' must be non-empty text"),
    ('{"messages": [{"role": "user", "content": "hi"}]}', "ending with an assistant message"),
])
def test_bad_data_lines_are_one_line(engine, tmp_path, line, needle):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "the cat sat on the mat"}\n' + line + "\n")
    with pytest.raises(BadInput, match=needle):
        fit.read_examples(engine, str(path))


def test_pairs_and_messages_are_read(engine, tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"prompt": "the cup is", "chosen": " red.", "rejected": " blue."}) + "\n"
                    + json.dumps({"messages": [{"role": "user", "content": "hi"},
                                               {"role": "assistant", "content": "hello"}]}) + "\n")
    pair, chat = fit.read_examples(engine, str(path))
    assert pair.rejected and pair.target != pair.rejected
    assert chat.target and chat.rejected is None


def test_an_adapter_row_gives_mlx_lm_s_own_tokens(engine, data, tmp_path):
    """A LoRA trained by mlx-lm's tuner (fit --kind lora), run as a row: the tokens mlx-lm's
    load_adapters + generate_step give on the same weights."""
    import mlx_lm
    from mlx_lm.generate import generate_step
    from mlx_lm.tuner.utils import load_adapters

    from lenscope.batch import fit_lora
    from lenscope.models.sources import DEMO_MODEL_DIR

    out = tmp_path / "lora"
    report = fit_lora.fit(None, data, out, num_layers=2, rank=4, steps=6, batch=4, lr=1e-3)
    assert report.heldout and (out / "adapters.safetensors").is_file()
    model, _ = mlx_lm.load(str(DEMO_MODEL_DIR))
    model = load_adapters(model, str(out))
    ids = engine.encode(PROMPT)
    want = [int(t) for t, _ in generate_step(mx.array(ids), model, max_tokens=6,
                                             sampler=lambda x: mx.argmax(x, axis=-1))]
    base, adapted, off = rows(engine, [str(out), f"adapter:path={out},strength=0"], max_tokens=6)
    assert adapted == want
    assert off == base
    shutil.rmtree(out / "data")


def test_an_adapter_of_another_kind_or_shape_is_refused(tmp_path, engine):
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"fine_tune_type": "dora"}))
    with pytest.raises(BadInput, match="dora"):
        parse(str(folder))
    (folder / "adapter_config.json").write_text(json.dumps({"fine_tune_type": "lora",
                                                            "lora_parameters": {"scale": 2.0}}))
    mx.save_safetensors(str(folder / "adapters.safetensors"),
                        {"model.layers.0.self_attn.q_proj.lora_a": mx.zeros((7, 2)),
                         "model.layers.0.self_attn.q_proj.lora_b": mx.zeros((2, 7))})
    with pytest.raises(BadInput, match="q_proj"):
        engine.prepare(parse(str(folder)))


def test_fit_on_the_command_line(data, tmp_path, run_cli):
    out = tmp_path / "cli"
    code, stdout, err = run_cli("fit", "--data", str(data), "--kind", "steer", "--layers", "1", "--steps", "3",
                                "--out", str(out))
    assert code == 0 and "held-out loss" in stdout and (out / "lens.toml").is_file(), err
    code, _, err = run_cli("fit", "--data", str(data), "--out", str(out))
    assert code == 2 and "exists and is not an empty folder" in err
    code, _, err = run_cli("fit", "--data", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "x"))
    assert code == 2 and "not found" in err and err.count("\n") == 1
    code, _, err = run_cli("fit", "--data", str(data), "--layers", "9", "--out", str(tmp_path / "y"))
    assert code == 2 and "layer 9 does not exist" in err


async def test_a_fit_from_the_tui_adds_its_row(data, tmp_path):
    from textual.widgets import Input
    from tui_helpers import app, ready

    from lenscope.tui.compose.variant_list import VariantList

    shutil.copy(data, tmp_path / "red.jsonl")
    a = app(lens_specs=[])
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        a.main.query_one(VariantList).action_fit_lens()  # the palette's "Fit a lens from examples"
        await pilot.pause()
        a.screen.query_one(Input).value = str(tmp_path / "red.jsonl")
        await pilot.press("enter")
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.pause()
        assert [v.name for v in a.ws.variants] == ["fitted-steer"]
        assert (tmp_path / "red-steer" / "fit.json").is_file()
        assert "held-out loss" in str(a.main.query_one("#status").render())
