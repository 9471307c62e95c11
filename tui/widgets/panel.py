"""What the view tabs share: the result on screen, the row shown and the mode, cycled the same way."""

from __future__ import annotations

from textual.containers import Vertical

from lenscope.core.results import RunResult


class Panel(Vertical, can_focus=True):
    """A view tab: `row` (0 = baseline) and `mode` (one of MODES) cycle with the same keys in every tab."""

    MODES: tuple[str, ...] = ()

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.result: RunResult | None = None
        self.row = 0
        self.mode = self.MODES[0] if self.MODES else ""

    def redraw(self) -> None:
        raise NotImplementedError

    def action_row(self, delta: int) -> None:
        if self.result:
            self.row = (self.row + delta) % len(self.result.rows)
        self.redraw()

    def action_mode(self) -> None:
        if self.MODES:
            self.mode = self.MODES[(self.MODES.index(self.mode) + 1) % len(self.MODES)]
        self.redraw()
