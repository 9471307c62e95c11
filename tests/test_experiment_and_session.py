"""Batches (`lenscope run`) and session files: plain files that other programs read."""

import builtins
import io
import json
import os
from pathlib import Path

import pytest

from lenscope.errors import BadInput
from lenscope.lenses.spec import parse_inline
from lenscope.storage import session as sessions

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_run_writes_results_report_and_svgs(run_cli, tmp_path):
    code, _out, err = run_cli("run", str(EXAMPLES / "recall.toml"), "--out", str(tmp_path / "out"))
    assert code == 0, err
    results = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [r["comparison"] for r in results] == ["a fact a few sentences back"]
    first = results[0]
    assert [r["name"] for r in first["rows"]] == ["baseline", "emphasis:strength=2", "focus + calm", "ramp up emphasis"]
    assert first["rows"][1]["attention_to_marks"][0] > first["rows"][0]["attention_to_marks"][0]
    # what the example's comment promises: the baseline forgets, emphasis recalls
    assert [r["tokens"][0].strip() for r in first["rows"]] == ["red", "blue", "blue", "red"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "a fact a few sentences back" in report and "heatmaps/001-0.svg" in report
    svg = (tmp_path / "out" / first["heatmaps"][0]).read_text()
    n = len(first["prompt_tokens"]) + len(first["rows"][0]["tokens"])
    assert svg.startswith("<svg") and svg.count("<rect x=") == n * (n + 1) // 2  # one per causal cell
    assert ">blue</text>" in svg and "font-weight='bold' fill='#c77700'" in svg  # labels, marks in bold
    page = (tmp_path / "out" / "report.html").read_text()
    assert "lenscope report" in page and "<script" in page and "http" not in page.split("<script")[0]


def test_run_bad_experiment(run_cli, tmp_path):
    bad = tmp_path / "e.toml"
    bad.write_text('[[comparison]]\nprompt = "hi"\nlenz = ["identity"]\n')
    code, _, err = run_cli("run", str(bad), "--out", str(tmp_path / "o"))
    assert code == 2 and "unknown key 'lenz'" in err and err.count("\n") == 1


def test_session_round_trip(tmp_path):
    s = sessions.Session(prompt="tom", marks=[0], variants=[parse_inline("emphasis:strength=2")], seed=4,
                         temperature=0.5, max_tokens=9, result={"rows": []})
    path = sessions.save(s, tmp_path / "s.json")
    back = sessions.load(path)
    assert (back.prompt, back.marks, back.seed, back.temperature, back.max_tokens) == ("tom", [0], 4, 0.5, 9)
    assert back.variants[0].lenses[0].strength == 2.0
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]  # no temp files left behind


class _Crash(Exception):
    pass


@pytest.mark.parametrize("where", ["write", "replace"])
def test_session_save_crashing_mid_write_keeps_the_old_file(tmp_path, monkeypatch, where):
    """The save dies after part of the new bytes went out (a full disk, a kill) or just
    before the rename: the old session must still be there, whole, and no temp left."""
    path = sessions.save(sessions.Session(prompt="old"), tmp_path / "s.json")
    before = path.read_bytes()
    new = sessions.Session(prompt="new " * 5000)
    if where == "write":  # however the bytes are written, half of them land, then the disk is full
        real_open, real_write = io.open, os.write

        class HalfFile:
            def __init__(self, f):
                self._f = f

            def write(self, data):
                self._f.write(data[: len(data) // 2])
                self._f.flush()
                raise _Crash

            def __getattr__(self, name):
                return getattr(self._f, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self._f.close()

        def open_half(file, mode="r", *a, **k):
            f = real_open(file, mode, *a, **k)
            return HalfFile(f) if set(mode) & set("wax+") else f

        def write_half(fd, data):
            real_write(fd, bytes(data)[: len(data) // 2])
            raise _Crash

        monkeypatch.setattr(io, "open", open_half)
        monkeypatch.setattr(builtins, "open", open_half)
        monkeypatch.setattr(os, "write", write_half)
    else:
        monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(_Crash()))
        monkeypatch.setattr(os, "rename", lambda *a: (_ for _ in ()).throw(_Crash()))
    with pytest.raises(_Crash):
        sessions.save(new, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


@pytest.mark.parametrize("content,needle", [
    ("{oops", "not valid JSON"),
    ('{"format": "other"}', "not a lenscope session"),
    ('{"format": "lenscope-session", "version": 99}', "newer"),
    ('{"format": "lenscope-session", "marks": ["x"]}', "must be numbers"),
    ('{"format": "lenscope-session", "variants": [{"name": "v", "lens": [{"kind": "nope"}]}]}', "unknown lens kind"),
])
def test_corrupt_sessions_are_named(tmp_path, content, needle):
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(BadInput, match=needle):
        sessions.load(p)
    assert p.read_text() == content


def test_session_keeps_chat_mode_and_checks_it(tmp_path):
    from lenscope.storage import session

    path = tmp_path / "s.json"
    session.save(session.Session(prompt="hi", chat=True, system="be brief"), path)
    back = session.load(path)
    assert back.chat is True and back.system == "be brief"
    data = json.loads(path.read_text())
    data["chat"] = "yes"
    path.write_text(json.dumps(data))
    with pytest.raises(BadInput, match="'chat' must be true or false"):
        session.load(path)
