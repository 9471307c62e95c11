"""What the Pilot tests share: the app on a known prompt, and waiting for it to be ready."""

from __future__ import annotations

from lenscope.screens.app import LenscopeApp

PROMPT = "the key is blue. tom went to the park. question: what color is the key? answer: the key is"


def app(**kw) -> LenscopeApp:
    return LenscopeApp(prompt=kw.pop("prompt", PROMPT), show_speed=False, **kw)


async def ready(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    assert pilot.app.engine is not None


def messages(a) -> list[str]:
    return [n.message for n in a._notifications]
