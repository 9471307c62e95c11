"""Hostile model files, stores, caches and paths: each case is one line on stderr
with exit 2 (or is ignored and rebuilt), never a traceback, a hang, unbounded memory, a
silently wrong model or a touched file. Kinds: a model shape mlx-lm would build broken, a
tokenizer vocabulary that lies, a tensor shorter than its shape, a chat template that is a
time or memory bomb, a `~user` path, a cache that is a file, a stale shard, a foreign or
other model's output folder, a cut results file."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from lenscope.errors import BadInput

gr = pytest.importorskip("gguf_reference")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LENSCOPE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def one_line(result, needle: str) -> None:
    code, out, err = result
    assert code == 2, (out, err)
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and last.startswith("lenscope: ") and needle in last, err


def generate(run_cli, model, *extra):
    return run_cli("generate", "--model", str(model), "--prompt", "hi", "--max-tokens", "1", *extra)


# -- shapes mlx-lm would build broken: refused before anything runs -----------------------------
SHAPES = [
    ("kv_heads", {"heads": 4, "kv_heads": 3, "head_dim": 16}, "3 key/value heads do not divide 4 attention heads"),
    ("gemma3_pattern", {"arch": "gemma3", "layers": 2}, "fewer than its sliding-window pattern of 6"),
    ("window_zero", {"arch": "gemma3", "layers": 6, "metadata": {"gemma3.attention.sliding_window": 0}},
     "sliding_window is 0"),
]


@pytest.mark.parametrize("name,kw,needle", SHAPES, ids=[c[0] for c in SHAPES])
def test_a_broken_shape_is_refused_before_it_runs(tmp_path, cache, run_cli, name, kw, needle):
    src = gr.write_tiny(tmp_path / f"{name}.gguf", **kw)
    one_line(generate(run_cli, src), needle)


def test_a_folder_whose_config_lies_is_refused(tmp_path, run_cli):
    from lenscope.models.sources import DEMO_MODEL_DIR

    folder = tmp_path / "m"
    shutil.copytree(DEMO_MODEL_DIR, folder)
    config = json.loads((folder / "config.json").read_text())
    for key, value, needle in [("num_key_value_heads", 3, "do not divide"), ("hidden_size", -8, "hidden_size is -8"),
                               ("num_hidden_layers", "4", "num_hidden_layers is '4'")]:
        (folder / "config.json").write_text(json.dumps({**config, key: value}))
        one_line(generate(run_cli, folder), needle)


def test_an_unreadable_config_is_one_line(tmp_path, run_cli):
    from lenscope.models.sources import DEMO_MODEL_DIR

    folder = tmp_path / "m"
    shutil.copytree(DEMO_MODEL_DIR, folder)
    (folder / "config.json").unlink()
    (folder / "config.json").mkdir()  # unreadable as a file, also for root
    one_line(generate(run_cli, folder), "config.json")


# -- vocabularies that lie ------------------------------------------------------------------------
def test_duplicate_tokens_in_a_vocabulary(tmp_path, cache, run_cli):
    tokens, _, _ = gr.byte_level_vocab()
    src = gr.write_tiny(tmp_path / "dup.gguf", metadata={"tokenizer.ggml.tokens": [tokens[5]] + tokens[1:]})
    one_line(generate(run_cli, src), "appears twice (ids 0 and 5)")


def test_a_sentencepiece_vocabulary_without_scores(tmp_path, cache, run_cli):
    tokens = ["<unk>", "<s>", "</s>"] + [f"\u2581w{i}" for i in range(253)]
    spm = (tokens, [0.0] * len(tokens), [2, 3, 3] + [1] * 253)
    src = gr.write_tiny(tmp_path / "sp.gguf", spm=spm, metadata={"tokenizer.ggml.scores": None})
    one_line(generate(run_cli, src), "needs one score per token")


def test_more_tokens_than_embedding_rows(tmp_path, cache, run_cli):
    tokens, types, _ = gr.byte_level_vocab()
    extra = [f"extra{i}" for i in range(100)]
    src = gr.write_tiny(tmp_path / "big.gguf", metadata={"tokenizer.ggml.tokens": tokens + extra,
                                                         "tokenizer.ggml.token_type": types + [1] * 100})
    one_line(generate(run_cli, src), f"token id {len(tokens) + 99} but the embedding table only {len(tokens)} rows")


def test_a_token_id_past_the_vocabulary(tmp_path, cache, run_cli):
    src = gr.write_tiny(tmp_path / "eos.gguf", metadata={"tokenizer.ggml.eos_token_id": 10**6})
    one_line(generate(run_cli, src), "'tokenizer.ggml.eos_token_id' is 1000000, not a token")


# -- a tensor shorter than its shape ------------------------------------------------------------
def test_a_tensor_cut_short_is_refused_without_numpy_warnings(tmp_path, cache, run_cli, recwarn):
    from gguf import GGMLQuantizationType as T

    src = gr.write_tiny(tmp_path / "cut.gguf", qtype=T.Q4_K, hidden=256, ffn=256)
    data = src.read_bytes()
    src.write_bytes(data[: len(data) - 40_000])  # the last tensors lose their tail
    result = generate(run_cli, src)
    one_line(result, "its data ends past the end of the file")
    assert "RuntimeWarning" not in result[2] and not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


# -- a stale shard beside a converted folder ------------------------------------------------------
def test_a_stale_shard_not_in_the_manifest_makes_the_folder_convert_again(tmp_path, cache):
    from lenscope.models import manifest
    from lenscope.models import sources as ms

    src = gr.write_tiny(tmp_path / "tiny.gguf")
    folder = ms.gguf_folder(src)
    assert manifest.intact(folder)
    shutil.copy(folder / "model-00001.safetensors", folder / "model-00002.safetensors")
    assert not manifest.intact(folder)
    again = ms.gguf_folder(src)
    assert again == folder and not (folder / "model-00002.safetensors").exists() and manifest.intact(folder)


def test_a_converted_folder_with_a_list_for_its_source(tmp_path, cache, run_cli):
    from lenscope.models import sources as ms

    folder = ms.gguf_folder(gr.write_tiny(tmp_path / "tiny.gguf"))
    assert ms.gguf_source(folder)["source"] == str((tmp_path / "tiny.gguf").resolve())
    (folder / "gguf_source.json").write_text("[1, 2]")
    assert ms.gguf_source(folder) == {}
    (folder / "gguf_source.json").write_text('{"source": ["x"]}')
    assert "source" not in ms.gguf_source(folder)
    code, _, err = run_cli("models", "--json")
    assert code == 0 and "Traceback" not in err


# -- chat templates that are bombs: bounded in time and memory ----------------------------------------
BOMBS = [
    ("huge_string", "{{ 'x' * 10**10 }}", "builds a value of 10,000,000,000 items"),
    ("huge_list", "{{ [1] * 10**9 }}", "builds a value"),
    ("huge_power", "{{ 7 ** 100000000 }}", "past 4096 bits"),
    ("nested_loops", "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
     "ran more than 1,000,000 steps"),
    ("doubling", ("{% set ns = namespace(s='xx') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
                  "{% endfor %}{{ ns.s }}"), "grew the process by more than 256 MiB"),
    ("recursion", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursed too deeply"),
]


@pytest.mark.parametrize("name,template,needle", BOMBS, ids=[c[0] for c in BOMBS])
def test_a_chat_template_bomb_is_stopped(tmp_path, cache, run_cli, name, template, needle):
    src = gr.write_tiny(tmp_path / f"{name}.gguf", metadata={"tokenizer.chat_template": template})
    t = time.perf_counter()
    one_line(generate(run_cli, src, "--chat"), needle)
    assert time.perf_counter() - t < 30


def test_the_bounded_template_renders_what_transformers_renders(loaded):
    from lenscope.models import chat_template

    tok = loaded.tokenizer
    for messages in ([{"role": "user", "content": "hi <b> & {{ x }}"}],
                     [{"role": "system", "content": "be brief"}, {"role": "user", "content": "a\nb"}]):
        assert chat_template.render(tok, messages) == tok.apply_chat_template(messages, add_generation_prompt=True,
                                                                              tokenize=False)


# -- paths: `~user` of no user, a cache that is a file ------------------------------------------------
@pytest.mark.parametrize("args,needle", [
    (("run", "~nosuchuser/e.toml", "--out", "o"), "'~nosuchuser' names no user"),
    (("generate", "--prompt", "hi", "--lens", "~nosuchuser/l.toml"), "'~nosuchuser' names no user"),
    (("generate", "--prompt", "hi", "--lens", "constrain:schema=~nosuchuser/s.json"), "'~nosuchuser' names no user"),
    (("generate", "--model", "~nosuchuser/m.gguf", "--prompt", "hi"), "'~nosuchuser' names no user"),
], ids=["experiment", "lens_file", "schema_file", "model"])
def test_a_path_of_no_user_is_one_line(tmp_path, monkeypatch, run_cli, args, needle):
    monkeypatch.chdir(tmp_path)
    one_line(run_cli(*args), needle)


@pytest.mark.parametrize("var", ["LENSCOPE_CACHE", "OLLAMA_MODELS"])
def test_a_store_under_no_user_is_one_line(tmp_path, monkeypatch, run_cli, var):
    monkeypatch.setenv(var, "~nosuchuser/store")
    one_line(run_cli("models"), f"{var}: '~nosuchuser' names no user")


def test_a_cache_that_is_a_file(tmp_path, monkeypatch, run_cli):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("LENSCOPE_CACHE", str(tmp_path / "file"))
    one_line(generate(run_cli, gr.write_tiny(tmp_path / "tiny.gguf")), "cannot write the converted model")
    code, out, err = run_cli("doctor")
    assert code == 0 and "not kept" in out and "Traceback" not in err


def test_a_downloads_folder_that_is_a_file(tmp_path, monkeypatch, run_cli):
    (tmp_path / "c" / "downloads").parent.mkdir()
    (tmp_path / "c" / "downloads").write_text("x")
    monkeypatch.setenv("LENSCOPE_CACHE", str(tmp_path / "c"))
    one_line(generate(run_cli, "smollm2"), "cannot make the download folder")


# -- output folders: another's results, another model's work, a cut file ---------------------------
EXPERIMENT = '[[comparison]]\nname = "c"\nprompt = "the cat sat"\nmax_tokens = 2\n'


def test_run_refuses_a_folder_holding_results_it_did_not_write(tmp_path, run_cli):
    exp = tmp_path / "e.toml"
    exp.write_text(EXPERIMENT)
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.jsonl").write_text('{"comparison": "c"}\n')
    one_line(run_cli("run", str(exp), "--out", str(out), "--resume"), "no lenscope run marked as its own")
    assert (out / "results.jsonl").read_text() == '{"comparison": "c"}\n'


def test_resume_keeps_work_only_for_the_same_model_content(tmp_path, run_cli):
    from lenscope.models.sources import DEMO_MODEL_DIR

    exp = tmp_path / "e.toml"
    exp.write_text(EXPERIMENT)
    model = tmp_path / "m"
    shutil.copytree(DEMO_MODEL_DIR, model)
    out = tmp_path / "out"
    assert run_cli("run", str(exp), "--out", str(out), "--model", str(model))[0] == 0
    code, _, err = run_cli("run", str(exp), "--out", str(out), "--model", str(model), "--resume")
    assert code == 0 and "already in" in err
    # the same folder name, other weights: its results are not this model's
    weights = next(model.glob("*.safetensors"))
    raw = bytearray(weights.read_bytes())
    raw[-64:] = bytes(64)
    weights.write_bytes(bytes(raw))
    code, _, err = run_cli("run", str(exp), "--out", str(out), "--model", str(model), "--resume")
    assert code == 0 and "made for other work" in err


def test_diff_refuses_a_cut_results_file(tmp_path, run_cli):
    exp = tmp_path / "e.toml"
    exp.write_text(EXPERIMENT.replace('"c"', '"c1"') + EXPERIMENT.replace('"c"', '"c2"'))
    out = tmp_path / "out"
    assert run_cli("run", str(exp), "--out", str(out))[0] == 0
    text = (out / "results.jsonl").read_text()
    cut = tmp_path / "cut.jsonl"
    cut.write_text(text[: len(text) - 40])
    one_line(run_cli("diff", str(out), str(cut)), "line 2 is not JSON")


def test_reports_escape_html_from_outputs_and_names():
    from lenscope.reports.markdown import md_escape

    assert "<" not in md_escape("<script>alert(1)</script><img src=x onerror=y>").replace("\\<", "")


def test_a_schema_nested_too_deep_and_one_past_llguidance(engine):
    from lenscope.lenses.constrain import Constrain

    deep = '{"type": "object", "properties": {"a": ' * 5000 + "{}" + "}}" * 5000
    with pytest.raises(BadInput, match="nested deeper than 32"):
        Constrain(json_schema=deep).grammar_text()
    wide = json.dumps({"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(12000)}})
    with pytest.raises(BadInput, match="more symbols than llguidance holds"):
        Constrain(json_schema=wide).prepare(engine, [1, 2], [])
