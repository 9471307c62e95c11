"""Records are declared once (app/core/records.py) and the real ones match, key by key: a
comparison from `generate --json` and from a run's results.jsonl, a conversation turn and a
conversation's line, and a search's records and summary. A key added or renamed without
its declaration fails here."""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal, NotRequired, Union, get_args, get_origin, get_type_hints

from lenscope.app.batch import experiment, experiment_file
from lenscope.app.batch import search as searches
from lenscope.app.chat import conversation as convs
from lenscope.app.core import records
from lenscope.lenses.spec import parse_inline


def problems(value: Any, tp: Any, where: str = "record") -> list[str]:
    """Where `value` does not have type `tp` (TypedDicts checked key by key, recursively)."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return []
    if origin is NotRequired:
        return problems(value, args[0], where)
    if origin in (Union, types.UnionType):
        return [] if any(not problems(value, a, where) for a in args) else [f"{where}: {value!r:.60} is not {tp}"]
    if origin is Literal:
        return [] if value in args else [f"{where}: {value!r} is not one of {args}"]
    if typing.is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{where}: not an object"]
        hints = get_type_hints(tp)
        out = [f"{where}: '{k}' is missing" for k in tp.__required_keys__ if k not in value]
        out += [f"{where}: '{k}' is not declared in {tp.__name__}" for k in value if k not in hints]
        return out + [p for k, v in value.items() if k in hints for p in problems(v, hints[k], f"{where}.{k}")]
    if origin is list:
        if not isinstance(value, list):
            return [f"{where}: not a list"]
        return [p for i, v in enumerate(value) for p in problems(v, args[0], f"{where}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{where}: not an object"]
        return [p for k, v in value.items() for p in problems(v, args[1], f"{where}.{k}")]
    if tp is float:
        return [] if isinstance(value, (int, float)) and not isinstance(value, bool) else [f"{where}: not a number"]
    if tp is int:
        return [] if isinstance(value, int) and not isinstance(value, bool) else [f"{where}: not an integer"]
    if tp is type(None):
        return [] if value is None else [f"{where}: not null"]
    return [] if isinstance(value, tp) else [f"{where}: {value!r:.60} is not {tp.__name__}"]


def test_the_checker_finds_a_missing_an_undeclared_and_a_mistyped_key():
    good = {"token_id": 3, "token": "a", "prob": None}
    assert problems(good, records.AlternativeRecord) == []
    assert problems({"token_id": 3, "token": "a"}, records.AlternativeRecord) == ["record: 'prob' is missing"]
    assert problems({**good, "extra": 1}, records.AlternativeRecord) == [
        "record: 'extra' is not declared in AlternativeRecord"]
    assert problems({**good, "token_id": "3"}, records.AlternativeRecord) == ["record.token_id: not an integer"]
    assert problems({**good, "token_id": True}, records.AlternativeRecord) == ["record.token_id: not an integer"]


def test_generate_json_is_a_comparison_record(run_cli):
    code, out, err = run_cli("generate", "--prompt", "the key is blue. the key is", "--mark", "blue",
                             "--lens", "emphasis:strength=3", "--max-tokens", "3", "--capture-attention", "--json")
    assert code == 0, err
    assert problems(json.loads(out), records.ComparisonRecord) == []


def test_results_jsonl_lines_and_turns_are_declared(engine, tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text('[defaults]\nmax_tokens = 3\n'
                    '[[comparison]]\nname = "plain"\nprompt = "the key is blue. the key is"\nmark = ["blue"]\n'
                    'lens = ["emphasis:strength=2"]\ncapture_attention = true\n'
                    '[[comparison]]\nname = "talk"\nturns = ["the key is blue.", "what color is the key?"]\n'
                    'mark = ["blue"]\nlens = ["emphasis:strength=2"]\n')
    experiment.run(engine, experiment_file.load(path), tmp_path / "out", progress=lambda m: None)
    lines = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [problems(rec, records.ResultLine) for rec in lines] == [[], []]
    plain, talk = lines
    assert "heatmaps" in plain and talk["kind"] == "conversation"
    turns = talk["conversation"]["turns"]
    assert len(turns) == 2 and [problems(t, records.TurnRecord, f"turn {k}") for k, t in enumerate(turns)] == [[], []]


def test_a_turn_with_a_check_is_declared(engine):
    from lenscope.app.batch.scores import Score

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
