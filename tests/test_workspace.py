"""The TUI's state without Textual: marks follow edits and chat mode, staleness, variants,
settings and sessions, all on the bundled model's tokenizer."""

import pytest

from lenscope.core.results import RunResult
from lenscope.errors import BadInput
from lenscope.lenses.spec import parse_inline
from lenscope.storage import session as sessions
from lenscope.tui.workspace import Workspace

PROMPT = "the key is blue. question: what color is the key? answer: the key is"


def blue(ws) -> set[int]:
    return {i for i, t in enumerate(ws.prompt_tokens) if t.strip() == "blue"}


def marked(engine, **kw) -> Workspace:
    ws = Workspace(prompt=PROMPT, **kw)
    ws.retokenize(engine.tokens)
    ws.marks = blue(ws)
    return ws


def test_marks_follow_an_edit_before_them(engine):
    ws = marked(engine)
    before = min(ws.marks)
    ws.prompt = "once more, " + PROMPT
    assert ws.retokenize(engine.tokens) == 0
    assert {ws.prompt_tokens[i].strip() for i in ws.marks} == {"blue"} and min(ws.marks) > before


def test_chat_mode_moves_marks_onto_the_same_characters(engine):
    ws = marked(engine)
    plain = sorted(ws.marks)
    ws.chat = True
    assert ws.retokenize(engine.tokens, remap=True) == 0
    assert ws.template_tokens and not ws.marks & ws.template_tokens
    assert {ws.prompt_tokens[i].strip() for i in ws.marks} == {"blue"} and sorted(ws.marks) != plain
    ws.chat = False
    ws.retokenize(engine.tokens, remap=True)
    assert sorted(ws.marks) == plain and not ws.template_tokens


def test_selection_marks_tokens_of_the_users_text_in_chat_mode(engine):
    ws = Workspace(prompt=PROMPT, chat=True)
    ws.retokenize(engine.tokens)
    start = PROMPT.index("blue")
    hit = ws.tokens_in(engine.tokens, start, start + 4)
    assert {ws.prompt_tokens[i].strip() for i in hit} == {"blue"}
    assert ws.tokens_in(engine.tokens, 0, len(PROMPT)).isdisjoint(ws.template_tokens)


def test_stale_after_any_input_changes(engine):
    ws = marked(engine)
    ws.result = RunResult(model="m", backend="cpu", seed=0, temperature=0.0, prompt=PROMPT, prompt_token_ids=[],
                          prompt_tokens=[], marked_token_indices=[], rows=[])
    ws.result_inputs = ws.inputs_key()
    assert not ws.stale
    for change, undo in [
        (lambda: setattr(ws, "prompt", PROMPT + " "), lambda: setattr(ws, "prompt", PROMPT)),
        (lambda: ws.marks.add(0), lambda: ws.marks.discard(0)),
        (lambda: ws.variants.append(parse_inline("identity")), lambda: ws.variants.pop()),
        (lambda: ws.fields.update(seed="3"), lambda: ws.fields.update(seed="0")),
        (lambda: setattr(ws, "chat", True), lambda: setattr(ws, "chat", False)),
    ]:
        change()
        assert ws.stale
        undo()
        assert not ws.stale
    ws.system = "be brief"  # a system message only counts in chat mode
    assert not ws.stale


def test_variants_add_expand_move_remove():
    ws = Workspace()
    assert ws.set_variant(None, parse_inline("identity")) == 0
    assert ws.set_variant(None, parse_inline("slerp:token=happy,points=3")) == 1
    assert len(ws.variants) == 4  # points=3 became three rows
    ws.set_variant(0, parse_inline("emphasis:strength=2"))
    assert ws.variants[0].lenses[0].kind == "emphasis"
    assert ws.move_variant(0, 1) and ws.variants[1].lenses[0].kind == "emphasis"
    assert not ws.move_variant(0, -1)
    assert ws.remove_variant(1).lenses[0].kind == "emphasis" and len(ws.variants) == 3


def test_settings_are_checked_as_everywhere(engine):
    ws = Workspace(prompt=PROMPT)
    assert ws.settings() == (32, 0.0, 0)
    ws.fields["temperature"] = "hot"
    with pytest.raises(BadInput, match="temperature"):
        ws.request(engine)
    ws.fields["temperature"] = "0.5"
    req = ws.request(engine)
    assert req.temperature == 0.5 and req.prompt == PROMPT
    ws.prompt = "  "
    with pytest.raises(BadInput, match="prompt: empty"):
        ws.request(engine)


def test_session_round_trip(engine, tmp_path):
    ws = marked(engine, chat=True, system="answer briefly")
    ws.variants = [parse_inline("emphasis:strength=2")]
    ws.fields.update(max_tokens="7", temperature="0.7", seed="5")
    ws.result = engine.compare(ws.request(engine)).run()
    path = sessions.save(ws.session("demo"), tmp_path / "s.json")
    other = Workspace()
    other.open(sessions.load(path))
    other.retokenize(engine.tokens)
    assert other.inputs_key() == ws.inputs_key()
    assert other.result.rows[1].token_ids == ws.result.rows[1].token_ids
    assert other.fields == {"max_tokens": "7", "temperature": "0.7", "seed": "5"}


def test_progress_snapshots_do_not_change_while_the_run_goes_on(engine):
    """What a progress message carries: later steps must not write into it."""
    run = engine.compare(Workspace(prompt=PROMPT).request(engine))
    steps = run.steps()
    next(steps)
    snap = run.result.snapshot()
    shown = [list(r.token_ids) for r in snap.rows]
    for _ in steps:
        pass
    assert [r.token_ids for r in snap.rows] == shown and len(run.result.rows[0].top) > len(snap.rows[0].top)


def test_a_session_brings_its_model(tmp_path, run_cli):
    import json

    from lenscope.storage import session as sessions
    from lenscope.tui.launch import session_model

    def saved(model):
        path = tmp_path / f"{abs(hash(model))}.json"
        path.write_text(json.dumps(sessions.Session(prompt="hi", model=model).to_json()))
        return str(path)

    assert session_model(saved("smollm2"), None) == ("smollm2", "")
    assert session_model(saved(None), None) == (None, "")  # the bundled model
    assert session_model(saved("smollm2"), "smollm2") == ("smollm2", "")
    assert session_model(saved("smollm2"), None)[0] == "smollm2"
    # --model wins, and the header keeps saying so
    assert session_model(saved("smollm2"), "gemma3-270m") == ("gemma3-270m", "session made with smollm2")
    # a model that is not here: one line, exit 2, before anything is shown
    missing = saved(str(tmp_path / "gone.gguf"))
    code, out, err = run_cli("tui", "--session", missing)
    assert code == 2 and out == "" and "its model" in err and "cannot be found" in err
    assert len(err.strip().splitlines()) == 1
