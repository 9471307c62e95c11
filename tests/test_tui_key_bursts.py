"""Keys as a terminal delivers a paste or `tmux send-keys`: all read before any is handled.

`pilot.press` waits for the app to settle between keys, so it never shows what a burst does:
here every key is queued at once, as the driver queues what one read of the terminal gives.
"""

from textual import events
from textual.keys import _character_to_key
from textual.widgets import Input, TextArea
from tui_helpers import app, open_form, ready

from lenscope.tui.compose.compose_pane import ComposePane
from lenscope.tui.compose.variant_list import VariantList

NAMED = {"tab", "shift+tab", "enter", "ctrl+s", "ctrl+r"}


async def burst(pilot, *keys: str) -> None:
    """Queue every key (text, or a key name in NAMED), then settle."""
    for key in keys:
        for one in ([key] if key in NAMED else list(key)):
            if len(one) == 1:
                name = one if one.isalnum() else _character_to_key(one)
                event = events.Key(name, one)
            else:
                event = events.Key(one, {"tab": "\t", "enter": "\r"}.get(one))
            pilot.app._driver.send_message(event)
    await pilot.pause(0.3)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()




async def test_a_burst_into_the_lens_form_fills_each_field_and_applies_all_of_it():
    a = app(lens_specs=[])
    async with a.run_test(size=(100, 40)) as pilot:
        await ready(pilot)
        await open_form(pilot, "emphasis")
        # name, strength, layers: tab between fields (a field focused again is selected, so
        # typing replaces it), ctrl+s (a priority key) right behind the text
        await burst(pilot, "mine", "tab", "1.5", "tab", "0|1", "shift+tab", "2", "ctrl+s")
        assert a.screen is a.main, "the form applied"
        [variant] = a.ws.variants
        assert variant.name == "mine"
        assert variant.lenses[0].strength == 2 and variant.lenses[0].layers == (0, 1)


async def test_a_burst_into_the_spec_editor_and_a_path_keeps_every_character(tmp_path):
    a = app(lens_specs=[])
    async with a.run_test(size=(100, 40)) as pilot:
        await ready(pilot)
        await pilot.press("f2")
        a.main.query_one(VariantList).focus()
        await pilot.press("t")  # a new variant as a spec
        await pilot.pause()
        await burst(pilot, "emphasis:strength=3", "tab", "strong", "enter")
        [variant] = a.ws.variants
        assert variant.name == "strong" and variant.lenses[0].strength == 3
        path = tmp_path / "s.json"
        await pilot.press("ctrl+s")
        await pilot.pause()
        a.screen.query_one(Input).value = ""
        await burst(pilot, str(path), "enter")
        assert path.exists(), "the path kept its last character"


async def test_text_typed_right_before_ctrl_r_is_in_the_run():
    a = app(lens_specs=[], prompt="")
    async with a.run_test(size=(100, 40)) as pilot:
        await ready(pilot)
        a.main.query_one(ComposePane).query_one("#prompt", TextArea).focus()
        a.main.query_one("#max-tokens", Input).value = "2"
        await burst(pilot, "the key is blue. the key is", "ctrl+r")
        assert a.ws.result is not None
        assert a.ws.result.prompt.endswith("the key is blue. the key is")


async def test_a_paste_into_a_form_field_lands_there():
    a = app(lens_specs=[])
    async with a.run_test(size=(100, 40)) as pilot:
        await ready(pilot)
        await open_form(pilot, "emphasis")
        await burst(pilot, "tab", "tab")
        pilot.app._driver.send_message(events.Paste("0|1\nrest of a pasted block"))
        await burst(pilot, "ctrl+s")
        [variant] = a.ws.variants
        assert variant.lenses[0].layers == (0, 1)
