"""Soak: random keys into the TUI for a bounded time; nothing may raise.

LENSCOPE_SOAK_S sets the time (default 30 s); LENSCOPE_SOAK_SEED the key sequence.
"""

import os
import random
import time

from textual.widgets import Input

from lenscope.tui.app import LenscopeApp

KEYS = (
    # navigation and every binding of every widget and dialog, except the ones that quit
    ["tab", "shift+tab", "up", "down", "left", "right", "home", "end", "pageup", "pagedown", "enter", "space",
     "backspace", "delete", "escape", "f1", "f2", "f3", "f4", "ctrl+r", "ctrl+k", "ctrl+s", "ctrl+o",
     "ctrl+p",
     "ctrl+up", "ctrl+down", "shift+left", "shift+right", "a", "e", "t", "x", "l", "w", "c", "r", "m", "z",
     "[", "]", "{", "}", "ctrl+a", "ctrl+e", "ctrl+u", "ctrl+w"]
    + list("abcdefghijklmnopqrstuvwxyz0123456789.,:=|+-@ ")
    + ["left_square_bracket", "slash", "backslash", "quotation_mark"]
)
WEIGHTS = {"escape": 12, "f2": 4, "f3": 3, "f4": 3, "ctrl+r": 3, "tab": 5, "down": 6, "up": 4}


async def test_random_keys_never_crash(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # ctrl+s / w write session.json / lenses.toml here
    seconds = float(os.environ.get("LENSCOPE_SOAK_S", "30"))
    seed = int(os.environ.get("LENSCOPE_SOAK_SEED", "0"))
    rng = random.Random(seed)
    weights = [WEIGHTS.get(k, 1) for k in KEYS]
    a = LenscopeApp(prompt="the key is blue. question: what color is the key? answer: the key is",
                    lens_specs=["emphasis:strength=3", "identity"], marks=["blue"], show_speed=False)
    pressed, results = 0, set()
    async with a.run_test(size=(100, 30)) as pilot:
        await pilot.app.workers.wait_for_complete()
        a.main.query_one("#max-tokens", Input).value = "8"
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            keys = rng.choices(KEYS, weights, k=rng.randint(1, 6))
            await pilot.press(*keys)
            pressed += len(keys)
            assert a._exception is None, f"after {pressed} keys, last {keys}"
            results.add(id(a.ws.result))
            if rng.random() < 0.05:  # let a run finish now and then, so captures and heatmaps are exercised
                await pilot.app.workers.wait_for_complete()
        for _ in range(10):  # close whatever dialog is open, then stop any run
            if len(a.screen_stack) <= 2:
                break
            await pilot.press("escape")
        await pilot.press("escape")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        assert a._exception is None
        assert not a.running
    assert a.return_code in (None, 0)
    print(f"soak: {pressed} keys in {seconds:g} s (seed {seed}), {len(results) - 1} results, no exception")
