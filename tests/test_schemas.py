"""docs/json/*.schema.json: made from the declarations (cli/outputs.py, core/records.py)
and current, and every command's `--json` and every results.jsonl record kind validates
against its schema, on the demo model and on SmolLM2.

After an intended change of a shape: `LENSCOPE_UPDATE_SCHEMAS=1 pytest tests/test_schemas.py`
rewrites the files (and `schema_version` goes up when a script would notice)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest
from json_schema import schema, validate

from lenscope.cli.outputs import SCHEMAS
from lenscope.core.records import SCHEMA_VERSION

DOCS = Path(__file__).resolve().parents[1] / "docs" / "json"
PROMPT = "the key is blue. question: what color is the key? answer: the key is"


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_schema_files_are_current(name):
    path = DOCS / f"{name}.schema.json"
    text = json.dumps(schema(name), indent=2, ensure_ascii=False) + "\n"
    if os.environ.get("LENSCOPE_UPDATE_SCHEMAS"):
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"{path} is missing: LENSCOPE_UPDATE_SCHEMAS=1 pytest {__file__}"
    assert path.read_text(encoding="utf-8") == text, f"{path.name} is out of date with cli/outputs.py"
    jsonschema.Draft202012Validator.check_schema(json.loads(text))


def test_no_schema_file_without_a_declaration():
    assert sorted(p.name for p in DOCS.glob("*.schema.json")) == sorted(f"{n}.schema.json" for n in SCHEMAS)


def test_a_shape_that_drifts_fails():
    """The schemas are strict: an undeclared key, a token without its id, a wrong type fail."""
    row = {"name": "baseline", "positions": []}
    good = {"schema_version": SCHEMA_VERSION, "model": "m", "layers": 2, "prompt_len": 3, "rows": [row]}
    validate(good, "logit-lens")
    for bad in ({**good, "extra": 1}, {**good, "layers": "2"}, {k: v for k, v in good.items() if k != "rows"},
                {**good, "schema_version": 0}):
        with pytest.raises(jsonschema.ValidationError):
            validate(bad, "logit-lens")
    top = {"token": " blue", "prob": 0.5}  # the old [token, prob] without its id
    position = {"position": 0, "input": "a", "input_id": 1, "next": None, "next_id": None, "prediction": "b",
                "prediction_id": 2, "first_top1_layer": None, "layers": [{"layer": "emb", "top": [top]}], "pinned": []}
    with pytest.raises(jsonschema.ValidationError, match="'id' is a required property"):
        validate({**good, "rows": [{**row, "positions": [position]}]}, "logit-lens")


def outputs_of(run_cli, tmp_path: Path, model: list[str]) -> dict[str, object]:
    """Every command's --json on one model, and the records of a run and a search."""
    def cli(*args: str) -> object:
        code, out, err = run_cli(*args, "--json")
        assert code == 0, (args, err)
        return json.loads(out)

    lens = ["--lens", "emphasis:strength=2", "--mark", "blue"]
    got: dict[str, object] = {
        "comparison": cli("generate", *model, "--prompt", PROMPT, *lens, "--max-tokens", "3", "--capture-attention"),
        "score": cli("score", *model, "--prompt", PROMPT, *lens, "--continuation", " blue"),
        "attention": cli("attention", *model, "--prompt", PROMPT, "--layer", "1"),
        "logit-lens": cli("logit-lens", *model, "--prompt", PROMPT, *lens, "--max-tokens", "2", "--pin", " blue"),
        "geometry": cli("geometry", *model, "--prompt", PROMPT, *lens, "--max-tokens", "2"),
        "heads": cli("heads", *model, "--length", "8"),
        "tree": cli("tree", *model, "--prompt", PROMPT, "--budget", "6"),
        "models": cli("models"),
        "lenses": cli("lenses"),
    }
    exp = tmp_path / "exp.toml"
    exp.write_text('[defaults]\nmax_tokens = 2\n[[comparison]]\nname = "plain"\nprompt = "the key is blue. the key is"\n'
                   'mark = ["blue"]\nlens = ["emphasis:strength=2"]\ncapture_attention = true\n'
                   '[[comparison]]\nname = "talk"\nturns = ["the key is blue.", "what color is it?"]\nmark = ["blue"]\n')
    for out in ("a", "b"):
        code, _, err = run_cli("run", *model, str(exp), "--out", str(tmp_path / out))
        assert code == 0, err
    lines = [json.loads(x) for x in (tmp_path / "a" / "results.jsonl").read_text().splitlines()]
    got["comparison (results.jsonl)"], got["conversation"] = lines
    got["diff"] = cli("diff", str(tmp_path / "a"), str(tmp_path / "b"))
    search = tmp_path / "search.toml"
    search.write_text('prompts = ["the key is blue. the key is"]\nmax_tokens = 2\nstrategy = "grid"\nbudget = 2\n'
                      'steps = 2\n[[lens]]\nkind = "bias"\nwords = ["happy"]\nvalue = [0, 30]\n'
                      '[[score]]\nkind = "contains"\ntext = "happy"\n')
    code, _, err = run_cli("search", *model, str(search), "--out", str(tmp_path / "s"))
    assert code == 0, err
    got["search-record"] = [json.loads(x) for x in (tmp_path / "s" / "results.jsonl").read_text().splitlines()]
    return got


def check_all(got: dict[str, object]) -> None:
    for name, value in got.items():
        kind = name.split(" ")[0]
        for item in value if isinstance(value, list) else [value]:
            assert item["schema_version"] == SCHEMA_VERSION, name
            validate(item, kind)


def test_every_output_validates_on_the_demo_model(run_cli, tmp_path):
    got = outputs_of(run_cli, tmp_path, [])
    got["doctor"] = json.loads(run_cli("doctor", "--json")[1])
    got["measure"] = json.loads(run_cli("measure", "recall", "--n", "1", "--distances", "0", "--json")[1])
    got["bench"] = json.loads(run_cli("bench", "--tokens", "4", "--repeats", "1", "--json")[1])
    assert {k.split(" ")[0] for k in got} == set(SCHEMAS)  # every schema met a real output
    check_all(got)


@pytest.mark.real_model
def test_every_output_validates_on_smollm2(run_cli, tmp_path, smollm2_engine, monkeypatch):
    from lenscope import models

    monkeypatch.setattr(models, "load", lambda *a, **k: smollm2_engine.loaded)  # loaded once per session
    got = outputs_of(run_cli, tmp_path, ["--model", "smollm2"])
    assert got["comparison"]["model"] == "smollm2" and got["logit-lens"]["layers"] == 30
    check_all(got)
