"""GGUF files in other programs' stores: a fake Ollama store, LM Studio folder and hub
cache made here, listed from their headers and run with --model ollama:NAME."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from lenscope.errors import BadInput

gr = pytest.importorskip("gguf_reference")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh home, cache and hub cache, and no OLLAMA_MODELS: only what a test makes."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LENSCOPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def _ollama_store(root, name="tinyllama", tag="latest", namespace="library", **kw):
    """Ollama's layout: the GGUF as blobs/sha256-<hex>, a manifest naming it."""
    root.mkdir(parents=True, exist_ok=True)
    src = gr.write_tiny(root.parent / f"{name}-{tag}.gguf", **kw)
    data = src.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / f"sha256-{digest}").write_bytes(data)
    manifest = root / "manifests" / "registry.ollama.ai" / namespace / name / tag
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"schemaVersion": 2, "layers": [
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "0" * 64, "size": 10},
        {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}", "size": len(data)}]}))
    return digest


def test_models_lists_ollama_lmstudio_and_hub_ggufs(home, tmp_path, run_cli):
    from gguf import GGMLQuantizationType as T

    _ollama_store(home / ".ollama" / "models", qtype=T.Q8_0)
    _ollama_store(home / ".ollama" / "models", name="qwen", tag="0.5b", namespace="someone", arch="qwen2",
                  biases=True)
    lms = home / ".lmstudio" / "models" / "pub" / "repo"
    lms.mkdir(parents=True)
    gr.write_tiny(lms / "model-Q4_K_M.gguf", qtype=T.Q4_K, hidden=256, ffn=256,
                  metadata={"general.file_type": 15})
    (lms / "broken.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 32)  # listed as nothing, not a crash
    os.mkfifo(lms / "pipe.gguf")  # would block open(): skipped
    (lms / "loop").symlink_to(lms)  # a link back up: not followed
    snap = tmp_path / "hub" / "models--org--tiny-GGUF" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (tmp_path / "hub" / "models--org--tiny-GGUF" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--tiny-GGUF" / "refs" / "main").write_text("abc")
    gr.write_tiny(snap / "tiny-f32.gguf", arch="gemma2", head_dim=16)

    code, out, _ = run_cli("models", "--json")
    assert code == 0
    rows = {m["name"]: m for m in json.loads(out)["models"]}
    ollama = rows["ollama:tinyllama:latest"]
    assert ollama["kind"] == "ollama" and ollama["architecture"] == "llama" and ollama["quantization"] == "Q8_0"
    blobs = home / ".ollama" / "models" / "blobs"
    assert ollama["path"].startswith(str(blobs / "sha256-")) and ollama["parameters"] > 0
    assert rows["ollama:someone/qwen:0.5b"]["architecture"] == "qwen2"
    lm = next(m for m in rows.values() if m["kind"] == "lmstudio")
    assert lm["quantization"] == "Q4_K_M" and lm["path"].endswith("model-Q4_K_M.gguf")
    assert not any(m["path"].endswith("broken.gguf") for m in rows.values())
    hub = next(m for m in rows.values() if m["kind"] == "hub-gguf")
    assert hub["architecture"] == "gemma2" and hub["quantization"] == "F32" and hub["source"] == "org/tiny-GGUF"
    code, text, _ = run_cli("models")
    assert "ollama:tinyllama:latest" in text and "llama, Q8_0" in text


def test_ollama_model_runs_and_converts_once(home, run_cli, monkeypatch):
    from lenscope.models import sources

    digest = _ollama_store(home / ".ollama" / "models")
    for spec in ("ollama:tinyllama", "ollama:tinyllama:latest", "ollama:library/tinyllama:latest"):
        code, out, err = run_cli("generate", "--model", spec, "--prompt", "the world", "--max-tokens", "3",
                                 "--json")
        assert code == 0, err
        assert json.loads(out)["rows"][0]["text"] is not None
    # the blob is hashed once (its name's claim checked), then the memo answers
    memo = json.loads((sources.cache_root() / "gguf" / "hashes.json").read_text())
    assert list(memo.values()) == [digest]
    assert [p.name for p in (sources.cache_root() / "gguf").iterdir() if p.is_dir()] == \
        [f"{digest[:16]}-v{sources.CONVERTER_VERSION}"]


def test_ollama_models_elsewhere_and_bad_names(home, tmp_path, monkeypatch):
    from lenscope.models import sources
    from lenscope.models.stores import resolve_ollama

    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "elsewhere"))
    digest = _ollama_store(tmp_path / "elsewhere", name="m", tag="q4")
    assert resolve_ollama("m:q4")[1] == digest
    for bad, why in [("nope", "no such model"), ("", "expected ollama:NAME"), ("a/b/c/d", "expected"),
                     ("../m:q4", "expected"), ("m:../../x", "expected")]:
        with pytest.raises(BadInput, match=why):
            sources.resolve_model(f"ollama:{bad}")
    manifest = tmp_path / "elsewhere" / "manifests" / "registry.ollama.ai" / "library" / "m" / "q4"
    for text in ["{", "[]", json.dumps({"layers": [{"mediaType": "application/vnd.ollama.image.model",
                                                    "digest": "sha256:../../etc"}]}),
                 json.dumps({"layers": [{"mediaType": "application/vnd.ollama.image.model",
                                         "digest": "sha256:" + "a" * 64}]})]:
        manifest.write_text(text)
        with pytest.raises(BadInput, match="names no model file"):
            sources.resolve_model("ollama:m:q4")


def test_a_lying_blob_never_fills_an_honest_files_cache_entry(home, tmp_path, run_cli, monkeypatch):
    """A blob named for another file's sha256 is refused; the honest file, loaded after it,
    converts from its own bytes and gives its own tokens."""
    from lenscope.models import sources

    honest = gr.write_tiny(tmp_path / "honest.gguf", seed=1)
    liar = gr.write_tiny(tmp_path / "liar.gguf", seed=2)
    claimed = hashlib.sha256(honest.read_bytes()).hexdigest()
    store = home / ".ollama" / "models"
    _ollama_store(store)
    (store / "blobs" / f"sha256-{claimed}").write_bytes(liar.read_bytes())  # the liar's bytes, the honest name
    manifest = store / "manifests" / "registry.ollama.ai" / "library" / "tinyllama" / "latest"
    data = json.loads(manifest.read_text())
    data["layers"][1]["digest"] = f"sha256:{claimed}"
    manifest.write_text(json.dumps(data))
    code, _, err = run_cli("generate", "--model", "ollama:tinyllama", "--prompt", "the world", "--max-tokens", "3")
    said = [ln for ln in err.strip().splitlines() if not ln.startswith("lenscope: hashing")]  # progress
    assert code == 2 and len(said) == 1 and "its name claims" in said[0]
    assert not (sources.cache_root() / "gguf" / f"{claimed[:16]}-v{sources.CONVERTER_VERSION}").exists()
    args = ["generate", "--model", str(honest), "--prompt", "the world", "--max-tokens", "6", "--json"]
    code, out, err = run_cli(*args)
    assert code == 0, err
    monkeypatch.setenv("LENSCOPE_CACHE", str(tmp_path / "fresh-cache"))  # where no liar ever came
    code, fresh, err = run_cli(*args)
    assert code == 0, err
    assert json.loads(out)["rows"][0]["token_ids"] == json.loads(fresh)["rows"][0]["token_ids"]


def test_store_metadata_never_reaches_the_terminal_raw(home, run_cli):
    """A GGUF's general.architecture with escape codes (clear screen, window title) is
    printed escaped, and `models --json` keeps its schema (a string or null)."""
    _ollama_store(home / ".ollama" / "models", metadata={"general.architecture": "llama\x1b[2J\x1b]0;PWNED\x07"})
    code, out, err = run_cli("models")
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out and "\\x1b[2J" in out
    _ollama_store(home / ".ollama" / "models", name="numeric", metadata={"general.architecture": 7})
    code, out, err = run_cli("models", "--json")
    assert code == 0, err
    archs = [m["architecture"] for m in json.loads(out)["models"] if "architecture" in m]
    assert all(a is None or isinstance(a, str) for a in archs) and "\x1b" not in out
