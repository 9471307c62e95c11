"""SVG snapshots of the main states at 80x24 and 120x40 (pytest-textual-snapshot).

After an intended UI change: pytest tests/test_snapshots.py --snapshot-update
"""

import pytest
from textual.widgets import Input

from lenscope.tui.app import LenscopeApp

PROMPT = "the key is blue. tom went to the park. the sun was warm. question: what color is the key? answer: the key is"
SIZES = [(80, 24), (120, 40)]


def make_app():
    return LenscopeApp(prompt=PROMPT, marks=["blue"], lens_specs=["emphasis:strength=3", "steer:token=happy,strength=20"],
                       show_speed=False)


async def loaded(pilot):
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def ran(pilot):
    await loaded(pilot)
    pilot.app.main.query_one("#max-tokens", Input).value = "12"
    await pilot.press("ctrl+r")
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_compose(snap_compare, size):
    async def run_before(pilot):
        await loaded(pilot)
        # the variants (first one highlighted), not the prompt: its blinking cursor made this flaky
        pilot.app.main.query_one("#variants").focus()
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_compare_after_run(snap_compare, size):
    async def run_before(pilot):
        await ran(pilot)
        await pilot.press("right", "right", "down")

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_compare_six_rows(snap_compare, size):
    """More rows than fit: narrower columns side by side, and which of them are on screen."""
    app = LenscopeApp(prompt=PROMPT, marks=["blue"], show_speed=False,
                      lens_specs=["identity", "emphasis:strength=2", "emphasis:strength=4",
                                  "steer:token=happy,strength=20", "decay"])

    async def run_before(pilot):
        await ran(pilot)
        await pilot.press("down", "down", "down", "down")

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_heatmap(snap_compare, size):
    async def run_before(pilot):
        await ran(pilot)
        await pilot.press("f4", "]", "r")

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


def test_lens_form(snap_compare):
    async def run_before(pilot):
        await loaded(pilot)
        pilot.app.main.query_one("#variants").focus()
        await pilot.press("a", "down", "enter")
        for box in pilot.app.screen.query(Input):  # the first field has focus: no blinking in snapshots
            box.cursor_blink = False
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)


def test_compose_chat(snap_compare):
    """Chat mode: the template's tokens dimmed around the user's, a system message, the header."""
    app = LenscopeApp(prompt="what color is the key? the key is blue.", marks=["blue"], chat=True,
                      system="answer in one word", show_speed=False)

    async def run_before(pilot):
        await loaded(pilot)
        pilot.app.main.query_one("#variants").focus()
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_attention_on_text(snap_compare, size):
    async def run_before(pilot):
        await ran(pilot)
        await pilot.press("a", "down", "right", "right", "g")  # emphasis row, token 2, one layer

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_head_map(snap_compare, size):
    async def run_before(pilot):
        await ran(pilot)
        await pilot.press("f5", "r", "d", "down", "right")  # emphasis row minus the baseline

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_logit_lens(snap_compare, size):
    async def run_before(pilot):
        await ran(pilot)
        await pilot.press("f6")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("p", "right")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_geometry(snap_compare, size):
    async def run_before(pilot):
        await ran(pilot)
        await pilot.press("f7", "r")  # the steered row

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_conversation(snap_compare, size):
    """Five turns with 'blue' marked in turn 1 and 'key' tracked: the fade chart and the transcript."""
    from lenscope.chat import conversation as convs

    app = LenscopeApp(prompt="", lens_specs=["emphasis:strength=3"], show_speed=False)

    async def run_before(pilot):
        await loaded(pilot)
        a = pilot.app
        conv = convs.Conversation.start()
        conv.concepts = ["key"]
        for k, user in enumerate(["the key is blue.", "what colour is it?", "and the door?", "where is tom?",
                                  "say the colour of the key"]):
            convs.run_turn(a.engine, conv, user, a.ws.variants, max_tokens=6, temperature=0.0, seed=0,
                           mark=["blue"] if k == 0 else ())
        a.ws.parked_conversation = conv
        await pilot.press("ctrl+n", "f9")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)
