"""How long the TUI makes a person wait, measured by driving it with Textual's Pilot.

Not a test (timings belong in benchmarks): run it by hand, on a quiet machine,

    python tests/tui_timing.py --model smollm2 [--rows 3] [--repeats 3] [--no-tree]

It opens the app at 120x40 on a ~60-token prompt with a mark and `rows - 1` emphasis
rows, then measures, best of `repeats`: ctrl+r -> the first token on screen; the run's end
-> its capture (attention + residual stream) ready for the views; a logit-lens position
decoded (the view opened, then one cursor move); and the default tree grown.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from lenscope.tui.app import LenscopeApp
from lenscope.tui.runner import CaptureReady, RunProgress, ViewReady

PROMPT = ("Mira keeps her spare key under the blue flowerpot by the back door. On Monday she took the bus "
          "to the market, bought apples, bread and cheese, talked with the baker about the weather, and then "
          "walked home slowly along the river. Where is the spare key? The spare key is")


class TimedApp(LenscopeApp):
    """The app, noting when the messages a person waits for arrive."""

    CSS_PATH = str(Path(sys.modules[LenscopeApp.__module__].__file__).parent / LenscopeApp.CSS_PATH)  # not tests/

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.seen: dict[str, float] = {}

    def on_run_progress(self, message: RunProgress) -> None:
        super().on_run_progress(message)
        if any(r.token_ids for r in message.result.rows):
            self.seen.setdefault("first_token", time.perf_counter())
        if message.done:
            self.seen.setdefault("run_done", time.perf_counter())

    def on_capture_ready(self, message: CaptureReady) -> None:
        super().on_capture_ready(message)
        self.seen.setdefault("capture", time.perf_counter())

    def on_view_ready(self, message: ViewReady) -> None:
        super().on_view_ready(message)
        self.seen.setdefault("view", time.perf_counter())


async def _until(app: TimedApp, key: str, timeout: float = 300.0) -> float:
    start = time.perf_counter()
    while key not in app.seen:
        if time.perf_counter() - start > timeout:
            raise TimeoutError(key)
        await asyncio.sleep(0.005)
    return app.seen[key]


async def _idle(app: TimedApp) -> None:
    """Until no job holds the model (a run's capture, a view's decoding)."""
    while app.runner.busy is not None or app.runner.pending:
        await asyncio.sleep(0.01)


async def measure(model: str | None, rows: int, repeats: int, tree: bool = True) -> dict[str, float]:
    best: dict[str, float] = {}
    lenses = [f"emphasis:strength={2 * (i + 1)}" for i in range(rows - 1)]
    app = TimedApp(model=model, prompt=PROMPT, marks=["blue flowerpot"], lens_specs=lenses, show_speed=False)
    async with app.run_test(size=(120, 40)) as pilot:
        while app.engine is None:
            await asyncio.sleep(0.05)
        for _ in range(repeats):
            await _idle(app)
            app.action_tab("compare")
            app.seen.clear()
            start = time.perf_counter()
            await pilot.press("ctrl+r")
            first = await _until(app, "first_token") - start
            done = await _until(app, "run_done")
            capture = await _until(app, "capture") - done
            await _idle(app)
            app.seen.pop("view", None)
            start = time.perf_counter()
            app.action_tab("logit-lens")
            await pilot.pause()
            view = await _until(app, "view") - start
            for name, value in (("first_token_s", first), ("capture_after_run_s", capture),
                                ("logit_lens_view_s", view)):
                best[name] = min(best.get(name, value), value)
        if not tree:
            return best
        await _idle(app)
        app.seen.pop("view", None)
        start = time.perf_counter()
        app.action_tab("tree")
        await pilot.pause()
        await pilot.press("g")
        best["tree_s"] = await _until(app, "view", timeout=600) - start
    return best


def main() -> None:
    from lenscope.models import blas

    env = blas.preload_env()  # as the lenscope command runs: on the machine's OpenBLAS
    if env is not None:
        os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]], env)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--rows", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-tree", action="store_true", help="leave out the tree (minutes on a 1B model)")
    args = parser.parse_args()
    for name, value in asyncio.run(measure(args.model, args.rows, args.repeats, not args.no_tree)).items():
        print(f"{name:22s} {value:7.2f}")
    sys.stdout.flush()
    os._exit(0)  # MLX used from worker threads can abort in its exit-time destructors (ml-explore/mlx#3126)


if __name__ == "__main__":
    main()
