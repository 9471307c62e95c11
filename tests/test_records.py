"""Records are declared once (core/records.py) and the real ones match, key by key: a
comparison from `generate --json` and from a run's results.jsonl, a conversation turn and a
conversation's line, and a search's records and summary. A key added or renamed without
its declaration fails here."""

from __future__ import annotations

import json
from typing import Any

from lenscope.batch import experiment, experiment_file
from lenscope.batch import search as searches
from lenscope.chat import conversation as convs
from lenscope.cli import outputs
from lenscope.core import records
from lenscope.lenses.spec import parse_inline


def problems(value: Any, tp: Any) -> list[str]:
    """Where `value` does not match its declaration, as the runtime check says it (records.problem,
    what resume, shards and search results pass through)."""
    found = records.problem(value, tp)
    return [found] if found else []


def test_the_check_finds_a_missing_an_undeclared_and_a_mistyped_key():
    good = {"token_id": 3, "token": "a", "prob": None}
    assert problems(good, records.AlternativeRecord) == []
    assert problems({"token_id": 3, "token": "a"}, records.AlternativeRecord) == ["record: 'prob' is missing"]
    assert problems({**good, "extra": 1}, records.AlternativeRecord) == ["record: 'extra' is not expected"]
    assert problems({**good, "token_id": "3"}, records.AlternativeRecord) == ["record.token_id: '3' is not int"]
    assert problems({**good, "token_id": True}, records.AlternativeRecord) == ["record.token_id: True is not int"]
    assert problems({**good, "prob": "x"}, records.AlternativeRecord) == ["record.prob: 'x' is not float"]


def test_generate_json_is_a_comparison_record(run_cli):
    code, out, err = run_cli("generate", "--prompt", "the key is blue. the key is", "--mark", "blue",
                             "--lens", "emphasis:strength=3", "--max-tokens", "3", "--capture-attention", "--json")
    assert code == 0, err
    assert problems(json.loads(out), outputs.ComparisonLine) == []


def test_results_jsonl_lines_and_turns_are_declared(engine, tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text('[defaults]\nmax_tokens = 3\n'
                    '[[comparison]]\nname = "plain"\nprompt = "the key is blue. the key is"\nmark = ["blue"]\n'
                    'lens = ["emphasis:strength=2"]\ncapture_attention = true\n'
                    '[[comparison]]\nname = "talk"\nturns = ["the key is blue.", "what color is the key?"]\n'
                    'mark = ["blue"]\nlens = ["emphasis:strength=2"]\n')
    experiment.run(engine, experiment_file.load(path), tmp_path / "out", progress=lambda m: None)
    lines = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [problems(rec, outputs.ComparisonLine if "rows" in rec else outputs.ConversationLine) for rec in lines] == [[], []]
    plain, talk = lines
    assert "heatmaps" in plain and talk["kind"] == "conversation"
    turns = talk["conversation"]["turns"]
    assert len(turns) == 2 and [problems(t, records.TurnRecord) for t in turns] == [[], []]


def test_a_turn_with_a_check_is_declared(engine):
    from lenscope.batch.scores import Score

    conv = convs.Conversation()
    check = Score.from_data([{"kind": "contains", "text": "blue"}], "check")
    rec = convs.run_turn(engine, conv, "the key is blue. what color is it?", [parse_inline("emphasis:strength=2")],
                         mark=["blue"], check=check, max_tokens=3, temperature=0.0, seed=0)
    assert problems(rec, records.TurnRecord) == []
    assert all(isinstance(row["passed"], bool) for row in rec["rows"])


def test_search_records_and_summary_are_declared(engine, tmp_path):
    path = tmp_path / "search.toml"
    path.write_text('prompts = ["the key is blue. the key is"]\nmax_tokens = 2\nstrategy = "grid"\nbudget = 2\n'
                    'steps = 2\n[[lens]]\nkind = "bias"\nwords = ["happy"]\nvalue = [0, 30]\n'
                    '[[score]]\nkind = "contains"\ntext = "happy"\n')
    summary = searches.run(engine, searches.load(path), tmp_path / "out")
    assert problems(summary, records.SearchSummary) == []
    lines = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert lines and [p for rec in lines for p in problems(rec, records.SearchRecord)] == []
