"""The TUI's core loop (run, change the variants, run again) and its dialogs, forms, palette
and sessions under bad input, each driven with Textual's Pilot."""

import json
import pathlib

import pytest
from textual.command import CommandPalette
from textual.widgets import Input, OptionList, TextArea
from textual.widgets.text_area import Selection
from tui_helpers import PROMPT, app, messages, open_form, ready, run_and_wait

from lenscope.lenses.spec import parse
from lenscope.tui.compare.compare_panel import ComparePanel, RowColumn
from lenscope.tui.compose.token_chips import TokenChips, chip_text
from lenscope.tui.compose.variant_list import VariantList
from lenscope.tui.dialogs.lens_dialogs import LensForm, PathPrompt, SpecEditor, number
from lenscope.tui.heatmap.heatmap_panel import HeatmapPanel
from lenscope.tui.widgets.charts import StepCharts
from lenscope.tui.widgets.heatmap_view import HeatmapView

SIX = ["identity", "emphasis:strength=2", "emphasis:strength=4", "steer:token=happy,strength=10", "decay"]


def text_of(widget) -> str:
    return str(widget.render())


def column_names(a) -> list[str]:
    """The columns actually mounted, in screen order."""
    return [c.row_name for c in a.main.query_one(ComparePanel).query(RowColumn)]


def info(a) -> str:
    return text_of(a.main.query_one("#compare-info"))


async def add_with_form(pilot, kind: str, **values: str) -> None:
    """a, pick `kind`, fill the fields, apply: as a person would."""
    a = pilot.app
    await open_form(pilot, kind)
    for name, value in values.items():
        a.screen.query_one(f"#p-{name}", Input).value = value
    await pilot.press("ctrl+s")
    await pilot.pause()


# -- 1. the core loop: run, change the variants, run again ----------------------------------
async def test_run_twice_and_change():
    a = app(lens_specs=["identity"])
    async with a.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await run_and_wait(pilot, "3")
        assert column_names(a) == ["baseline", "identity"]

        await add_with_form(pilot, "emphasis", strength="5")
        await run_and_wait(pilot, "3")
        assert column_names(a) == ["baseline", "identity", "emphasis:strength=5"]

        await pilot.press("f2")
        a.main.query_one(VariantList).focus()
        await pilot.press("x", "x")
        assert a.ws.variants == []
        await run_and_wait(pilot, "3")
        assert column_names(a) == ["baseline"]

        await add_with_form(pilot, "decay")
        await add_with_form(pilot, "identity")
        assert a.main.query_one(VariantList).highlighted == 1  # the one just added
        await pilot.press("ctrl+up")  # identity above decay
        assert [v.name for v in a.ws.variants] == ["identity", "decay"]
        await run_and_wait(pilot, "3")
        assert column_names(a) == ["baseline", "identity", "decay"]
        assert [r.name for r in a.ws.result.rows] == ["baseline", "identity", "decay"]
        assert a._exception is None


async def test_columns_follow_rows_without_waiting():
    """Rows changing between two progress messages of one refresh: columns end up right."""
    a = app(lens_specs=["identity", "decay"])
    async with a.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await run_and_wait(pilot, "3")
        view = a.main.query_one(ComparePanel)
        full = a.ws.result
        fewer = json.loads(json.dumps(full.to_json()))
        fewer["rows"] = fewer["rows"][:1]
        from lenscope.core.results import from_json

        view.set_result(from_json(fewer))
        view.set_result(full)
        view.set_result(from_json(fewer))
        view.set_result(full)
        await pilot.pause()
        assert column_names(a) == ["baseline", "identity", "decay"]
        assert a._exception is None


# -- 2. ctrl+k marks the selection even in the prompt ----------------------------------------
async def test_ctrl_k_in_prompt_marks_and_keeps_text_and_marks():
    a = app()
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        area = a.main.query_one("#prompt", TextArea)
        assert area.has_focus  # focused at launch
        a.pane.set_marks({0})
        start = PROMPT.index("blue")
        area.selection = Selection((0, start), (0, start + 4))
        await pilot.press("ctrl+k")
        await pilot.pause()
        blue = {i for i, t in enumerate(a.ws.prompt_tokens) if "blue" in t}
        assert area.text == PROMPT  # TextArea's own ctrl+k (delete to end of line) did not run
        assert a.ws.marks == {0} | blue


# -- 3. many rows stay side by side, with a row range ------------------------------------------
@pytest.mark.parametrize("size,shown", [((120, 40), 4), ((80, 24), 3)])
async def test_six_rows_side_by_side_with_range(size, shown):
    a = app(lens_specs=SIX)
    async with a.run_test(size=size) as pilot:
        await ready(pilot)
        await run_and_wait(pilot, "3")
        view = a.main.query_one(ComparePanel)
        cols = list(view.query(RowColumn))
        assert len(cols) == 6
        assert {c.outer_size.width for c in cols} == {size[0] // shown}
        assert f"rows 1-{shown} of 6" in info(a)
        await pilot.press(*["down"] * 5)
        await pilot.pause()
        assert view.focused_row == 5
        assert f"rows {7 - shown}-6 of 6" in info(a)
        assert cols[5].region.x < size[0]  # the focused column scrolled into view


async def test_few_rows_fill_the_width():
    a = app(lens_specs=["identity"])
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await run_and_wait(pilot, "3")
        cols = list(a.main.query_one(ComparePanel).query(RowColumn))
        assert sum(c.outer_size.width for c in cols) == 100
        assert "rows 1-2 of 2" in info(a) and "scroll" not in info(a)


# -- 4. points=k expands into k rows, as on the command line ------------------------------------
async def test_slerp_points_expand_in_form_and_spec_editor():
    a = app()
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        a.main.query_one(VariantList).focus()
        await pilot.press("a")
        picker = a.screen.query_one(OptionList)
        picker.highlighted = [o.id for o in picker._options].index("slerp")
        await pilot.press("enter")
        assert isinstance(a.screen, LensForm)
        a.screen.query_one("#p-points", Input).value = "3"
        a.screen.query_one("#p-token", Input).value = "happy"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert len(a.ws.variants) == 3
        assert [round(v.lenses[0].t, 2) for v in a.ws.variants] == [0.0, 0.15, 0.3]  # [0, t], t at its default 0.3
        assert all(v.lenses[0].points == 0 for v in a.ws.variants)
        await pilot.press("t")  # edit the highlighted row as a spec: one row becomes two
        a.screen.query_one("#spec", Input).value = "slerp:points=2,token=sad"
        await pilot.press("enter")
        await pilot.pause()
        assert len(a.ws.variants) == 4


# -- 5. layers and heads checked against the model; failures name the variant; stale results ----
async def test_form_checks_layers_and_heads_against_the_model():
    a = app()
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        n_layers, n_heads = a.engine.n_layers, a.engine.n_heads
        a.main.query_one(VariantList).focus()
        await pilot.press("a", "down", "enter")  # emphasis
        form = a.screen
        form.query_one("#p-layers", Input).value = "99"
        form.query_one("#p-heads", Input).value = "-3"
        await pilot.pause()
        error = text_of(form.query_one("#error"))
        assert "layer 99 does not exist" in error and f"{n_layers} layers" in error
        assert "head -3 does not exist" in error and f"0..{n_heads - 1}" in error
        assert form.query_one("#p-layers", Input).has_class("-invalid")
        assert form.query_one("#p-heads", Input).has_class("-invalid")
        await pilot.press("ctrl+s")
        assert a.screen is form and a.ws.variants == []  # refused
        form.query_one("#p-layers", Input).value = str(n_layers - 1)
        form.query_one("#p-heads", Input).value = "0"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert len(a.ws.variants) == 1
        await pilot.press("t")
        a.screen.query_one("#spec", Input).value = "head-scale:heads=99"
        await pilot.pause()
        assert "head 99 does not exist" in text_of(a.screen.query_one("#error"))


async def test_run_refuses_or_fails_naming_the_variant():
    a = app(lens_specs=["identity", "emphasis:layers=99"])
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert any(m.startswith("variant 'emphasis:layers=99': ") for m in messages(a))
        assert a.ws.result is None and not a.running
        a.ws.variants[1:] = []
        a.ws.variants += parse("steer:file=/no/such.npy")
        await run_and_wait(pilot, "3")
        assert any(m.startswith("variant 'steer:file=/no/such.npy': direction file") for m in messages(a))
        assert "steer:file" in text_of(a.main.query_one("#status"))
        assert not a.running and a._exception is None


async def test_results_go_stale_when_inputs_change():
    a = app(lens_specs=["identity"])
    async with a.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await run_and_wait(pilot, "3")
        assert "stale" not in info(a)
        a.main.query_one("#max-tokens", Input).value = "7"
        await pilot.pause()
        assert "stale: inputs changed since this run" in info(a)
        assert "stale" in text_of(a.main.query_one(HeatmapPanel).query_one("#heatmap-header"))
        a.main.query_one("#max-tokens", Input).value = "3"  # back to what ran: not stale
        await pilot.pause()
        assert "stale" not in info(a)
        a.pane.set_marks({1})
        await pilot.pause()
        assert "stale" in info(a)
        a.pane.set_marks(set())
        a.main.query_one("#prompt", TextArea).insert("so ", (0, 0))
        await pilot.pause()
        assert "stale" in info(a)
        await run_and_wait(pilot, "3")
        assert "stale" not in info(a)
        a.main.query_one(VariantList).focus()
        await pilot.press("x")
        assert "stale" in info(a)


# -- 6. heatmap keys, colour scale, charts, token count -----------------------------------------
async def test_heatmap_scroll_keys_scale_and_charts():
    a = app(lens_specs=["emphasis:strength=3"], marks=["key"])
    async with a.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        a.engine.eos_ids = set()  # a long sequence: more queries than one screen
        await run_and_wait(pilot, max_tokens="40")
        await pilot.press("f4")
        panel = a.main.query_one(HeatmapPanel)
        n = panel._shown_size()[0]
        page = panel._page_rows()
        assert n > page  # the test needs more queries than one page
        await pilot.press("down")
        assert not panel.fit and panel.origin == (1, 0)
        await pilot.press("pagedown")
        assert panel.origin == (min(1 + page, n - page), 0)
        await pilot.press("end")
        assert panel.origin == (n - page, 0)
        await pilot.press("pagedown", "down")
        assert panel.origin == (n - page, 0)  # never past the last full page (not @87 of 88 queries)
        await pilot.press("pageup")
        assert panel.origin[0] < n - 1
        await pilot.press("home")
        assert panel.origin == (0, 0)
        await pilot.press("r", "m", "m")  # difference mode: a diverging scale with its range
        assert panel.mode == "difference"
        scale = text_of(panel.query_one("#heatmap-scale"))
        vmax = panel.query_one(HeatmapView).vmax
        assert f"{-vmax:+.3g}" in scale and f"{vmax:+.3g}" in scale and "blue" in scale
        charts = panel.query_one(StepCharts)
        assert charts.display  # room for both at 120x40
        legend = charts.render().renderables[-1].plain
        assert "baseline" in legend and "emphasis:strength=3" in legend
        await pilot.press("c")
        assert not charts.display


async def test_charts_on_demand_when_small_and_token_count():
    a = app(lens_specs=["identity"], marks=["key"])
    async with a.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        label = text_of(a.main.query_one("#tokens-label"))
        assert f"tokens ({len(a.ws.prompt_tokens)})" in label
        await run_and_wait(pilot, "3")
        await pilot.press("f4")
        panel = a.main.query_one(HeatmapPanel)
        charts, view = panel.query_one(StepCharts), panel.query_one(HeatmapView)
        assert not charts.display and view.display
        await pilot.press("c")
        await pilot.pause()
        assert charts.display and not view.display  # too small for both: charts in its place
        assert charts.size.height >= 10
        await pilot.press("c")
        assert not charts.display and view.display


# -- 7. focus ------------------------------------------------------------------------------------
async def test_focus_prompt_forms_and_first_variant():
    a = app(prompt="", lens_specs=["identity", "decay"])
    async with a.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("h", "i")
        assert a.ws.prompt == "hi"  # typing works without tab
        assert a.main.query_one(VariantList).highlighted == 0
        a.main.query_one(VariantList).focus()
        await pilot.press("x")  # acts on the first variant at once
        assert [v.name for v in a.ws.variants] == ["decay"]
        await pilot.press("a", "down", "enter")
        await pilot.pause()
        assert isinstance(a.screen, LensForm) and a.screen.focused is a.screen.query_one("#name", Input)
        await pilot.pause()
        assert a.screen.query_one("VerticalScroll").scroll_y == 0  # its label stays in view
        await pilot.press("escape", "t")
        await pilot.pause()
        assert isinstance(a.screen, SpecEditor) and a.screen.focused is a.screen.query_one("#spec", Input)
        await pilot.press("escape", "ctrl+o")
        await pilot.pause()
        assert isinstance(a.screen, PathPrompt) and a.screen.focused is a.screen.query_one("#path", Input)


async def test_reopened_session_captures_attention_again(tmp_path):
    path = tmp_path / "s.json"
    a = app(lens_specs=["emphasis:strength=3"], marks=["blue"])
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await run_and_wait(pilot, "3")
        from lenscope.storage import session as sessions

        sessions.save(a.sessions.current(), path)
        shape = a.ws.captures[1].attention.shape
    b = app(prompt="", session=str(path))
    async with b.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        assert set(b.ws.captures) == {0, 1} and b.ws.captures[1].attention.shape == shape
        assert not b.running and "stale" not in info(b)
        assert "attention captured" in text_of(b.main.query_one("#status"))


async def test_session_from_other_inputs_says_attention_is_not_saved(tmp_path):
    path = tmp_path / "s.json"
    a = app(lens_specs=["identity"])
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await run_and_wait(pilot, "3")

        data = a.sessions.current().to_json()
    data["result"]["rows"][1]["name"] = "renamed elsewhere"  # the outputs no longer match the variants
    path.write_text(json.dumps(data))
    b = app(prompt="", session=str(path))
    async with b.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        assert b.ws.result is not None and b.ws.captures == {}
        assert "attention is not saved" in text_of(b.main.query_one("#status"))
        assert "ctrl+r runs again" in text_of(b.main.query_one("#status"))


async def test_open_a_folder_says_it_is_a_folder(tmp_path):
    a = app()
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+o")
        a.screen.query_one(Input).value = str(tmp_path)
        await pilot.press("enter")
        await pilot.pause()
        assert f"session '{tmp_path}': is a folder" in messages(a)


# -- 8. small things ------------------------------------------------------------------------------
def test_numbers_and_byte_tokens_read_well():
    assert number(1048576.0) == "1048576" and number(1 << 20) == "1048576"
    assert number(0.5) == "0.5" and number(-10.0) == "-10"
    assert chip_text("\ufffd", "<0xE2>") == "<0xE2>"
    assert chip_text("\ufffd", "Ã") == "<0xC3>"  # byte-level BPE spells byte 0xC3 as 'Ã'
    assert chip_text(" \ufffd", "Ġâ") == "·<0xE2>"
    assert chip_text(" a\n", "ignored") == "·a⏎"


async def test_form_ranges_and_byte_chips_and_alternatives():
    a = app(prompt="café au lait")
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        chips = a.main.query_one(TokenChips)
        assert "<0xC3>" in chips.tokens and "<0xA9>" in chips.tokens
        assert not any("\ufffd" in t for t in chips.tokens)
        labels = {}
        from lenscope.lenses.registry import KINDS

        for kind in KINDS:  # every form opens (help texts are markup-safe)
            a.push_screen(LensForm(kind))
            await pilot.pause()
            labels[kind] = " ".join(text_of(w) for w in a.screen.query("Label"))
            a.pop_screen()
            await pilot.pause()
        assert "steps (int [1, 1048576])" in labels["temperature"]
        assert "e+" not in " ".join(labels.values())
        await run_and_wait(pilot, "3")
        view = a.main.query_one(ComparePanel)
        byte_id = a.ws.prompt_ids[3]
        assert view.raw_token(byte_id) == "Ã"
        from lenscope.core.results import Alternative

        a.ws.result.rows[0].top[0] = [Alternative(byte_id, "\ufffd", 0.5)]
        view.cursor = 0
        assert "<0xC3> 0.50" in view.alternatives_text().plain


async def test_palette_lists_actions_before_typing():
    a = app()
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause(0.5)
        assert isinstance(a.screen, CommandPalette)
        shown = " ".join(str(o.prompt) for o in a.screen.query_one("CommandList")._options)
        for name in ("Run comparison", "Add lens variant", "Open session", "Toggle charts"):
            assert name in shown
        await pilot.press("escape")


# -- 9. bad session files: one notification, the app and its state unchanged ----------------------
def _session(**changes):
    base = {"format": "lenscope-session", "version": 1, "model": None, "prompt": "p", "marks": [],
            "variants": [], "settings": {"seed": 0, "temperature": 0.0, "max_tokens": 4}, "result": None}
    return {**base, **changes}


def _result(rows):
    return {"model": "m", "backend": "cpu", "seed": 0, "temperature": 0, "prompt": "p",
            "prompt_token_ids": [1],
            "prompt_tokens": ["p"], "marked_token_indices": [], "rows": rows}


def _row(**changes):
    return {"name": "baseline", "lens": None, "token_ids": [1], "tokens": ["a"], "text": "a",
            "top_alternatives": [[{"token_id": 1, "token": "a", "prob": 0.5}]], **changes}


BAD_SESSIONS = {
    "version as text": json.dumps(_session(version="2")),
    "infinite mark": json.dumps(_session()).replace('"marks": []', '"marks": [1e999]'),
    "settings a list": json.dumps(_session(settings=[1])),
    "token id text": json.dumps(_session(result=_result([_row(token_ids=["a"])]))),
    "row a number": json.dumps(_session(result=_result([5]))),
    "alternative without token": json.dumps(_session(result=_result([_row(top_alternatives=[[{"token_id": 1,
                                                                                            "prob": 1}]])]))),
    "deeply nested": '{"format": "lenscope-session", "prompt": ' + "[" * 100000 + "]" * 100000 + "}",
    "lone surrogate": json.dumps(_session(prompt="a\ud800b")),
    "negative mark": json.dumps(_session(marks=[-1])),
    "not json": "{nope",
}


async def _assert_untouched(a, pilot, path):
    await pilot.pause()
    said = [m for m in messages(a) if m.startswith(f"session '{path}': ")]
    assert len(said) == 1 and "\n" not in said[0]
    assert a._exception is None


@pytest.mark.parametrize("case", BAD_SESSIONS)
async def test_bad_session_on_the_command_line(tmp_path, case):
    path = tmp_path / "bad.json"
    path.write_text(BAD_SESSIONS[case], errors="surrogatepass")
    a = app(session=str(path), lens_specs=["identity"])
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await _assert_untouched(a, pilot, path)
        assert a.ws.prompt == PROMPT and [v.name for v in a.ws.variants] == ["identity"]
        assert a.ws.result is None and a.sessions.path == str(path)  # the path given, nothing from it


async def test_bad_sessions_opened_in_a_running_app_change_nothing(tmp_path):
    a = app(lens_specs=["identity"], marks=["blue"])
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await run_and_wait(pilot, "3")
        def state():
            return (a.ws.prompt, set(a.ws.marks), list(a.ws.variants), a.ws.result,
                    a.main.query_one("#max-tokens", Input).value)

        before = state()
        for i, case in enumerate(BAD_SESSIONS):
            path = tmp_path / f"bad{i}.json"
            path.write_text(BAD_SESSIONS[case], errors="surrogatepass")
            await pilot.press("ctrl+o")
            a.screen.query_one(Input).value = str(path)
            await pilot.press("enter")
            await _assert_untouched(a, pilot, path)
            assert state() == before, case
        assert column_names(a) == ["baseline", "identity"]


async def test_unreadable_session(tmp_path, monkeypatch):
    path = tmp_path / "locked.json"
    path.write_text(json.dumps(_session()))
    for method in ("read_text", "read_bytes"):  # root reads chmod 000 files: refuse as the OS would
        def refuse(self, *args, _read=getattr(pathlib.Path, method), **kwargs):  # noqa: B008 (bound now)
            if self == path:
                raise PermissionError(13, "Permission denied", str(self))
            return _read(self, *args, **kwargs)

        monkeypatch.setattr(pathlib.Path, method, refuse)
    a = app(session=str(path))
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await _assert_untouched(a, pilot, path)
        assert any("Permission denied" in m for m in messages(a))
        assert a.ws.prompt == PROMPT


async def test_any_loader_error_keeps_the_app(tmp_path, monkeypatch):
    """Whatever storage/session.py raises (not only BadInput), the app says so in one line and goes on."""
    from lenscope.storage import session as sessions

    def broken(path):
        raise RuntimeError("loader bug\nsecond line")

    monkeypatch.setattr(sessions, "load", broken)
    path = tmp_path / "s.json"
    path.write_text("{}")
    a = app(session=str(path))
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await _assert_untouched(a, pilot, path)
        assert f"session '{path}': RuntimeError: loader bug second line" in messages(a)
