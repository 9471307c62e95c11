"""`lenscope diff`: a run against itself is empty; a changed run lists exactly what changed."""

import json

import pytest

from lenscope.batch.diff import diff, load_run, to_html

EXP = """
[defaults]
max_tokens = 4
[[comparison]]
name = "a"
prompt = "the key is blue. question: what color is the key? answer: the key is"
mark = ["blue"]
lens = ["{lens_a}"]
[[comparison]]
name = "b"
prompt = "one day, tom went to the park. the sun was"
lens = ["identity"]
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from lenscope.cli.main import main

    base = tmp_path_factory.mktemp("diff")
    out = {}
    for tag, lens in (("one", "emphasis:strength=1"), ("two", "bias:words=happy,value=30")):
        (base / f"{tag}.toml").write_text(EXP.replace("{lens_a}", lens))
        try:
            main(["run", str(base / f"{tag}.toml"), "--out", str(base / tag)])
        except SystemExit as exc:
            assert not exc.code
        out[tag] = base / tag
    return out


def test_a_run_against_itself_is_empty(runs):
    d = diff(load_run(runs["one"]), load_run(runs["one"]))
    assert d == {"changed": [], "only_in_a": [], "only_in_b": [], "unchanged": 2}


def test_a_changed_lens_lists_exactly_its_comparison(runs):
    d = diff(load_run(runs["one"]), load_run(runs["two"] / "results.jsonl"))
    assert [c["comparison"] for c in d["changed"]] == ["a"] and d["unchanged"] == 1
    (row,) = d["changed"][0]["rows"]  # the lens row renamed in place: one row, compared
    assert row["row"] == "bias:words=happy,value=30" and row["renamed_from"] == "emphasis:strength=1"
    assert row["token_ids_a"] != row["token_ids_b"] and row["text_a"] and row["text_b"]
    page = to_html(d, "one", "two")
    assert "<h2>a</h2>" in page and "(was emphasis:strength=1)" in page


def test_changed_tokens_say_where_they_part(runs, tmp_path):
    recs = [json.loads(x) for x in (runs["one"] / "results.jsonl").read_text().splitlines()]
    recs[1]["rows"][1]["token_ids"] = recs[1]["rows"][1]["token_ids"][:1] + [7, 7]
    recs[1]["rows"][1]["text"] = "changed"
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    d = diff(load_run(runs["one"]), load_run(tmp_path))
    (change,) = d["changed"]
    assert change["comparison"] == "b" and change["rows"][0]["parts_at"] == 1


def test_a_row_only_in_one_run_shows_its_output(runs, tmp_path):
    recs = [json.loads(x) for x in (runs["one"] / "results.jsonl").read_text().splitlines()]
    recs[1]["rows"].append({**recs[1]["rows"][1], "name": "extra", "text": "an extra row"})
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (change,) = diff(load_run(runs["one"]), load_run(tmp_path))["changed"]
    assert change["rows"] == [{"row": "extra", "only_in": "b", "text": "an extra row",
                               "token_ids": recs[1]["rows"][1]["token_ids"]}]


def test_terminal_diff_says_what_the_html_says(run_cli, runs):
    """Both outputs, where they part, first divergence and attention on the marks A -> B."""
    code, out, _ = run_cli("diff", str(runs["one"]), str(runs["two"]))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "1 changed, 1 unchanged" and lines[1] == "a:"
    assert lines[2].startswith("  bias:words=happy,value=30 (was emphasis:strength=1): parts at token ")
    assert "first divergence " in lines[2] and " -> " in lines[2] and "attention on marks 0." in lines[2]
    assert lines[3].startswith("    A: '") and lines[4].startswith("    B: '")


def test_diff_cli(run_cli, runs, tmp_path):
    code, out, _ = run_cli("diff", str(runs["one"]), str(runs["two"]), "--html", str(tmp_path / "d.html"), "--json")
    assert code == 0 and json.loads(out)["unchanged"] == 1 and (tmp_path / "d.html").is_file()
    code, _, err = run_cli("diff", str(tmp_path / "nope"), str(runs["two"]))
    assert code == 2 and err.strip().endswith("/nope': not found")
