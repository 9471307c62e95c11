"""The TUI driven as a person would, with Textual's Pilot."""

import json

from textual.widgets import Input, TextArea
from tui_helpers import PROMPT, app, ready, run_and_wait

from lenscope.tui.app import LenscopeApp
from lenscope.tui.compare.compare_panel import ComparePanel, RowColumn
from lenscope.tui.compose.token_chips import TokenChips, chip_text
from lenscope.tui.dialogs.lens_dialogs import LensForm, LensPicker
from lenscope.tui.heatmap.heatmap_panel import HeatmapPanel


async def test_mark_with_keys_and_click():
    a = app()
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        chips = a.main.query_one(TokenChips)
        chips.focus()
        await pilot.press("right", "right", "right", "space")
        assert a.ws.marks == {3} and "blue" in a.ws.prompt_tokens[3]
        await pilot.press("space")
        assert a.ws.marks == set()
        # click on the 6th token: x offset = sum of the shown widths of the tokens before it
        x = sum(len(chip_text(t)) for t in a.ws.prompt_tokens[:5]) + 1
        await pilot.click(TokenChips, offset=(x + 1, 0))
        assert a.ws.marks == {5}
        await pilot.press("c")
        assert a.ws.marks == set()


async def test_mark_selection_and_marks_survive_edits():
    a = app()
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        area = a.main.query_one("#prompt", TextArea)
        start = PROMPT.index("blue")
        from textual.widgets.text_area import Selection

        area.selection = Selection((0, start), (0, start + 4))
        await pilot.press("ctrl+k")
        blue = {i for i, t in enumerate(a.ws.prompt_tokens) if "blue" in t}
        assert a.ws.marks == blue
        area.insert("once more, ", (0, 0))
        await pilot.pause()
        assert {a.ws.prompt_tokens[i] for i in a.ws.marks} == {" blue"}
        assert min(a.ws.marks) > min(blue)


async def test_add_edit_validate_and_remove_lens():
    a = app()
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        a.main.query_one("#variants").focus()
        await pilot.press("a")
        assert isinstance(a.screen, LensPicker)
        await pilot.press("down", "enter")  # identity is first, emphasis second
        assert isinstance(a.screen, LensForm) and a.screen.kind == "emphasis"
        box = a.screen.query_one("#p-strength", Input)
        box.value = "99"
        await pilot.pause()
        assert box.has_class("-invalid") and "out of range" in str(a.screen.query_one("#error").render())
        await pilot.press("ctrl+s")
        assert isinstance(a.screen, LensForm)  # invalid: stays open
        box.value = "5"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert [v.name for v in a.ws.variants] == ["emphasis:strength=5"]
        assert a.ws.variants[0].lenses[0].strength == 5.0
        await pilot.press("e")
        assert isinstance(a.screen, LensForm) and a.screen.query_one("#p-strength", Input).value == "5"
        a.screen.query_one("#p-strength", Input).value = "2"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert a.ws.variants[0].lenses[0].strength == 2.0
        await pilot.press("t")  # spec editor: add a second variant as a stack
        a.screen.query_one("#spec", Input).value = "identity+emphasis:strength=1"
        await pilot.press("enter")
        await pilot.pause()
        assert len(a.ws.variants[0].lenses) == 2
        await pilot.press("x")
        await pilot.pause()
        assert a.ws.variants == []


async def test_run_streams_rows_and_alternatives():
    a = app(lens_specs=["identity", "emphasis:strength=4"], marks=["blue"])
    async with a.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        assert a.ws.marks
        await run_and_wait(pilot)
        res = a.ws.result
        assert [r.name for r in res.rows] == ["baseline", "identity", "emphasis:strength=4"]
        assert res.rows[1].token_ids == res.rows[0].token_ids
        assert res.rows[2].attention_to_marks[0] > res.rows[0].attention_to_marks[0]
        view = a.main.query_one(ComparePanel)
        assert len(view.query(RowColumn)) == 3
        assert view.has_focus
        await pilot.press("right", "down", "down")
        alts = view.alternatives_text().plain
        assert "baseline @1" in alts and "emphasis" in alts
        assert set(a.ws.captures) == {0, 1, 2}


async def test_cancel_keeps_partial_output():
    a = app()
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        a.engine.eos_ids = set()  # never stops by itself
        a.main.query_one("#max-tokens", Input).value = "4000"
        await pilot.press("ctrl+r")
        await pilot.pause(0.3)
        await pilot.press("escape")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        assert a.ws.result.cancelled and 0 < len(a.ws.result.rows[0].token_ids) < 4000
        assert not a.running
        assert "cancelled" in str(a.main.query_one("#status").render())


async def test_heatmap_navigation():
    a = app(lens_specs=["emphasis:strength=3"], marks=["key"])
    async with a.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        a.main.query_one("#max-tokens", Input).value = "6"
        await run_and_wait(pilot)
        await pilot.press("f4")
        panel = a.main.query_one(HeatmapPanel)
        assert panel.has_focus
        n_layers = a.engine.n_layers
        await pilot.press("]")
        assert panel.layer_index == 1
        await pilot.press("[", "[")
        assert panel.layer_index % n_layers == n_layers - 1
        await pilot.press("}")
        assert panel.head_index == 0
        await pilot.press("{")
        assert panel.head_index == -1
        await pilot.press("r")
        assert panel.row == 1
        await pilot.press("m", "m")
        assert panel.mode == "difference"
        header = str(panel.query_one("#heatmap-header").render())
        assert "difference" in header and "emphasis" in header
        await pilot.press("z", "down", "down", "right")  # one query row / key column per key
        top = min(2, max(0, panel._shown_size()[0] - panel._page_rows()))  # rows that fit a page stay put
        assert not panel.fit and panel.origin == (top, 1)
        assert f"scroll @{top},1" in str(panel.query_one("#heatmap-header").render())
        await pilot.press("up")
        assert panel.origin == (max(0, top - 1), 1)


async def test_save_and_reopen_session(tmp_path):
    path = tmp_path / "s.json"
    a = app(lens_specs=["steer:token=happy,strength=8"], marks=["blue"])
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        a.main.query_one("#max-tokens", Input).value = "5"
        await run_and_wait(pilot)
        await pilot.press("ctrl+s")
        a.screen.query_one(Input).value = str(path)
        await pilot.press("enter")
        await pilot.pause()
    data = json.loads(path.read_text())
    assert data["prompt"] == PROMPT and data["variants"][0]["lens"][0]["kind"] == "steer"
    assert data["marks"] == sorted(a.ws.marks) and len(data["result"]["rows"]) == 2

    b = app(prompt="", session=str(path))
    async with b.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        assert b.ws.prompt == PROMPT
        assert b.ws.marks == set(data["marks"])
        assert [v.name for v in b.ws.variants] == [v.name for v in a.ws.variants]
        assert b.ws.result.rows[1].token_ids == a.ws.result.rows[1].token_ids
        assert len(b.main.query(RowColumn)) == 2


async def test_bad_inputs_notify_and_keep_running(tmp_path):
    corrupt = tmp_path / "bad.json"
    corrupt.write_text("{not json")
    a = app(session=str(corrupt), lens_specs=["warp:x=1"], marks=["zebra"])
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        messages = [n.message for n in a._notifications]
        assert any("not valid JSON" in m for m in messages)
        assert any("unknown lens kind 'warp'" in m for m in messages)
        assert any("'zebra': does not occur" in m for m in messages)
        assert corrupt.read_text() == "{not json"  # nothing saved is touched
        a.main.query_one("#temperature", Input).value = "-3"
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert any("temperature" in n.message for n in a._notifications)
        assert a.ws.result is None and a.is_running


async def test_bad_model_notifies():
    a = LenscopeApp(model="/no/such/model")
    async with a.run_test(size=(100, 30)) as pilot:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        assert a.engine is None
        assert any("no such folder" in n.message for n in a._notifications)
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert any("no model loaded" in n.message for n in a._notifications)


async def test_help_and_palette_list_actions():
    a = app()
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("f1")
        await pilot.pause()
        from lenscope.tui.dialogs.help import HelpScreen

        assert isinstance(a.screen, HelpScreen)
        await pilot.press("escape")
        actions = {action for _, action, _ in LenscopeApp.PALETTE}
        for needed in ("run", "cancel", "add_variant", "save_session", "open_session", "mark_selection"):
            assert needed in actions
