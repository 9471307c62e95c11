"""The command line (docs/guide/cli.md) (shapes in docs/json): JSON shapes and one-line errors with exit 2."""

import json
import os
import subprocess
import sys

import pytest

ROW_KEYS = {"name", "lens", "token_ids", "tokens", "text", "finite", "attention_to_marks",
            "first_divergence", "kl_from_baseline"}


def test_generate_json_shape(run_cli):
    code, out, err = run_cli("generate", "--prompt", "the key is blue. tom ran to the lake.", "--mark", "blue",
                             "--lens", "emphasis:strength=3", "--lens", "identity", "--max-tokens", "6", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert {"model", "backend", "seed", "temperature", "prompt", "prompt_token_ids", "prompt_tokens",
            "marked_token_indices", "rows", "timing"} <= set(data)
    assert data["model"] == "lenscope-demo" and data["backend"] in ("cpu", "gpu")
    assert len(data["prompt_token_ids"]) == len(data["prompt_tokens"])
    assert data["marked_token_indices"] and all("blue" in data["prompt_tokens"][i]
                                                for i in data["marked_token_indices"])
    names = [r["name"] for r in data["rows"]]
    assert names == ["baseline", "emphasis:strength=3", "identity"]
    for row in data["rows"]:
        assert ROW_KEYS <= set(row)
        assert len(row["token_ids"]) == len(row["tokens"]) <= 6
        assert len(row["attention_to_marks"]) >= len(row["token_ids"])
    base, emph, ident = data["rows"]
    assert base["lens"] is None and emph["lens"]["stack"][0]["kind"] == "emphasis"
    assert base["kl_from_baseline"] == [0.0] * len(base["kl_from_baseline"])
    assert ident["token_ids"] == base["token_ids"] and ident["first_divergence"] is None
    assert emph["attention_to_marks"][0] > base["attention_to_marks"][0]
    assert {"load_s", "prefill_s", "decode_s", "decode_tokens_per_s"} <= set(data["timing"])


def test_generate_capture_attention(run_cli):
    code, out, err = run_cli("generate", "--prompt", "tom saw a cat.", "--max-tokens", "3",
                             "--capture-attention", "--json")
    assert code == 0, err
    att = json.loads(out)["attention"]
    row = att["rows"][0]
    assert len(row["mean"]) == len(row["tokens"])
    assert all(abs(sum(r) - 1) < 1e-3 for r in row["mean"])


def test_attention_command(run_cli):
    code, out, err = run_cli("attention", "--prompt", "the cat sat on the mat.", "--layer", "1", "--head", "2", "--json")
    assert code == 0, err
    data = json.loads(out)
    n = len(data["tokens"])
    assert data["layer"] == 1 and data["head"] == 2 and len(data["matrix"]) == n
    assert all(abs(sum(r) - 1) < 1e-4 for r in data["matrix"])
    assert all(data["matrix"][i][j] == 0 for i in range(n) for j in range(i + 1, n))
    code, out, _ = run_cli("attention", "--prompt", "the cat sat on the mat.", "--layer", "1")
    assert code == 0 and "▀" in out


def test_lenses_json(run_cli):
    _code, out, _ = run_cli("lenses", "--json")
    kinds = {k["kind"]: k for k in json.loads(out)["kinds"]}
    assert {"identity", "emphasis", "steer"} <= set(kinds)
    strength = next(p for p in kinds["emphasis"]["params"] if p["name"] == "strength")
    assert strength["default"] == 3.0 and strength["min"] < 0 < strength["max"]


@pytest.mark.parametrize("args,needle", [
    (["generate", "--prompt", "hi", "--model", "/nonexistent/model"], "model '/nonexistent/model'"),
    (["generate", "--prompt", "   "], "--prompt: empty"),
    (["generate", "--prompt", "hi", "--max-tokens", "many"], "--max-tokens must be an integer"),
    (["generate", "--prompt", "hi", "--temperature", "-1"], "--temperature must be in"),
    (["generate", "--prompt", "hi", "--lens", "warp:speed=9"], "unknown lens kind 'warp'"),
    (["generate", "--prompt", "hi", "--lens", "emphasis:strenght=2"], "has no key 'strenght'"),
    (["generate", "--prompt", "hi", "--lens", "emphasis:strength=99"], "out of range"),
    (["generate", "--prompt", "hi", "--lens", "missing.toml"], "lens file 'missing.toml': not found"),
    (["generate", "--prompt", "the cat", "--mark", "dog"], "--mark 'dog': does not occur"),
    (["generate", "--prompt", "the cat", "--mark-tokens", "0,40"], "index 40 is outside"),
    (["attention", "--prompt", "the cat", "--layer", "9"], "--layer 9"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_one_line_exit_2(run_cli, args, needle):
    code, out, err = run_cli(*args)
    assert code == 2
    assert err.count("\n") == 1 and needle in err, err
    assert "Traceback" not in err and out == ""


def test_console_entry_point_offline(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "lenscope", "doctor", "--json"], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert rep["model"]["loads"] and rep["model"]["name"] == "lenscope-demo"
    assert rep["backend"] in ("cpu", "gpu") and rep["kernels"][0]["name"] == "attention_probs"
    if "blas" in rep:
        assert rep["blas"]["matmul_gflops_1024"] > 0


@pytest.mark.parametrize("command", [
    ["generate", "--max-tokens", "2"], ["score", "--continuation", " blue"], ["attention"], ["logit-lens"],
    ["geometry"]])
@pytest.mark.parametrize("spec, problem", [
    ("emphasis:heads=99", "emphasis: head 99 does not exist (heads are 0..7)"),
    ("emphasis:auto_heads=9", "emphasis: auto_heads=9, the model has 8 heads"),
    ("head-scale:heads=9,layers=0", "head-scale: head 9 does not exist"),
    ("steer:layers=40,token=happy", "steer: layer 40 does not exist (the model has 4 layers)")])
def test_every_entry_point_checks_the_fit_before_running(run_cli, monkeypatch, command, spec, problem):
    """Lens.fit_problems, called by Engine.prepare: one line naming the variant, and no
    forward of that lens ever starts."""
    from lenscope.core.comparison import Comparison

    monkeypatch.setattr(Comparison, "steps", lambda *a, **k: pytest.fail("generated with a lens that does not fit"))
    code, out, err = run_cli(*command, "--prompt", "the key is blue. the key is", "--mark", "blue", "--lens", spec)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and f"variant '{spec}': {problem}" in err, err


def test_the_command_line_loads_no_mlx_before_the_blas_re_exec():
    """`lenscope` re-executes itself with OpenBLAS preloaded (models/blas.py) before MLX
    loads: everything `main` imports until then loads no MLX."""
    code = ("import sys, lenscope.cli.main\n"
            "from lenscope.models.blas import maybe_reexec_with_openblas\n"
            "sys.exit('mlx.core' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60, check=False).returncode == 0


def test_bench_against_llama_cpp_needs_a_gguf_model(run_cli):
    """Refused in one line before any measuring: the demo model was not converted from a GGUF."""
    code, _, err = run_cli("bench", "--against", "llama.cpp")
    assert code == 2
    assert err.count("\n") == 1 and "--against llama.cpp:" in err
