"""What the Pilot tests share: the app on a known prompt, waiting for it to be ready, a run,
and a lens form opened as a person opens it."""

from __future__ import annotations

from textual.widgets import Input, OptionList

from lenscope.tui.app import LenscopeApp
from lenscope.tui.compose.variant_list import VariantList

PROMPT = "the key is blue. tom went to the park. question: what color is the key? answer: the key is"


def app(**kw) -> LenscopeApp:
    return LenscopeApp(prompt=kw.pop("prompt", PROMPT), show_speed=False, **kw)


async def ready(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    assert pilot.app.engine is not None


def messages(a) -> list[str]:
    return [n.message for n in a._notifications]


async def run_and_wait(pilot, max_tokens: str | None = None) -> None:
    """ctrl+r (after setting max tokens, when given), then until every worker is done."""
    if max_tokens is not None:
        pilot.app.main.query_one("#max-tokens", Input).value = max_tokens
    await pilot.press("ctrl+r")
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def open_form(pilot, kind: str) -> None:
    """f2, the variant list, a, pick `kind`: its lens form is open, as a person opens it."""
    a = pilot.app
    await pilot.press("f2")
    a.main.query_one(VariantList).focus()
    await pilot.press("a")
    picker = a.screen.query_one(OptionList)
    picker.highlighted = [o.id for o in picker._options].index(kind)
    await pilot.press("enter")
    await pilot.pause()
