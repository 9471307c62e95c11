"""`lenscope search`: a planted optimum is found, a killed search resumes without
repeating work, halving narrows down, and bad files are refused in one line."""

import json
import re

import pytest

from lenscope.batch import search as searches
from lenscope.errors import BadInput

PLANTED = """
prompts = ["the key is blue. question: what color is the key? answer: the key is",
           "one day, tom went to the park. the sun was"]
max_tokens = 4
strategy = "{strategy}"
budget = {budget}
steps = 4
rows = {rows}

[[lens]]
kind = "bias"
words = ["happy"]
value = [0, 30]

[[score]]
kind = "contains"
text = "happy"
"""


def write(tmp_path, strategy="grid", budget=4, rows=8, text=PLANTED):
    path = tmp_path / "search.toml"
    path.write_text(text.format(strategy=strategy, budget=budget, rows=rows))
    return path


def lines(out):
    return [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]


def test_grid_finds_the_planted_optimum(engine, tmp_path):
    s = searches.load(write(tmp_path))
    assert [d.grid(4) for d in s.dimensions] == [[0.0, 10.0, 20.0, 30.0]]
    summary = searches.run(engine, s, tmp_path / "out")
    best = summary["candidates"][0]
    assert best["score"] == 1.0 and best["values"]["0.value"] >= 20
    assert summary["baseline"]["score"] == 0.0
    zero = next(c for c in summary["candidates"] if c["values"]["0.value"] == 0)
    assert zero["score"] == 0.0  # a bias of 0 changes nothing
    recs = lines(tmp_path / "out")
    assert len(recs) == 2 * (4 + 1)  # 4 candidates and the baseline, on 2 prompts
    text = searches.best_lens_file(s, summary)
    assert "kind = \"bias\"" in text and f"value = {best['values']['0.value']}" in text
    md = searches.report(s, summary)
    assert "## score against 0.value" in md and "| 1 |" in md and "## best:" in md


def test_killed_search_resumes_without_repeating_work(engine, tmp_path, monkeypatch):
    s = searches.load(write(tmp_path, rows=3))  # 2 candidates per batch: several batches
    out = tmp_path / "out"

    class Killed(Exception):
        pass

    def die(done, total):
        raise Killed

    with pytest.raises(Killed):
        searches.run(engine, s, out, progress=die)  # dies after prompt 1
    first = lines(out)
    assert 0 < len(first) < 10
    calls = []
    real = type(engine).compare
    monkeypatch.setattr(type(engine), "compare", lambda self, req, **kw: calls.append(len(req.variants)) or
                        real(self, req, **kw))
    summary = searches.run(engine, s, out)
    recs = lines(out)
    keys = [(r["candidate"], r["prompt"]) for r in recs]
    assert len(keys) == len(set(keys)) == 10  # every (candidate, prompt) once, nothing redone
    assert sum(calls) == 10 - len(first) - (2 - sum(1 for r in first if r["candidate"] == "baseline"))
    assert summary["candidates"][0]["score"] == 1.0


def test_a_cut_off_last_line_is_made_again(engine, tmp_path):
    s = searches.load(write(tmp_path))
    out = tmp_path / "out"
    searches.run(engine, s, out)
    text = (out / "results.jsonl").read_text()
    (out / "results.jsonl").write_text(text[: len(text) - 20])  # the last line cut mid-way
    searches.run(engine, s, out)
    assert len(lines(out)) == 10


def test_halving_keeps_the_better_half(engine, tmp_path):
    s = searches.load(write(tmp_path, strategy="halving", budget=6))
    assert searches._halving_rounds(6, 2) == [(6, 1), (3, 2)]
    summary = searches.run(engine, s, tmp_path / "out")
    on_both = [c for c in summary["candidates"] if c["prompts"] == 2]
    assert len(on_both) == 3 and on_both[0]["score"] == 1.0
    dropped = [c for c in summary["candidates"] if c["prompts"] == 1]
    assert max(c["score"] for c in dropped) <= min(c["score"] for c in on_both)


def test_random_is_seeded(tmp_path):
    s = searches.load(write(tmp_path, strategy="random", budget=5))
    assert s.candidates(0) == s.candidates(0) != s.candidates(1)
    assert all(0 <= c["0.value"] <= 30 for c in s.candidates(0))


def test_constraint_ranks_infeasible_last(engine, tmp_path):
    text = PLANTED + '\n[[score]]\nkind = "fluency"\nweight = 0\n\n[[constraint]]\npart = "fluency"\nmin_vs_baseline = -0.5\n'
    s = searches.load(write(tmp_path, text=text))
    summary = searches.run(engine, s, tmp_path / "out")
    feasible = [c["feasible"] for c in summary["candidates"]]
    assert feasible == sorted(feasible, reverse=True)  # feasible ones first
    assert any(not f for f in feasible)  # 'happy happy happy' is not fluent


@pytest.mark.parametrize("change, words", [
    (lambda t: t.replace('strategy = "grid"', 'strategy = "magic"'), "strategy must be one of"),
    (lambda t: re.sub(r"prompts = \[.*?\]\n", "prompts = []\n", t, flags=re.DOTALL), "'prompts' must be a non-empty list"),
    (lambda t: t.replace('kind = "contains"', 'kind = "vibes"'), "score kind must be one of"),
    (lambda t: t.replace('kind = "bias"', 'kind = "nope"'), "known 'kind'"),
    (lambda t: t.replace("value = [0, 30]", "value = [0, 1e400]"), "value"),
    (lambda t: t + "\n[[constraint]]\npart = \"judge\"\nmin_vs_baseline = 0\n", "not in the score"),
    (lambda t: "colour = 1\n" + t, "unknown key 'colour'"),
])
def test_bad_search_files(tmp_path, change, words):
    path = tmp_path / "s.toml"
    path.write_text(change(PLANTED.format(strategy="grid", budget=4, rows=8)))
    with pytest.raises(BadInput, match=words):
        searches.load(path)


def test_search_cli(run_cli, tmp_path):
    path = write(tmp_path)
    code, out, err = run_cli("search", str(path), "--out", str(tmp_path / "o"))
    assert code == 0, err
    assert "best:" in out and (tmp_path / "o" / "best.toml").is_file() and (tmp_path / "o" / "report.md").is_file()


CONVERSATIONS = """
[defaults]
max_tokens = 4
[[comparison]]
name = "key"
system = "the key is blue"
turns = ["where is the key?", "what colour is it?"]
mark = ["blue"]
check = {kind = "contains", text = "blue"}
[[comparison]]
name = "dog"
turns = ["my dog is called rex. say rex.", "what is the sun?"]
mark = ["rex"]
check = {kind = "contains", text = "rex"}
"""

CONVERSATION_SEARCH = """
conversations = "conv.toml"
max_tokens = 4
budget = 3
steps = 3
[[lens]]
kind = "hold"
ceiling = [0, 8]
[[score]]
kind = "distinct"
weight = 0
[[constraint]]
part = "distinct"
min_vs_baseline = -0.5
"""


def test_conversation_search_scores_each_turn_with_the_conversations_check(engine, tmp_path):
    """A search over an experiment's conversations: each candidate's score is the share of
    turns whose reply passed the conversation's check (plus the score parts, averaged over
    turns), and a neutral candidate scores exactly as the baseline."""
    from lenscope.batch import experiment, experiment_file
    from lenscope.batch.scores import distinct_share

    (tmp_path / "conv.toml").write_text(CONVERSATIONS)
    (tmp_path / "s.toml").write_text(CONVERSATION_SEARCH)
    s = searches.load(tmp_path / "s.toml")
    assert s.prompts == ["key", "dog"] and len(s.conversations) == 2
    summary = searches.run(engine, s, tmp_path / "out")
    neutral = next(c for c in summary["candidates"] if c["values"]["0.ceiling"] == 0)
    assert neutral["score"] == summary["baseline"]["score"] and neutral["parts"] == summary["baseline"]["parts"]
    # the baseline's check share equals what `lenscope run` finds for the same conversations in keep mode
    exp = experiment_file.load(tmp_path / "conv.toml")
    records = experiment.run(engine, exp, tmp_path / "run", progress=lambda m: None)
    passed = [row["passed"] for rec in records for t in rec["conversation"]["turns"] for row in t["rows"][:1]]
    assert summary["baseline"]["parts"]["check"] == pytest.approx(sum(passed) / len(passed))
    replies = [row["token_ids"] for rec in records for t in rec["conversation"]["turns"] for row in t["rows"][:1]]
    assert summary["baseline"]["parts"]["distinct:n=1"] == pytest.approx(sum(map(distinct_share, replies)) / len(replies))


def test_conversation_search_file_errors(tmp_path):
    (tmp_path / "conv.toml").write_text('[[comparison]]\nname = "x"\nprompt = "hi"\n')
    (tmp_path / "s.toml").write_text(CONVERSATION_SEARCH)
    with pytest.raises(BadInput, match="holds no conversation"):
        searches.load(tmp_path / "s.toml")
    (tmp_path / "s.toml").write_text('prompts = ["a"]\n' + CONVERSATION_SEARCH)
    with pytest.raises(BadInput, match="not both"):
        searches.load(tmp_path / "s.toml")
