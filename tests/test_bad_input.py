"""The bad-input corpus: every input that once gave a traceback, a wrong result, raw
terminal escapes or a touched file, and what it must give now.

The rule: bad input is BadInput, which the CLI prints as ONE line on stderr (controls
escaped) with exit status 2, no traceback, and nothing saved touched. Each table row is
one case; loaders are called directly where they can be, the CLI in-process, and the
model (the bundled one, loaded once) only where a check needs it.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lenscope.batch import experiment_file
from lenscope.core import results
from lenscope.errors import BadInput
from lenscope.lenses import directions
from lenscope.lenses.spec import parse
from lenscope.reports.markdown import markdown
from lenscope.storage import datafile, files
from lenscope.storage import session as sessions

DEEP_JSON = "[" * 100_000 + "]" * 100_000  # RecursionError in json
DEEP_TOML = "x = " + "[" * 5000 + "]" * 5000  # RecursionError in tomllib
NESTED_JSON = "[" * 40 + "]" * 40  # parses, but deeper than any file of ours
GOOD_EXPERIMENT = '[[comparison]]\nname = "c"\nprompt = "the cat sat"\nmax_tokens = 2\n'


def one_error_line(code: int, out: str, err: str, needle: str) -> None:
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and err.startswith("lenscope: "), err
    assert needle in err, err
    assert "Traceback" not in err and out == ""
    assert not any(c in err[:-1] for c in "\x1b\x07\r\n\x9b"), repr(err)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root with its content and mode: to assert nothing was touched."""
    return {str(p.relative_to(root)): (p.is_dir(), None if p.is_dir() else p.read_bytes(), p.stat().st_mode)
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def fast_model(monkeypatch, loaded):
    """The CLI's model load, answered from the session's already loaded model."""
    from lenscope import models

    monkeypatch.setattr(models, "load", lambda *a, **k: loaded)
    return loaded


@pytest.fixture
def no_model(monkeypatch):
    """The case must fail before any model is loaded (checked before computing)."""
    from lenscope import models

    def refuse(*a, **k):
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(models, "load", refuse)


# -- lens files: parsed by lenses.spec.parse ----------------------------------------------
LENS_FILES = [
    ("deep.json", DEEP_JSON, "nested too deeply"),
    ("deep.toml", DEEP_TOML, "nested too deeply"),
    ("nested.json", NESTED_JSON, "nested deeper than 32"),
    ("nested.toml", "[" + ".".join(["a"] * 40) + "]\n", "nested deeper than 32"),
    ("kf_value.toml", 'kind = "emphasis"\nstrength = [[0, 1e999]]\n', "finite"),
    ("kf_step.toml", 'kind = "emphasis"\nstrength = [[1e999, 1.0]]\n', "keyframes"),
    ("kf_empty.toml", 'kind = "emphasis"\nstrength = []\n', "keyframes"),
    ("kf_shape.json", '{"kind": "emphasis", "strength": [[0, 1, 2]]}', "keyframes"),
    ("layers_inf.toml", 'kind = "emphasis"\nlayers = [1e999]\n', "layers must be integers"),
    ("layers_float.toml", 'kind = "emphasis"\nlayers = [1.5]\n', "layers must be integers"),
    ("layers_huge.json", '{"kind": "emphasis", "layers": [1' + "0" * 40 + "]}", "out of range"),
    ("surrogate.json", '{"name": "\\ud800", "kind": "identity"}', "lone surrogate"),
    ("name_int.json", '{"variant": [{"name": 5, "kind": "identity"}]}', "'name' must be text"),
    ("name_list.toml", 'name = ["a"]\nkind = "identity"\n', "'name' must be text"),
    ("kind_list.json", '{"kind": ["emphasis"]}', "unknown lens kind"),
    ("kind_escape.json", '{"kind": "\\u001b[31mred\\u0007"}', "unknown lens kind"),
    ("nan.toml", 'kind = "emphasis"\nstrength = nan\n', "finite"),
    ("inf.toml", 'kind = "emphasis"\nstrength = -inf\n', "finite"),
    ("nan.json", '{"kind": "emphasis", "strength": NaN}', "finite"),
    ("infinity.json", '{"kind": "emphasis", "strength": Infinity}', "finite"),
    ("bool_float.json", '{"kind": "emphasis", "strength": true}', "must be a number"),
    ("str_list.json", '{"kind": "steer", "token": ["a"]}', "token must be text"),
    ("variant_int.json", '{"variant": [5]}', "variant 1 must be a table"),
    ("top_list.json", "[1]", "top level must be an object"),
    ("not_utf8.toml", b"kind = \"\xff\"\n", "not UTF-8"),
    ("digits.json", '{"kind": "emphasis", "strength": ' + "9" * 5000 + "}", "not valid JSON"),
]


@pytest.mark.parametrize("name,content,needle", LENS_FILES, ids=[c[0] for c in LENS_FILES])
def test_lens_file(tmp_path, name, content, needle):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    with pytest.raises(BadInput, match=needle):
        parse(str(path))


INLINE = [
    ("emphasis:strength=nan", "finite"),
    ("emphasis:strength=inf", "finite"),
    ("emphasis:strength=nan@0", "finite"),
    ("emphasis:strength=0@0|nan@5", "finite"),
    ("emphasis:strength=3|4@2", "keyframes"),  # a point without a step (was IndexError)
    ("emphasis:strength=1@-1", "keyframes"),
    ("emphasis:layers=1e999", "layers must be integers"),
    ("emphasis:layers=99999999999", "out of range"),
    ("steer:method=nope", "method must be one of"),
]


@pytest.mark.parametrize("spec,needle", INLINE)
def test_inline_spec(spec, needle):
    with pytest.raises(BadInput, match=needle):
        parse(spec)


def test_unreadable_lens_file(tmp_path, monkeypatch):
    (tmp_path / "x.toml").mkdir()
    with pytest.raises(BadInput, match="is a folder"):
        parse(str(tmp_path / "x.toml"))
    f = tmp_path / "y.toml"
    f.write_text('kind = "identity"\n')
    # we run as root, so permissions do not stop a read: make the read fail as EACCES does
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes",
                        lambda p: (_ for _ in ()).throw(PermissionError(13, "Permission denied"))
                        if p.name == "y.toml" else real(p))
    with pytest.raises(BadInput, match="cannot read \\(Permission denied\\)"):
        parse(str(f))


# -- direction files: dtype, shape and finiteness at load, size where used -----------------
def _npy(tmp_path, array) -> str:
    path = tmp_path / "d.npy"
    np.save(path, array, allow_pickle=False)
    return str(path)


DIRECTIONS = [
    ("strings", lambda: np.array(["x"] * 8), "1-D vector of floats"),
    ("numeric strings", lambda: np.array(["1.0"] * 8), "1-D vector of floats"),
    ("structured", lambda: np.zeros(8, dtype=[("a", "f4"), ("b", "i4")]), "1-D vector of floats"),
    ("matrix", lambda: np.ones((16, 16), dtype=np.float32), "1-D vector of floats"),
    ("ints", lambda: np.arange(8), "1-D vector of floats"),
    ("nan", lambda: np.array([1.0, np.nan] * 4), "NaN or infinite"),
    ("too large for float32", lambda: np.full(8, 1e300), "NaN or infinite"),
    ("scalar", lambda: np.float32(1.0), "1-D vector of floats"),
]


@pytest.mark.parametrize("name,make,needle", DIRECTIONS, ids=[d[0] for d in DIRECTIONS])
def test_direction_file(tmp_path, name, make, needle):
    with pytest.raises(BadInput, match=needle):
        directions.read(_npy(tmp_path, make()))


def test_direction_file_size_and_format(tmp_path):
    path = _npy(tmp_path, np.ones(8, dtype=np.float32))
    assert directions.read(path).shape == (8,)
    with pytest.raises(BadInput, match="has 8 values, the model's hidden size is 16"):
        directions.load(path, 16)
    (tmp_path / "p.npy").write_bytes(b"\x80\x04K\x01.")  # a pickle, not an array
    with pytest.raises(BadInput, match="unreadable"):
        directions.read(str(tmp_path / "p.npy"))
    (tmp_path / "z.safetensors").write_bytes(b"\x00" * 4)
    with pytest.raises(BadInput, match="unreadable"):
        directions.read(str(tmp_path / "z.safetensors"))


def test_direction_save_round_trip(tmp_path):
    v = np.arange(1, 9, dtype=np.float32)
    for name in ("d.npy", "d.safetensors"):
        files.save_direction(tmp_path / name, v)
        assert np.array_equal(directions.read(str(tmp_path / name)), v)


def test_direction_file_in_a_lens_needs_the_models_size(run_cli, fast_model, tmp_path):
    path = _npy(tmp_path, np.ones((16, 16), dtype=np.float32))
    one_error_line(*run_cli("generate", "--prompt", "hi", "--max-tokens", "1", "--lens", f"steer:file={path}"),
                   "1-D vector of floats")
    path = _npy(tmp_path, np.ones(3, dtype=np.float32))
    one_error_line(*run_cli("generate", "--prompt", "hi", "--max-tokens", "1", "--lens", f"steer:file={path}"),
                   "hidden size")


# -- the command line: exit 2 and one escaped line ------------------------------------------
CLI = [
    (["generate", "--prompt", "caf\udcff"], "--prompt: not valid UTF-8"),
    (["generate", "--prompt=\udcfe"], "--prompt: not valid UTF-8"),
    (["generate", "--prompt", "hi", "--lens", "\x1b[31mred\x07"], "unknown lens kind '\\x1b[31mred\\x07'"),
    (["generate", "--prompt", "hi", "--lens", "emphasis:strength=2\nwarp"], "\\n"),
    (["generate", "--prompt", "hi", "--lens", "warp\r\nx"], "unknown lens kind"),
    (["generate", "--prompt", "hi", "--bogus", "a\nb"], "unrecognized arguments"),
    (["frob\nnicate"], "invalid choice"),
    (["generate", "--prompt", "hi", "--lens", "emphasis:strength=nan"], "finite"),
    (["generate", "--prompt", "hi", "--lens", "emphasis:strength=nan@0"], "finite"),
    (["generate", "--prompt", "hi", "--temperature", "nan"], "--temperature must be a finite number"),
    (["generate", "--prompt", "hi", "--temperature", "inf"], "--temperature must be a finite number"),
    (["generate", "--prompt", "hi", "--max-tokens", "1e3"], "--max-tokens must be an integer"),
    (["generate", "--prompt", "hi", "--seed", "-1"], "--seed must be in"),
    (["generate", "--prompt", "hi", "--lens", "\u202eevil"], "\\u202e"),
]


@pytest.mark.parametrize("args,needle", CLI, ids=[repr(a[-1])[:30] for a, _ in CLI])
def test_cli_one_line(run_cli, no_model, args, needle):
    one_error_line(*run_cli(*args), needle)


def test_invalid_utf8_argv_in_a_real_process():
    """On Linux, argv bytes that are not UTF-8 arrive surrogate-escaped."""
    proc = subprocess.run([sys.executable, "-m", "lenscope", "generate", "--prompt", b"caf\xff"], capture_output=True,
                          env={**os.environ, "LENSCOPE_BLAS": "reference"}, timeout=120, check=False)
    assert proc.returncode == 2 and proc.stdout == b""
    assert proc.stderr.count(b"\n") == 1 and b"--prompt: not valid UTF-8" in proc.stderr, proc.stderr


def test_long_prompt_adds_no_transformers_warning():
    prompt = "the cat sat. " * 200  # ~800 tokens, past the tokenizer's model_max_length of 512
    proc = subprocess.run([sys.executable, "-m", "lenscope", "generate", "--prompt", prompt, "--max-tokens", "1",
                           "--json"], capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "LENSCOPE_BLAS": "reference"})
    assert proc.returncode == 0, proc.stderr
    assert "Token indices" not in proc.stderr and "transformers" not in proc.stderr, proc.stderr


def test_emit_never_prints_nan(capsys):
    from lenscope.cli.common import emit as _emit

    _emit({"a": float("nan"), "b": [float("inf"), 1.5], "c": {"d": -math.inf}})
    out = capsys.readouterr().out
    assert json.loads(out, parse_constant=lambda c: pytest.fail(c)) == {"schema_version": 1, "a": None,
                                                                        "b": [None, 1.5], "c": {"d": None}}


def test_generate_json_is_standard_json(run_cli, fast_model):
    code, out, err = run_cli("generate", "--prompt", "the cat", "--max-tokens", "2", "--json",
                             "--lens", "bias:tokens=1,value=-1000")
    assert code == 0, err
    json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in generate --json"))


# -- experiments: the whole file checked before the model loads or anything is written ----
EXPERIMENTS = [
    ("comparison = [1, 2]\n", "comparison 1: must be a table"),
    ("defaults = 5\n" + GOOD_EXPERIMENT, "'defaults' must be a table"),
    (GOOD_EXPERIMENT + "lens = [1]\n", "'lens' must be text or a list of texts"),
    (GOOD_EXPERIMENT + "lens = 5\n", "'lens' must be text or a list of texts"),
    (GOOD_EXPERIMENT + "mark = 5\n", "'mark' must be text or a list of texts"),
    (GOOD_EXPERIMENT + "mark = [5]\n", "'mark' must be text or a list of texts"),
    (GOOD_EXPERIMENT + 'mark = [""]\n', "'mark' texts must not be empty"),
    (GOOD_EXPERIMENT + 'mark_tokens = "ab"\n', "'mark_tokens' must be a list"),
    (GOOD_EXPERIMENT.replace("max_tokens = 2", 'max_tokens = "x"'), "max_tokens must be an integer"),
    (GOOD_EXPERIMENT + "seed = -1\n", "seed must be in"),
    (GOOD_EXPERIMENT.replace('name = "c"', "name = 5"), "'name' must be non-empty text"),
    ("model = 5\n" + GOOD_EXPERIMENT, "'model' must be a model folder"),
    ("x = " + "[" * 5000 + "]" * 5000 + "\n" + GOOD_EXPERIMENT, "nested too deeply"),
    ("[" + ".".join(["defaults"] * 40) + "]\n" + GOOD_EXPERIMENT, "nested deeper than 32"),
    (GOOD_EXPERIMENT.replace("max_tokens = 2", "max_tokens = -5"), "max_tokens must be in"),
    (GOOD_EXPERIMENT.replace("max_tokens = 2", "max_tokens = 1000000000"), "max_tokens must be in"),
    (GOOD_EXPERIMENT + "temperature = -1\n", "temperature must be in"),
    (GOOD_EXPERIMENT + "temperature = nan\n", "temperature must be a finite number"),
    (GOOD_EXPERIMENT + "temperature = inf\n", "temperature must be a finite number"),
    (GOOD_EXPERIMENT + f"seed = {2**63 - 1}\n", "seed must be in"),
    (GOOD_EXPERIMENT + 'capture_attention = "maybe"\n', "capture_attention must be true or false"),
    (GOOD_EXPERIMENT + 'lenz = ["identity"]\n', "unknown key 'lenz'"),
    ("modle = \"x\"\n" + GOOD_EXPERIMENT, "unknown key 'modle'"),
    (GOOD_EXPERIMENT + GOOD_EXPERIMENT + 'lens = ["warp"]\n', "comparison 2: lens spec 'warp': unknown lens kind"),
    (GOOD_EXPERIMENT + 'lens = ["emphasis:strength=nan"]\n', "finite"),
    (GOOD_EXPERIMENT + 'lens = ["missing.toml"]\n', "not found"),
    ('[[comparison]]\nprompt = "  "\n', "'prompt' must be non-empty text"),
    ("[defaults]\nmax_tokens = 2\n", "needs at least one [[comparison]]"),
    ("comparison = 5\n", "needs at least one [[comparison]]"),
]


@pytest.mark.parametrize("content,needle", EXPERIMENTS, ids=[n for _, n in EXPERIMENTS])
def test_experiment(run_cli, no_model, tmp_path, content, needle):
    exp = tmp_path / "e.toml"
    exp.write_text(content)
    before = snapshot(tmp_path)
    one_error_line(*run_cli("run", str(exp), "--out", str(tmp_path / "out")), needle)
    assert snapshot(tmp_path) == before  # no --out folder, no temp files


def test_experiment_settings_are_the_clis(tmp_path):
    """`capture_attention = "no"` was truthy; now settings parse it as the CLI would."""
    p = tmp_path / "e.toml"
    p.write_text(GOOD_EXPERIMENT + 'capture_attention = "no"\nseed = 7\ntemperature = 0.5\n')
    c = experiment_file.load(p)["comparisons"][0]
    assert (c["capture_attention"], c["seed"], c["temperature"], c["max_tokens"]) == (False, 7, 0.5, 2)


# -- output paths: checked before the model loads, nothing touched on failure -------------
def test_run_out_checks(run_cli, no_model, tmp_path, monkeypatch):
    exp = tmp_path / "e.toml"
    exp.write_text(GOOD_EXPERIMENT + "capture_attention = true\n")
    one_error_line(*run_cli("run", str(exp), "--out", ""), "--out: empty")
    (tmp_path / "file").write_text("x")
    one_error_line(*run_cli("run", str(exp), "--out", str(tmp_path / "file" / "out")), "is not a folder")
    one_error_line(*run_cli("run", str(exp), "--out", str(tmp_path / "file")), "exists and is not a folder")
    # F/report.html is a folder: results.jsonl and report.md must stay as they were
    f = tmp_path / "F"
    (f / "report.html").mkdir(parents=True)
    (f / "results.jsonl").write_text("old\n")
    (f / "report.md").write_text("old\n")
    before = snapshot(tmp_path)
    one_error_line(*run_cli("run", str(exp), "--out", str(f)), "'report.html' in it is in the way")
    (f / "report.html").rmdir()
    (f / "heatmaps").write_text("not a folder")
    one_error_line(*run_cli("run", str(exp), "--out", str(f)), "heatmaps/001-0.svg' in it is in the way")
    (f / "heatmaps").unlink()
    (f / "report.html").mkdir()
    assert snapshot(tmp_path) == before
    # unwritable parent (root ignores modes, so answer as the kernel would for a user)
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m, **k: False if Path(p) == ro else real(p, m, **k))
    one_error_line(*run_cli("run", str(exp), "--out", str(ro / "a" / "b")), "'" + str(ro) + "' is not writable")
    one_error_line(*run_cli("run", str(exp), "--out", str(ro)), "the folder is not writable")
    assert snapshot(tmp_path) == {**before, "ro": snapshot(tmp_path)["ro"]}


def test_direction_out_checked_before_computing(run_cli, no_model, tmp_path, monkeypatch):
    base = ["direction", "--positive", "happy", "--negative", "sad", "--layer", "0", "--out"]
    one_error_line(*run_cli(*base, str(tmp_path / "missing" / "d.npy")), "does not exist")
    one_error_line(*run_cli(*base, str(tmp_path / "d.txt")), "use .npy or .safetensors")
    (tmp_path / "d.npy").mkdir()
    one_error_line(*run_cli(*base, str(tmp_path / "d.npy")), "is a folder")
    one_error_line(*run_cli("direction", "--positive", "|", "--negative", "sad", "--layer", "0", "--out",
                            str(tmp_path / "f.npy")), "--positive: no texts")
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m, **k: False if Path(p) == tmp_path else real(p, m, **k))
    one_error_line(*run_cli(*base, str(tmp_path / "e.npy")), "is not writable")


def test_failing_run_keeps_finished_comparisons_and_resumes(run_cli, fast_model, tmp_path, monkeypatch):
    """A check that needs the model fails before any progress line or file. A failure while
    generating keeps the comparisons already finished (their reports, rewritten after each
    one), leaves no temp folder or lock, and --resume runs only what is missing."""
    exp = tmp_path / "e.toml"
    exp.write_text(GOOD_EXPERIMENT + "capture_attention = true\n" + GOOD_EXPERIMENT + 'mark = ["dog"]\n')
    before = snapshot(tmp_path)
    one_error_line(*run_cli("run", str(exp), "--out", str(tmp_path / "a" / "out")),
                   "comparison 'c': --mark 'dog': does not occur")
    assert snapshot(tmp_path) == before

    from lenscope.core.comparison import Comparison

    exp.write_text(GOOD_EXPERIMENT + "capture_attention = true\n" + GOOD_EXPERIMENT.replace('name = "c"', 'name = "d"'))
    real_run, calls = Comparison.run, []

    def second_fails(self, *a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise BadInput("lens failed mid-run")
        return real_run(self, *a, **k)

    monkeypatch.setattr(Comparison, "run", second_fails)
    out = tmp_path / "a" / "out"
    code, _, err = run_cli("run", str(exp), "--out", str(out))
    assert code == 2 and "lens failed mid-run" in err.splitlines()[-1] and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == [".lenscope-folder.json", "heatmaps", "report.html", "report.md",
                                                     "results.jsonl"]
    first = out.joinpath("results.jsonl").read_text()
    assert [json.loads(x)["comparison"] for x in first.splitlines()] == ["c"]
    calls.clear()
    monkeypatch.setattr(Comparison, "run", lambda self, *a, **k: calls.append(1) or real_run(self, *a, **k))
    code, _, err = run_cli("run", str(exp), "--out", str(out), "--resume")
    assert code == 0 and "resuming: 1 of 2" in err and len(calls) == 1
    lines = out.joinpath("results.jsonl").read_text().splitlines()
    assert [json.loads(x)["comparison"] for x in lines] == ["c", "d"] and lines[0] == first.splitlines()[0]


def test_run_into_existing_folder_and_modes(run_cli, fast_model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "report.md").write_text("old")
    os.chmod(out / "report.md", 0o640)
    exp = tmp_path / "e.toml"
    exp.write_text(GOOD_EXPERIMENT)
    old_umask = os.umask(0o022)
    try:
        code, _, err = run_cli("run", str(exp), "--out", str(out))
    finally:
        os.umask(old_umask)
    assert code == 0, err
    assert (out / "notes.txt").read_text() == "mine"  # other files are left alone
    assert (out / "report.md").read_text().startswith("# lenscope report")
    assert stat.S_IMODE((out / "report.md").stat().st_mode) == 0o640  # a replaced file keeps its mode
    assert stat.S_IMODE((out / "results.jsonl").stat().st_mode) == 0o644  # a new one honours the umask
    assert sorted(p.name for p in out.iterdir()) == [".lenscope-folder.json", ".lenscope.lock", "notes.txt", "report.html", "report.md",
                                                     "results.jsonl"]


def test_second_run_into_a_locked_folder(run_cli, fast_model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    exp = tmp_path / "e.toml"
    exp.write_text(GOOD_EXPERIMENT)
    with open(out / ".lenscope.lock", "a+") as held:  # another run, as far as flock can tell
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242\n")
        held.flush()
        before = snapshot(tmp_path)
        one_error_line(*run_cli("run", str(exp), "--out", str(out)), "another lenscope run (pid 4242)")
        assert snapshot(tmp_path) == before


def test_report_md_escapes_markdown_and_html():
    rec = {"comparison": "<script>alert(1)</script> **bold**", "prompt": "a `b` | c\nd", "model": "m",
           "temperature": 0.0, "seed": 0, "marked_token_indices": [],
           "rows": [{"name": "emphasis:layers=1|2", "text": "x | <b>y</b>\n# z", "finite": True,
                     "first_divergence": None, "kl_from_baseline": [None], "attention_to_marks": []}]}
    md = markdown([rec])
    assert "<script>" not in md and "<b>" not in md and "\\<script\\>" in md and "&lt;" not in md
    assert "\\*\\*bold\\*\\*" in md and "emphasis:layers=1\\|2" in md and "a \\`b\\` \\| c d" in md
    row = next(line for line in md.splitlines() if line.startswith("| emphasis"))
    assert row.count(" | ") == 4  # the cells stayed five: no raw | from names or outputs


# -- sessions: every field checked at load (the TUI shows the line as a notification) -----
def _session(**fields) -> str:
    return json.dumps({"format": "lenscope-session", "version": 1, **fields})


ROW = {"name": "baseline", "token_ids": [1], "tokens": ["a"], "text": "a"}
SESSIONS = [
    (_session(version="2"), "'version' must be an integer"),
    (_session(version=True), "'version' must be an integer"),
    ('{"format": "lenscope-session", "marks": [1e999]}', "'marks' must be numbers"),
    (_session(marks=[-1]), "'marks' must be numbers"),
    (_session(marks="1"), "'marks' must be numbers"),
    (_session(settings=[1]), "'settings' must be an object"),
    (_session(settings={"temperature": "hot"}), "temperature must be a number"),
    ('{"format": "lenscope-session", "settings": {"temperature": NaN}}', "temperature must be a finite number"),
    (_session(settings={"max_tokens": 10**9}), "max_tokens must be in"),
    (_session(prompt=5), "'prompt' must be text"),
    (_session(model=["m"]), "'model' must be text"),
    (_session(variants=5), "'variant' must be a non-empty list"),
    (_session(variants=[{"name": 5, "kind": "identity"}]), "'name' must be text"),
    (_session(result={"rows": [{**ROW, "token_ids": ["a"]}]}), "'token_ids' must be a list"),
    (_session(result={"rows": [5]}), "row 1 must be an object"),
    (_session(result={"rows": [{**ROW, "top_alternatives": [[{"token_id": 1, "prob": 0.5}]]}]}), "no 'token'"),
    (_session(result={"rows": [{**ROW, "top_alternatives": [5]}]}), "'top_alternatives' must be a list"),
    (_session(result={"rows": [{**ROW, "kl_from_baseline": ["x"]}]}), "numbers or null"),
    (_session(result={"rows": [{**ROW, "finite": "yes"}]}), "'finite' must be true or false"),
    (_session(result={"rows": [], "seed": 1.5}), "'seed' must be an integer"),
    (_session(result={"rows": [], "timing": []}), "'timing' must be an object"),
    (_session(result=[1]), "'result' is not a comparison result"),
    ('{"format": "lenscope-session", "x": ' + DEEP_JSON + "}", "nested too deeply"),
    ('{"format": "lenscope-session", "x": ' + NESTED_JSON + "}", "nested deeper than 32"),
    ('{"format": "lenscope-session", "prompt": "\\udcff"}', "lone surrogate"),
    ("{oops", "not valid JSON"),
    ('{"format": "other"}', "not a lenscope session"),
]


@pytest.mark.parametrize("content,needle", SESSIONS, ids=[n for _, n in SESSIONS])
def test_session(tmp_path, content, needle):
    p = tmp_path / "s.json"
    p.write_text(content)
    with pytest.raises(BadInput, match=needle) as exc:
        sessions.load(p)
    assert "\n" not in str(exc.value)
    assert p.read_text() == content


def test_unreadable_session(tmp_path, monkeypatch):
    (tmp_path / "d.json").mkdir()
    with pytest.raises(BadInput, match="is a folder"):
        sessions.load(tmp_path / "d.json")
    p = tmp_path / "s.json"
    p.write_text(_session())
    monkeypatch.setattr(Path, "read_bytes", lambda self: (_ for _ in ()).throw(PermissionError(13, "denied")))
    with pytest.raises(BadInput, match="cannot read"):
        sessions.load(p)


def test_saved_result_replays_and_nan_becomes_null(tmp_path):
    """An old session's NaN metrics load (as null), and nothing non-standard is written back."""
    rows = [{**ROW, "kl_from_baseline": [float("nan"), 0.5], "attention_to_marks": [float("inf"), 0.2],
             "top_alternatives": [[{"token_id": 1, "token": "a", "prob": float("nan")}]]}]
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"format": "lenscope-session", "result": {"rows": rows}}))
    s = sessions.load(p)
    r = results.from_json(s.result)
    assert r.rows[0].kl_from_baseline == [None, 0.5] and r.rows[0].attention_to_marks == [0.2]
    sessions.save(s, p)
    json.loads(p.read_text(), parse_constant=lambda c: pytest.fail(f"{c} written"))
    assert datafile.dumps({"x": [float("nan")]}) == '{"x": [null]}'
    assert json.loads(datafile.dumps({"s": "\udcff"})) == {"s": "\udcff"}  # escaped, never unprintable


# -- saving: modes, symlinks and stale temps ----------------------------------------------
def test_save_keeps_mode_follows_symlinks_and_cleans_stale_temps(tmp_path):
    s = sessions.Session(prompt="tom")
    target = tmp_path / "real.json"
    target.write_text("{}")
    os.chmod(target, 0o644)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    dead = tmp_path / ".real.json.999999999.abcd1234.tmp"  # a killed save (no such pid)
    old = tmp_path / ".real.json.1.abcd1234.tmp"  # pid 1 lives, but the temp is a day old
    live = tmp_path / f".real.json.{os.getpid()}.ffff0000.tmp"  # a save in progress: kept
    other = tmp_path / ".other.json.999999999.abcd1234.tmp"  # another file's: not ours to judge here
    for t in (dead, old, live, other):
        t.write_text("partial")
    os.utime(old, (time.time() - 86400, time.time() - 86400))
    sessions.save(s, link)
    assert link.is_symlink() and sessions.load(link).prompt == "tom"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert not dead.exists() and not old.exists() and live.exists() and other.exists()
    new = tmp_path / "new.json"
    old_umask = os.umask(0o022)
    try:
        sessions.save(s, new)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o644
