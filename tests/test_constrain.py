"""Hard islands: constrained rows always match their grammar (50 sampled generations), the
baseline beside them is untouched, and `force` inserts its text exactly."""

import json
import re

import numpy as np
import pytest

from lenscope.core.engine import Request
from lenscope.errors import BadInput
from lenscope.lenses.constrain import allowed_mask
from lenscope.lenses.spec import parse_inline

PROMPT = "the key is blue. question: what color is the key? answer: the key is"
REGEX = r" (red|green|blue)( [a-z]{1,8})?\."
LARK = 'start: " " COLOR " and " COLOR "."\nCOLOR: "red" | "green" | "blue"'
SCHEMA = {"type": "object", "properties": {"color": {"enum": ["red", "green"]}}, "required": ["color"],
          "additionalProperties": False}


def spec(kind: str, text: str) -> str:
    return f'constrain:{kind}="' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def check_json(text: str) -> bool:
    data = json.loads(text)
    return set(data) == {"color"} and data["color"] in ("red", "green")


CASES = [("regex", REGEX, lambda t: re.fullmatch(REGEX, t) is not None),
         ("lark", LARK, lambda t: re.fullmatch(r" (red|green|blue) and (red|green|blue)\.", t) is not None),
         ("json_schema", json.dumps(SCHEMA), check_json)]


@pytest.mark.parametrize("kind, grammar, matches", CASES, ids=[c[0] for c in CASES])
def test_constrained_rows_always_match_and_the_baseline_is_untouched(engine, kind, grammar, matches):
    variant = parse_inline(spec(kind, grammar))
    seeds = range(17 if kind != "json_schema" else 16)  # 50 sampled generations in all
    for seed in seeds:
        res = engine.compare(Request(PROMPT, [variant], max_tokens=32, temperature=1.0, seed=seed)).run()
        row = res.rows[1]
        assert row.finished, f"seed {seed}: {row.text!r} did not finish"
        assert matches(row.text), f"seed {seed}: {row.text!r}"
        plain = engine.compare(Request(PROMPT, [], max_tokens=32, temperature=1.0, seed=seed)).run()
        assert res.rows[0].token_ids == plain.rows[0].token_ids


def test_force_inserts_text_at_a_step_and_after_a_trigger(engine):
    at = parse_inline('force:text=" purple",at_step=1')
    after = parse_inline('force:text=" and purple",after="red"')
    res = engine.compare(Request(PROMPT, [at, after], max_tokens=8)).run()
    forced = engine.tokenizer.encode(" purple", add_special_tokens=False)
    assert res.rows[1].token_ids[1 : 1 + len(forced)] == forced
    assert res.rows[1].token_ids[0] == res.rows[0].token_ids[0]  # untouched before its step
    base = res.rows[0].text
    assert base.startswith(" red")  # the demo model's answer here: the trigger appears
    assert res.rows[2].text.startswith(" red and purple")


def test_allowed_mask_reads_llguidance_bits():
    mask = np.array([0b101, 1 << 31, 0], dtype=np.uint32).view(np.int32)
    got = allowed_mask(mask, 70)
    assert got.tolist() == [i in (0, 2, 63) for i in range(70)]


@pytest.mark.parametrize("text, words", [
    ("constrain", "exactly one of regex, lark, json_schema"),
    ('constrain:regex="(("', "the grammar is refused"),
    ('constrain:json_schema="{nope"', "json_schema is not JSON"),
    ('constrain:regex="a",lark="start: \\"a\\""', "exactly one"),
    ('constrain:regex="[^\\\\s\\\\S]"', "matches no text"),  # an empty language: "" is not a match
    ('constrain:regex="a{0}"', "matches no text"),  # only the empty text
])
def test_bad_grammars_are_one_line(engine, text, words):
    with pytest.raises(BadInput, match=words):
        engine.compare(Request(PROMPT, [parse_inline(text)], max_tokens=2))


FILES = [("schema", "s.json", json.dumps(SCHEMA), check_json),
         ("grammar", "g.lark", LARK, CASES[1][2]),
         ("regex_file", "r.txt", REGEX + "\n", CASES[0][2])]


@pytest.mark.parametrize("param, name, content, matches", FILES, ids=[f[0] for f in FILES])
def test_grammar_files_constrain_as_their_text_does(run_cli, tmp_path, monkeypatch, param, name, content, matches):
    """`constrain:schema=FILE.json` (grammar=, regex_file=): the file is read into the lens, so
    the row matches it; the inline spec ending in .json is a lens, not a lens file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_text(content)
    code, out, err = run_cli("generate", "--prompt", PROMPT, "--lens", f"constrain:{param}={name}",
                             "--max-tokens", "24", "--temperature", "0.9", "--seed", "3", "--json")
    assert code == 0, err
    row = json.loads(out)["rows"][1]
    assert row["name"] == f"constrain:{param}={name}" and matches(row["text"]), row["text"]
    saved = row["lens"]["stack"][0]  # the grammar itself, not the path: a saved run replays without the file
    text_param = {"schema": "json_schema", "grammar": "lark", "regex_file": "regex"}[param]
    assert saved[text_param] == (content.rstrip("\n") if param == "regex_file" else content) and saved[param] == ""


@pytest.mark.parametrize("spec_text, message", [
    ("constrain:schema=missing.json", "constrain: schema file 'missing.json': not found"),
    ("constrain:grammar=.", "constrain: grammar file '.': is a folder, not a file"),
    ("constrain:schema=s.json,json_schema={}", "constrain: give schema or json_schema, not both"),
    ("constrain:regex=[a-z]{1,3}", "quote a value that holds ',': regex=\"[a-z]{1,3}\""),
    ("missing.json", "lens file 'missing.json': not found"),
])
def test_file_and_spec_mistakes_are_one_line(run_cli, tmp_path, monkeypatch, spec_text, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.json").write_text(json.dumps(SCHEMA))
    code, out, err = run_cli("generate", "--prompt", PROMPT, "--lens", spec_text, "--max-tokens", "1")
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err, err


def test_a_grammar_file_past_its_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "big.lark").write_text("start: " + " | ".join(['"a"'] * 300_000))
    with pytest.raises(BadInput, match="constrain: grammar file 'big.lark': larger than 1024 KiB"):
        parse_inline("constrain:grammar=big.lark")
