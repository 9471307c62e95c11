"""Fuzzing the loaders and the CLI with mutated valid files.

Valid lens, experiment and session files are mutated (keys deleted, values swapped for
other types, huge numbers, NaN, escapes, lone surrogates, deep nesting, byte flips,
truncation) and fed to the parsers and the CLI. Only two outcomes are allowed: success
or BadInput (for the CLI: exit 0, or exit 2 with exactly one stderr line), never a
traceback, and no file outside --out touched. Bounded and derandomized so it stays fast
and stable; LENSCOPE_FUZZ_RANDOM=1 explores new examples each run, and
LENSCOPE_FUZZ_EXAMPLES=N sets how many (default 100 per loader, 40 per CLI test).
"""

from __future__ import annotations

import copy
import json
import math
import os
import tempfile
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, example, given, reject, settings
from hypothesis import strategies as st

from lenscope.batch import experiment_file
from lenscope.core import results
from lenscope.core.settings import SETTINGS
from lenscope.errors import BadInput
from lenscope.lenses.spec import parse
from lenscope.storage import datafile
from lenscope.storage import session as sessions

EXAMPLES = int(os.environ.get("LENSCOPE_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize="LENSCOPE_FUZZ_RANDOM" not in os.environ,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.filter_too_much])
CLI_FUZZ = settings(FUZZ, max_examples=max(EXAMPLES * 2 // 5, 1))  # each runs the model

LENS = {"variant": [
    {"name": "focus", "lens": [{"kind": "emphasis", "strength": [[0, 0.0], [4, 2.0]], "layers": [0, 1]},
                               {"kind": "temperature", "start": 0.0, "end": 0.0}]},
    {"name": "happy", "lens": [{"kind": "steer", "token": "happy", "strength": 4.0, "layers": [1]}]},
]}
EXPERIMENT = {
    "defaults": {"max_tokens": 2, "temperature": 0.0},
    "comparison": [
        {"name": "a", "prompt": "the key is blue. the key is", "mark": ["blue"],
         "lens": ["emphasis:strength=2", "lens.toml"], "capture_attention": True},
        {"name": "b", "prompt": "one day, tom", "mark_tokens": [0], "seed": 3, "temperature": 0.8,
         "lens": "steer:token=happy,strength=4"},
    ],
}
ROW = {"name": "baseline", "lens": None, "token_ids": [3], "tokens": [" sat"], "text": " sat", "finite": True,
       "finished": False, "attention_to_marks": [0.25], "first_divergence": None, "kl_from_baseline": [0.0],
       "top_alternatives": [[{"token_id": 3, "token": " sat", "prob": 0.5}]]}
SESSION = {
    "format": "lenscope-session", "version": 1, "model": None, "prompt": "the cat", "marks": [0],
    "variants": [{"name": "e", "lens": [{"kind": "emphasis", "strength": [[0, 1.0], [4, 3.0]]}]}],
    "settings": {"seed": 0, "temperature": 0.0, "max_tokens": 8},
    "result": {"model": "lenscope-demo", "backend": "cpu", "seed": 0, "temperature": 0.0, "prompt": "the cat",
               "prompt_token_ids": [1, 2], "prompt_tokens": ["the", " cat"], "marked_token_indices": [0],
               "rows": [ROW, {**ROW, "name": "e", "first_divergence": 0}], "timing": {"prefill_s": 0.01},
               "cancelled": False},
}


def _deep(n: int) -> list:
    value: list = []
    for _ in range(n):
        value = [value]
    return value


NASTY = [2, 1.5, "happy", ["blue"], None, True, False, 0, -1, 1, 2**31, 2**63, 10**30, 1e999, -1e999, math.nan, 0.5, -0.0, "", "x", "nan",
         "1e999", "0@0|nan@3", "3|4@2", "\x1b[31m\x07", "a\nb", "\udcff", "<b>|</b>", "identity", "emphasis",
         [], [1], ["a"], [[0, 1]], {}, {"kind": "identity"}, _deep(40)]
KEYS = ["kind", "name", "lens", "variant", "x", "layers", "strength", "max_tokens", "seed", "temperature",
        "rows", "settings", "comparison", "defaults", "model", "capture_attention", "mark", "token_ids"]


def _nodes(value, path=()):
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _nodes(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _nodes(v, (*path, i))
    return out


def _at(root, path):
    for p in path:
        root = root[p]
    return root


@st.composite
def mutated(draw, seed: dict):
    """`seed` with 0-3 structural mutations."""
    data = copy.deepcopy(seed)
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(_nodes(data)[::-1]))  # leaves first: replacing the root is rarely useful
        node = _at(data, path)
        op = draw(st.sampled_from(["replace", "replace", "delete", "wrap", "add", "dup"]))
        if op == "replace" or (op == "delete" and not path):
            new = copy.deepcopy(draw(st.sampled_from(NASTY)))
        elif op == "delete":
            del _at(data, path[:-1])[path[-1]]
            continue
        elif op == "wrap":
            new = draw(st.sampled_from([[node], {"x": node}]))
        elif op == "add" and isinstance(node, dict):
            node[draw(st.sampled_from(KEYS))] = copy.deepcopy(draw(st.sampled_from(NASTY)))
            continue
        elif op == "dup" and isinstance(node, list) and node:
            node.append(copy.deepcopy(node[draw(st.integers(0, len(node) - 1))]))
            continue
        else:
            continue
        if path:
            _at(data, path[:-1])[path[-1]] = new
        else:
            data = new
    return data


@st.composite
def file_bytes(draw, seed: dict, fmt: str) -> bytes:
    """A mutated `seed` as TOML or JSON bytes, sometimes with flipped bytes or cut short."""
    data = draw(mutated(seed))
    if fmt == "json":
        text = json.dumps(data)  # NaN/Infinity and \udcff escapes included, as a hand edit might
    else:
        if not isinstance(data, dict):
            reject()
        try:
            text = tomli_w.dumps(data)
        except (TypeError, ValueError):  # None and the like have no TOML form
            reject()
    raw = bytearray(text.encode("utf-8", "surrogatepass"))
    damage = draw(st.sampled_from(["none", "none", "none", "flip", "cut"]))  # mostly parseable
    if damage == "flip" and raw:
        for _ in range(draw(st.integers(1, 3))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
    elif damage == "cut" and raw:
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    return bytes(raw)


def _ok_or_bad_input(fn, *args):
    try:
        return fn(*args)
    except BadInput as exc:
        assert str(exc), "a BadInput must say what is wrong"
        return None


# -- the loaders --------------------------------------------------------------------------
@FUZZ
@given(raw=st.one_of(file_bytes(LENS, "toml"), file_bytes(LENS, "json")), suffix=st.sampled_from([".toml", ".json"]))
@example(raw=tomli_w.dumps(LENS).encode(), suffix=".toml")
def test_lens_files(raw, suffix):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"lens{suffix}"
        path.write_bytes(raw)
        variants = _ok_or_bad_input(parse, str(path))
    for v in variants or []:
        assert isinstance(v.name, str)
        json.loads(datafile.dumps(v.normalized()), parse_constant=pytest.fail)  # finite, standard JSON


SPEC_PARTS = ["emphasis", "steer", "temperature", "decay", "slerp", "bias", "identity", ":", ",", "=", "+", "|",
              "@", "strength", "layers", "token", "points", "t", "start", "tokens", "value", "0", "1", "-2", "1e999",
              "nan", "inf", "3.5", "happy", " ", "\n", "\x1b", "\udcff", "all", ";"]


@FUZZ
@given(spec=st.lists(st.sampled_from(SPEC_PARTS), max_size=12).map("".join))
@example(spec="emphasis:strength=0@0|4@10,layers=0|1+slerp:points=3,token=happy")
def test_inline_specs(spec):
    for v in _ok_or_bad_input(parse, spec) or []:
        json.loads(datafile.dumps(v.normalized()), parse_constant=pytest.fail)


@FUZZ
@given(raw=file_bytes(EXPERIMENT, "toml"))
@example(raw=tomli_w.dumps(EXPERIMENT).encode())
def test_experiment_files(raw):
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "lens.toml").write_text(tomli_w.dumps(LENS))
        path = Path(d) / "e.toml"
        path.write_bytes(raw)
        exp = _ok_or_bad_input(experiment_file.load, path)
    for c in (exp or {}).get("comparisons", []):
        for name, param in SETTINGS.items():
            lo, hi = param.bounds()
            if param.type != "bool":
                assert lo <= c[name] <= hi and math.isfinite(c[name])
        assert isinstance(c["name"], str) and isinstance(c["prompt"], str) and c["prompt"].strip()
        assert all(isinstance(m, str) and m for m in c["mark"])


@FUZZ
@given(raw=file_bytes(SESSION, "json"))
@example(raw=json.dumps(SESSION).encode())
def test_session_files(raw):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s.json"
        path.write_bytes(raw)
        s = _ok_or_bad_input(sessions.load, path)
        assert path.read_bytes() == raw  # loading never touches the file
        if s is None:
            return
        if s.result is not None:
            results.from_json(s.result)  # what the TUI replays must not fail later
        sessions.save(s, path)  # and what loads saves as standard JSON that loads again
        json.loads(path.read_text(), parse_constant=pytest.fail)
        assert sessions.load(path).prompt == s.prompt


# -- the command line ---------------------------------------------------------------------
@pytest.fixture
def fast_model(monkeypatch, loaded):
    from lenscope import models

    monkeypatch.setattr(models, "load", lambda *a, **k: loaded)


def _cli_outcome(code: int, out: str, err: str) -> None:
    assert "Traceback" not in err
    assert code in (0, 2), (code, err)
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("lenscope: "), err
        assert out == ""


def _snapshot(root: Path, skip: Path) -> dict:
    return {str(p): (p.is_dir(), None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))
            if p != skip and skip not in p.parents}


@CLI_FUZZ
@given(raw=file_bytes(LENS, "json"))
@example(raw=json.dumps(LENS).encode())
def test_cli_generate_with_a_lens_file(run_cli, fast_model, raw):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "lens.json"
        path.write_bytes(raw)
        code, out, err = run_cli("generate", "--prompt", "the key is blue", "--mark", "blue", "--max-tokens", "2",
                                 "--lens", str(path), "--json")
    _cli_outcome(code, out, err)
    if code == 0:
        json.loads(out, parse_constant=pytest.fail)


@CLI_FUZZ
@given(raw=file_bytes(EXPERIMENT, "toml"), out_exists=st.booleans())
@example(raw=tomli_w.dumps(EXPERIMENT).encode(), out_exists=True)
def test_cli_run(run_cli, fast_model, raw, out_exists):
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "lens.toml").write_text(tomli_w.dumps(LENS))
        (root / "e.toml").write_bytes(raw)
        out = root / "out"
        if out_exists:
            out.mkdir()
            (out / "keep.txt").write_text("mine")
        before = _snapshot(root, out)
        code, stdout, err = run_cli("run", str(root / "e.toml"), "--out", str(out))
        _cli_outcome(code, stdout, err)
        assert _snapshot(root, out) == before  # nothing outside --out touched
        if out_exists:
            assert (out / "keep.txt").read_text() == "mine"
        if code == 0:
            for line in (out / "results.jsonl").read_text().splitlines():
                json.loads(line, parse_constant=pytest.fail)
        elif out_exists:  # a failed run leaves --out as it was: no temp folder, no lock it made
            assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
        else:  # and makes no --out folder
            assert not out.exists()
