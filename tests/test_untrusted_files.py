"""Every file lenscope reads and did not just write is untrusted: caches, memos, resume
files, shards, search folders, GGUF headers. Table-driven, one kind at a time: a hostile
file is one line (exit 2) or is ignored and rebuilt, never a traceback, a hang, a crash,
a silently wrong result or a file touched outside what the command owns."""

from __future__ import annotations

import json
import os

import pytest

gr = pytest.importorskip("gguf_reference")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LENSCOPE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# -- data loss: a cache memo names the folder a conversion writes -----------------------------------

@pytest.mark.parametrize("value", ["../../victim", "../../../victim", "../victim", "/tmp", "", 7, None, ["x"], "ab" * 40,
                                   "0" * 63 + "g"])
def test_a_hostile_hash_memo_is_rehashed_and_touches_nothing(tmp_path, cache, value):
    from lenscope.models import sources as ms

    src = gr.write_tiny(tmp_path / "tiny.gguf")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    st = src.stat()
    (cache / "gguf").mkdir(parents=True)
    (cache / "gguf" / "hashes.json").write_text(json.dumps({f"{src.resolve()}|{st.st_size}|{st.st_mtime_ns}": value}))
    folder = ms.gguf_folder(src)
    assert folder.parent == cache / "gguf" and ms.is_sha256(ms.file_sha256(src))
    assert (victim / "precious.txt").read_text() == "keep me" and sorted(os.listdir(victim)) == ["precious.txt"]


@pytest.mark.parametrize("memo", ["[1, 2]", "not json", "\xff\xfe", "{" * 5000])
def test_a_corrupt_memo_file_is_ignored(tmp_path, cache, memo):
    from lenscope.models import sources as ms

    src = gr.write_tiny(tmp_path / "tiny.gguf")
    (cache / "gguf").mkdir(parents=True)
    (cache / "gguf" / "hashes.json").write_bytes(memo.encode("utf-8", "surrogateescape") if memo != "\xff\xfe"
                                                 else b"\xff\xfe")
    assert ms.is_sha256(ms.file_sha256(src))


# -- identity, not names: resume and search folders -------------------------------------------------

EXP = '[defaults]\nmax_tokens = 2\n[[comparison]]\nname = "a"\nprompt = "{prompt}"\n'
SEARCH = ('prompts = ["the key is blue. the key is"]\nmax_tokens = 2\nstrategy = "grid"\nbudget = 2\nsteps = 2\n'
          '[[lens]]\nkind = "bias"\nwords = ["happy"]\nvalue = [0, {top}]\n[[score]]\nkind = "contains"\ntext = "happy"\n')


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_resume_runs_again_a_comparison_of_the_same_name_but_other_work(run_cli, tmp_path):
    exp = tmp_path / "e.toml"
    exp.write_text(EXP.format(prompt="one day, tom"))
    assert run_cli("run", str(exp), "--out", str(tmp_path / "out"))[0] == 0
    first = _lines(tmp_path / "out" / "results.jsonl")[0]
    exp.write_text(EXP.format(prompt="the key is blue. the key is"))  # same name, other prompt
    code, _, err = run_cli("run", str(exp), "--out", str(tmp_path / "out"), "--resume")
    assert code == 0, err
    again = _lines(tmp_path / "out" / "results.jsonl")[0]
    assert again["prompt"] == "the key is blue. the key is" and again["work"] != first["work"]
    code, _, err = run_cli("run", str(exp), "--out", str(tmp_path / "out"), "--resume")
    assert code == 0 and "resuming: 1 of 1" in err  # the same work is kept


@pytest.mark.parametrize("case", ["run folder", "other search", "foreign results", "bad manifest"])
def test_a_folder_made_by_something_else_is_refused_and_left_alone(run_cli, tmp_path, case):
    out = tmp_path / "out"
    search = tmp_path / "s.toml"
    search.write_text(SEARCH.format(top=30))
    if case == "run folder":
        exp = tmp_path / "e.toml"
        exp.write_text(EXP.format(prompt="one day, tom"))
        assert run_cli("run", str(exp), "--out", str(out))[0] == 0
    elif case == "other search":
        other = tmp_path / "other.toml"
        other.write_text(SEARCH.format(top=20))
        assert run_cli("search", str(other), "--out", str(out))[0] == 0
    elif case == "foreign results":
        out.mkdir()
        (out / "results.jsonl").write_text('{"mine": true}\n')
    else:
        out.mkdir()
        (out / ".lenscope-folder.json").write_text("[1]")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    code, _stdout, err = run_cli("search", str(search), "--out", str(out))
    assert code == 2 and err.count("\n") == 1 and "use another folder" in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_a_run_into_a_search_folder_is_refused(run_cli, tmp_path):
    search = tmp_path / "s.toml"
    search.write_text(SEARCH.format(top=30))
    assert run_cli("search", str(search), "--out", str(tmp_path / "out"))[0] == 0
    exp = tmp_path / "e.toml"
    exp.write_text(EXP.format(prompt="one day, tom"))
    code, _, err = run_cli("run", str(exp), "--out", str(tmp_path / "out"))
    assert code == 2 and "holds a `lenscope search`, not a run" in err
    code, _, err = run_cli("search", str(search), "--out", str(tmp_path / "out"))  # its own: resumed
    assert code == 0, err


# -- files that are not files: no hang, no unbounded read -------------------------------------------

@pytest.mark.parametrize("kind", ["fifo", "folder", "not utf-8", "not json", "deep"])
@pytest.mark.parametrize("command", ["diff", "resume", "search"])
def test_unreadable_results_files_are_one_line(run_cli, tmp_path, kind, command):
    out = tmp_path / "out"
    out.mkdir()
    results = out / "results.jsonl"
    if kind == "fifo":
        os.mkfifo(results)  # reading it would wait forever
    elif kind == "folder":
        results.mkdir()
    elif kind == "not utf-8":
        results.write_bytes(b'{"a": "\xff"}\n{}\n')
    elif kind == "not json":
        results.write_text("{oops\n{}\n")
    else:
        results.write_text("[" * 5000 + "]" * 5000 + "\n{}\n")
    if command == "search":  # this search's own folder, so that it reads the file
        search = tmp_path / "s.toml"
        search.write_text(SEARCH.format(top=30))
        from lenscope.batch import outdir
        from lenscope.batch import search as searches
        from lenscope.models.sources import model_identity

        identity = searches.identity(searches.load(search), model_identity(None))
        (out / outdir.MANIFEST).write_text(outdir.manifest("search", identity, str(search)))
        args = ["search", str(search), "--out", str(out)]
    elif command == "resume":
        exp = tmp_path / "e.toml"
        exp.write_text(EXP.format(prompt="one day, tom"))
        args = ["run", str(exp), "--out", str(out), "--resume"]
    else:
        args = ["diff", str(out), str(out)]
    code, _stdout, err = run_cli(*args)
    assert code == 2 and err.count("\n") == 1 and str(results.name) in err, err


# -- no waiting forever -----------------------------------------------------------------------------

@pytest.mark.parametrize("hostfile, expect_code, message", [
    ('[["127.0.0.1:45991"], ["127.0.0.1:45992"]]', -9, "no launch joined within 2 s (MLX_RANK=0"),
    (None, 2, "MLX_HOSTFILE '"),
    ("not json", 2, "not a JSON list of hosts"),
])
def test_a_launch_nobody_joins_ends_with_one_line(tmp_path, hostfile, expect_code, message):
    import subprocess
    import sys

    exp = tmp_path / "e.toml"
    exp.write_text(EXP.format(prompt="one day, tom"))
    hosts = tmp_path / "hosts.json"
    if hostfile is not None:
        hosts.write_text(hostfile)
    env = {**os.environ, "MLX_RANK": "0", "MLX_HOSTFILE": str(hosts), "LENSCOPE_LAUNCH_TIMEOUT": "2"}
    proc = subprocess.run([sys.executable, "-m", "lenscope", "run", str(exp), "--out", str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == expect_code and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "out").exists()


# -- GGUF headers: bounds before work ---------------------------------------------------------------

def _header(n_tensors=0, kvs=b"", n_kv=0, tensors=b"") -> bytes:
    import struct

    return b"GGUF" + struct.pack("<IQQ", 3, n_tensors, n_kv) + kvs + tensors


def _s(text: bytes) -> bytes:
    import struct

    return struct.pack("<Q", len(text)) + text


def _kv(key: bytes, vtype: int, payload: bytes) -> bytes:
    import struct

    return _s(key) + struct.pack("<I", vtype) + payload


def _tensor(name: bytes, dims: list[int]) -> bytes:
    import struct

    return _s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", 0, 0)


HOSTILE_HEADERS = {
    "array of 2^40": _header(kvs=_kv(b"tokenizer.ggml.scores", 9, (6).to_bytes(4, "little") + (1 << 40).to_bytes(8, "little")), n_kv=1),
    "string of 2^62": _header(kvs=_s(b"general.name")[:8] + (1 << 62).to_bytes(8, "little"), n_kv=1),
    "kv count 2^40": _header(n_kv=1 << 40),
    "tensor count 2^40": _header(n_tensors=1 << 40),
    "9 dimensions": _header(n_tensors=1, tensors=_tensor(b"w", [2] * 9)),
    "a zero dimension": _header(n_tensors=1, tensors=_tensor(b"w", [0, 4])),
    "a dimension of 2^50": _header(n_tensors=1, tensors=_tensor(b"w", [1 << 50])),
    "nested arrays": _header(kvs=_kv(b"x", 9, (9).to_bytes(4, "little") + (1).to_bytes(8, "little")), n_kv=1),
    "unknown value type": _header(kvs=_kv(b"x", 77, b""), n_kv=1),
    "truncated": _header(n_kv=1)[:-3],
    "no magic": b"GGUX" + bytes(20),
    "version 99": b"GGUF" + (99).to_bytes(4, "little") + bytes(16),
    "empty": b"",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_HEADERS))
def test_hostile_gguf_headers_are_one_line_before_any_allocation(tmp_path, cache, name):
    from lenscope.errors import BadInput
    from lenscope.models import sources as ms

    path = tmp_path / "bad.gguf"
    path.write_bytes(HOSTILE_HEADERS[name])
    with pytest.raises(BadInput, match="not a readable GGUF file") as info:
        ms.gguf_folder(path)
    assert "\n" not in str(info.value) and not list((cache / "gguf").glob("*/"))


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    return gr.write_tiny(tmp_path_factory.mktemp("tiny") / "tiny.gguf").read_bytes()


def test_random_mutations_of_a_real_gguf_are_converted_or_refused(tmp_path_factory, tiny_gguf):
    """Hypothesis: bytes of a real (tiny) GGUF flipped, cut or overwritten: conversion either
    works or is one BadInput line; never another exception."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from lenscope.errors import BadInput
    from lenscope.models.gguf import convert

    header = 4096  # mutations where the parsing happens

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.tuples(st.integers(0, header - 1), st.integers(0, 255)), min_size=1, max_size=6),
           st.none() | st.integers(8, len(tiny_gguf)))
    def mutate(edits, cut):
        data = bytearray(tiny_gguf)
        for at, byte in edits:
            data[at] = byte
        root = tmp_path_factory.mktemp("m")
        (root / "m.gguf").write_bytes(bytes(data[:cut]))
        try:
            convert(root / "m.gguf", root / "out")
        except BadInput as exc:
            assert "\n" not in str(exc)

    mutate()


# -- bounds before work -----------------------------------------------------------------------------

def test_a_score_too_large_to_hold_is_refused_before_the_forward(run_cli):
    code, _out, err = run_cli("score", "--prompt", "hi", "--continuation", "x " * 60_000)
    assert code == 2 and err.count("\n") == 1 and "need about" in err and "GiB" in err


def test_a_grid_of_a_trillion_candidates_is_cut_to_the_budget_lazily(tmp_path):
    import time

    from lenscope.batch import search as searches

    lenses = "".join(f'[[lens]]\nkind = "bias"\nwords = ["w{i}"]\nvalue = [0, 30]\n' for i in range(20))
    path = tmp_path / "s.toml"
    path.write_text('prompts = ["hi"]\nstrategy = "grid"\nbudget = 5\nsteps = 4\n' + lenses
                    + '[[score]]\nkind = "contains"\ntext = "a"\n')
    t = time.perf_counter()
    s = searches.load(path)  # 4^20 = 10^12 grid points
    assert len(s.candidates(0)) == 5 and time.perf_counter() - t < 10


def test_an_experiment_conversation_of_ten_thousand_turns_is_refused(tmp_path):
    """(A session's saved conversation has no such bound: what was saved always reopens.)"""
    from lenscope.batch import experiment_file
    from lenscope.errors import BadInput

    path = tmp_path / "e.toml"
    path.write_text('[[comparison]]\nname = "c"\nturns = [' + ", ".join(['"hi"'] * 10_000) + "]\n")
    with pytest.raises(BadInput, match="10000 turns; a conversation holds at most 256"):
        experiment_file.load(path)


@pytest.mark.parametrize("pattern", ["(x+x+)+y", "(a|aa)+$"])
def test_a_backtracking_check_regex_stops_within_its_time_limit(pattern):
    import time
    from types import SimpleNamespace

    from lenscope.batch.scores import Score
    from lenscope.errors import BadInput

    part = Score.from_data([{"kind": "regex", "pattern": pattern}], "check").parts[0]
    result = SimpleNamespace(rows=[SimpleNamespace(text="x" * 5000 if "x" in pattern else "a" * 5000 + "b")])
    t = time.perf_counter()
    with pytest.raises(BadInput, match="ran over 1 s on an output"):
        part.values(None, result, [])
    assert time.perf_counter() - t < 5


# -- a converted folder is checked before it is used ------------------------------------------------

@pytest.mark.parametrize("damage", ["zeroed weights", "truncated weights", "manifest gone", "config swapped"])
def test_a_damaged_converted_folder_is_converted_again(tmp_path, cache, monkeypatch, damage):
    from lenscope.models import gguf as app_gguf
    from lenscope.models import sources as ms

    src = gr.write_tiny(tmp_path / "tiny.gguf")
    folder = ms.gguf_folder(src)
    weights = folder / "model-00001.safetensors"  # a tiny model is one shard
    good = weights.read_bytes()
    if damage == "zeroed weights":
        weights.write_bytes(good[:200] + bytes(len(good) - 200))
    elif damage == "truncated weights":
        weights.write_bytes(good[: len(good) // 2])
    elif damage == "manifest gone":
        (folder / "lenscope_manifest.json").unlink()
    else:
        (folder / "config.json").write_text((folder / "config.json").read_text().replace("4", "5"))
    calls = []
    real = app_gguf.convert
    monkeypatch.setattr(app_gguf, "convert", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert ms.gguf_folder(src) == folder and calls == [1]
    assert weights.read_bytes() == good
    assert ms.gguf_folder(src) == folder and calls == [1]  # whole again: used as it is


HOSTILE_METADATA = {
    "no tokens": ({"tokenizer.ggml.tokens": None}, "'tokenizer.ggml.tokens' is missing"),
    "tokens not texts": ({"tokenizer.ggml.tokens": [1, 2, 3]}, "'tokenizer.ggml.tokens' is missing or not a list"),
    "a token of 10,000 characters": ({"tokenizer.ggml.tokens": ["a" * 10_000] + [f"t{i}" for i in range(299)]},
                                     "a token of over 4096 characters"),
    "scores not one per token": ({"tokenizer.ggml.scores": [0.5, 0.25]}, "one value per token"),
    "no head count": ({"llama.attention.head_count": None}, "'llama.attention.head_count' is None"),
    "head count as text": ({"llama.attention.head_count": "four"}, "'llama.attention.head_count' is 'four'"),
    "embedding length zero": ({"llama.embedding_length": 0}, "'llama.embedding_length' is 0"),
    "block count 2^31": ({"llama.block_count": 1 << 31}, "'llama.block_count' is 2147483648"),
    "eos id past the vocabulary": ({"tokenizer.ggml.eos_token_id": 1 << 30}, "'tokenizer.ggml.eos_token_id'"),
    "no architecture": ({"general.architecture": None}, "'general.architecture' is missing"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_METADATA))
def test_missing_or_mistyped_gguf_metadata_is_one_line_naming_the_key(tmp_path, cache, name):
    from lenscope.errors import BadInput
    from lenscope.models.gguf import convert

    metadata, message = HOSTILE_METADATA[name]
    src = gr.write_tiny(tmp_path / "bad.gguf", metadata=metadata)
    with pytest.raises(BadInput, match=message.replace("(", r"\(").replace("^", r"\^")) as info:
        convert(src, tmp_path / "out")
    assert "\n" not in str(info.value) and not (tmp_path / "out").exists()


# -- random bytes and random mutations of real files ------------------------------------------------

@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """A finished run (results.jsonl with a comparison and a conversation) and its experiment."""
    from lenscope.cli.main import main

    base = tmp_path_factory.mktemp("real")
    exp = base / "e.toml"
    exp.write_text(EXP.format(prompt="the key is blue. the key is") + 'mark = ["blue"]\nlens = ["emphasis:strength=2"]\n'
                   '[[comparison]]\nname = "talk"\nturns = ["the key is blue.", "what color?"]\nmax_tokens = 2\n')
    try:
        main(["run", str(exp), "--out", str(base / "out")])
    except SystemExit as exc:
        assert not exc.code
    return exp, (base / "out" / "results.jsonl").read_bytes()


def _mutations():
    from hypothesis import strategies as st

    edits = st.lists(st.tuples(st.integers(0, 1 << 16), st.binary(min_size=0, max_size=8)), min_size=1, max_size=5)
    return st.one_of(st.binary(max_size=512).map(lambda b: ("bytes", b, [])), edits.map(lambda e: ("edits", b"", e)))


def _mutate(real: bytes, kind: str, raw: bytes, edits) -> bytes:
    if kind == "bytes":
        return raw
    data = bytearray(real)
    for at, chunk in edits:
        at %= max(len(data), 1)
        data[at : at + len(chunk)] = chunk
    return bytes(data)


def test_mutated_results_and_shards_give_exit_0_or_one_line(run_cli, real_run, tmp_path_factory):
    """Hypothesis: a real results.jsonl (and a shard) mutated or replaced by random bytes, read by
    `diff`, `run --resume` and a sharded resume: exit 0 or 2 with one line, within a time limit,
    and nothing outside --out touched."""
    import signal

    from hypothesis import HealthCheck, given, settings

    exp, real = real_run

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_mutations())
    def check(mutation):
        root = tmp_path_factory.mktemp("mut")
        out = root / "out"
        (out / "shards").mkdir(parents=True)
        data = _mutate(real, *mutation)
        (out / "results.jsonl").write_bytes(data)
        (out / "shards" / "rank-1.jsonl").write_bytes(data)
        bystander = root / "bystander.txt"
        bystander.write_text("untouched")
        signal.alarm(120)  # a hang fails the test instead of stalling it
        try:
            for args in (["diff", str(out), str(out)], ["run", str(exp), "--out", str(out), "--resume"]):
                code, _, err = run_cli(*args)
                assert code in (0, 2), err
                assert code == 0 or err.count("\n") == 1, err
        finally:
            signal.alarm(0)
        assert bystander.read_text() == "untouched" and sorted(p.name for p in root.iterdir()) == ["bystander.txt", "out"]

    check()


def test_random_memo_files_never_name_a_folder_outside_the_cache(tmp_path_factory):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from lenscope.models import sources as ms

    root = tmp_path_factory.mktemp("memo")
    src = gr.write_tiny(root / "tiny.gguf")
    key = f"{src.resolve()}|{src.stat().st_size}|{src.stat().st_mtime_ns}"
    values = st.one_of(st.text(max_size=80), st.integers(), st.none(), st.lists(st.text(max_size=5), max_size=3),
                       st.sampled_from(["../" * 5 + "x", "/", "~", "a" * 64, "f" * 64]))

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(values.map(lambda v: json.dumps({key: v}).encode()), st.binary(max_size=200)))
    def check(memo):
        cache = root / "cache"
        (cache / "gguf").mkdir(parents=True, exist_ok=True)
        (cache / "gguf" / "hashes.json").write_bytes(memo)
        os.environ["LENSCOPE_CACHE"] = str(cache)
        try:
            folder = ms.gguf_folder(src)
        finally:
            del os.environ["LENSCOPE_CACHE"]
        assert folder.parent == cache / "gguf" and sorted(p.name for p in root.iterdir()) == ["cache", "tiny.gguf"]

    check()


def test_a_judge_model_that_cannot_load_is_said_before_turn_one(run_cli, tmp_path, monkeypatch):
    from lenscope.chat import conversation as convs

    turns = []
    real = convs.run_turn
    monkeypatch.setattr(convs, "run_turn", lambda *a, **k: turns.append(1) or real(*a, **k))
    exp = tmp_path / "e.toml"
    exp.write_text('[[comparison]]\nname = "talk"\nturns = ["hi", "again"]\nmax_tokens = 2\n'
                   'check = {kind = "judge", question = "Is it kind?", model = "/nonexistent/judge"}\n')
    code, _, err = run_cli("run", str(exp), "--out", str(tmp_path / "out"))
    assert code == 2 and err.count("\n") == 1 and "/nonexistent/judge" in err and turns == []


# -- after review: what identity means --------------------------------------------------------------

def test_resume_keeps_two_comparisons_that_differ_only_by_name(run_cli, tmp_path):
    exp = tmp_path / "e.toml"
    exp.write_text(EXP.format(prompt="one day, tom") + '[[comparison]]\nname = "b"\nprompt = "one day, tom"\n')
    assert run_cli("run", str(exp), "--out", str(tmp_path / "out"))[0] == 0
    code, _, err = run_cli("run", str(exp), "--out", str(tmp_path / "out"), "--resume")
    assert code == 0 and "resuming: 2 of 2" in err
    assert [r["comparison"] for r in _lines(tmp_path / "out" / "results.jsonl")] == ["a", "b"]
    exp.write_text(EXP.format(prompt="one day, tom") + '[[comparison]]\nname = "b"\nprompt = "the sun was"\n')
    code, _, err = run_cli("run", str(exp), "--out", str(tmp_path / "out"), "--resume")
    assert code == 0 and "1 line(s)" in err and "were made for other work" in err and "resuming: 1 of 2" in err


def test_a_search_with_a_larger_budget_continues_in_its_folder(run_cli, tmp_path):
    search = tmp_path / "s.toml"
    search.write_text(SEARCH.format(top=30))
    assert run_cli("search", str(search), "--out", str(tmp_path / "out"))[0] == 0
    search.write_text(SEARCH.format(top=30).replace("budget = 2", "budget = 3"))
    code, _, err = run_cli("search", str(search), "--out", str(tmp_path / "out"))
    assert code == 0, err


def test_a_symlinked_results_file_is_refused_and_its_target_untouched(run_cli, tmp_path):
    target = tmp_path / "elsewhere.jsonl"
    target.write_text("precious\n")
    search = tmp_path / "s.toml"
    search.write_text(SEARCH.format(top=30))
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.jsonl").symlink_to(target)
    code, _, err = run_cli("search", str(search), "--out", str(out))
    assert code == 2 and "is a symlink" in err and target.read_text() == "precious\n"


@pytest.mark.parametrize("value", ["nan", "-1", "inf", "soon"])
def test_a_bad_launch_timeout_is_one_line(tmp_path, value):
    import subprocess
    import sys

    exp = tmp_path / "e.toml"
    exp.write_text(EXP.format(prompt="one day, tom"))
    env = {**os.environ, "MLX_RANK": "0", "LENSCOPE_LAUNCH_TIMEOUT": value}
    env.pop("MLX_HOSTFILE", None)
    proc = subprocess.run([sys.executable, "-m", "lenscope", "run", str(exp), "--out", str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and f"LENSCOPE_LAUNCH_TIMEOUT '{value}'" in proc.stderr
