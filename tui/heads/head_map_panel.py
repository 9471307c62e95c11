"""The head map tab: a layers x heads grid for one row at one step.

Modes: each head's share of attention on the marks, its entropy, or a head-role score
(previous-token, induction, sink; measured once per model on request). `d` shows the row
minus the baseline; enter opens the cell's layer and head in the heatmap. Cells flagged
`•` are the heads an emphasis lens picked with `auto_heads`; in role modes, flagged cells
have the role.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from textual.app import ComposeResult
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from lenscope.core.capture import RowCapture
from lenscope.core.results import RunResult
from lenscope.tui.keys import Key, bindings, hint
from lenscope.tui.markup import safe
from lenscope.tui.widgets.panel import Panel
from lenscope.views.attention import head_entropy, head_shares
from lenscope.views.head_map import HeadMap
from lenscope.views.head_roles import ROLES, THRESHOLD, HeadRoles

MODES = ("marks", "entropy", *ROLES)


class HeadMapView(Widget):
    DEFAULT_CSS = "HeadMapView { height: 1fr; }"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.map: HeadMap | None = None
        self.empty = ""

    def render(self):
        return self.map if self.map is not None else safe("$text", text=self.empty)


class HeadMapPanel(Panel):
    MODES = MODES
    DEFAULT_CSS = """
    HeadMapPanel { height: 1fr; }
    HeadMapPanel #headmap-header { height: 1; background: $boost; padding: 0 1; }
    """
    KEYS = [
        Key("up", "move(-1, 0)", "move the cursor: layers up / down, heads left / right"),
        Key("down", "move(1, 0)", "move the cursor: layers up / down, heads left / right"),
        Key("left", "move(0, -1)", "move the cursor: layers up / down, heads left / right"),
        Key("right", "move(0, 1)", "move the cursor: layers up / down, heads left / right"),
        Key("comma", "step(-1)", "step - / +: the token whose attention is shown", "step"),
        Key("full_stop", "step(1)", "step - / +: the token whose attention is shown"),
        Key("r", "row(1)", "next row", "row"),
        Key("m", "mode", "mode: share on the marks / entropy / previous-token / induction / sink heads", "mode"),
        Key("d", "diff", "the row minus the baseline", "minus baseline"),
        Key("enter", "open", "open this layer and head in the heatmap", "open in heatmap"),
    ]
    BINDINGS = bindings(KEYS)

    @dataclass
    class OpenHead(Message):
        """Show this row, layer and head in the heatmap tab."""

        row: int
        layer: int
        head: int

    @dataclass
    class RolesWanted(Message):
        """Head roles are not measured yet: the app measures them (once per model)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.result: RunResult | None = None
        self.captures: dict[int, RowCapture] = {}
        self.flags: dict[int, dict[tuple[int, int], str]] = {}  # row -> auto_heads picks
        self.roles: HeadRoles | None = None
        self.row, self.step, self.mode, self.diff = 0, 0, "marks", False
        self.cursor = (0, 0)
        self.roles_asked = False

    def compose(self) -> ComposeResult:
        yield Static("", id="headmap-header")
        yield HeadMapView()

    def set_data(self, result: RunResult | None, captures: dict[int, RowCapture],
                 flags: dict[int, dict[tuple[int, int], str]] | None = None) -> None:
        self.result, self.captures, self.flags = result, captures, flags or {}
        if result is not None:
            self.row = min(self.row, len(result.rows) - 1)
        self.redraw()

    def set_roles(self, roles: HeadRoles | None) -> None:
        self.roles = roles
        self.redraw()

    def _query(self, cap: RowCapture) -> int:
        """The token whose attention is shown: step 0 is the last prompt token (it chose the
        first output token), step s the s-th output token."""
        last = len(cap.ids) - 1
        self.step = max(0, min(self.step, last - (cap.prompt_len - 1)))
        return cap.prompt_len - 1 + self.step

    def values(self) -> tuple[np.ndarray | None, str]:
        """The grid shown now and what it is, or None and why not."""
        cap = self.captures.get(self.row)
        if self.result is None or cap is None:
            return None, self.app.tabs.empty_note("no capture yet: run a comparison (ctrl+r); the head map reads "
                                                   "its attention")
        if self.mode in ROLES:
            if self.roles is None:
                return None, "measuring head roles on a repeated random sequence…"
            return self.roles.scores[self.mode], f"{self.mode}-head score (threshold {THRESHOLD})"
        q = self._query(cap)
        marks = self.result.marked_token_indices
        if self.mode == "marks" and not marks:
            return None, "nothing is marked: mark prompt tokens (space in compose) to see each head's share on them"

        def grid(c: RowCapture) -> np.ndarray:
            return head_shares(c.attention, marks, q) if self.mode == "marks" else head_entropy(c.attention, q)

        what = "share of attention on the marks" if self.mode == "marks" else "attention entropy (nats)"
        base = self.captures.get(0)
        if self.diff and self.row and base is not None:
            return grid(cap) - grid(base), f"{what}, row minus baseline"
        return grid(cap), what

    def redraw(self) -> None:
        header = self.query_one("#headmap-header", Static)
        view = self.query_one(HeadMapView)
        values, what = self.values()
        if self.mode in ROLES and self.roles is None and self.captures and not self.roles_asked:
            self.roles_asked = True
            self.post_message(self.RolesWanted())
        if values is None:
            view.map, view.empty = None, what
            header.update(safe("head map · $mode   [dim]$keys[/]", mode=self.mode, keys=hint(self.KEYS)))
            view.refresh()
            return
        layers, heads = values.shape
        self.cursor = (min(self.cursor[0], layers - 1), min(self.cursor[1], heads - 1))
        if self.mode in ROLES:
            flags = {cell: self.mode[0].upper() for cell in self.roles.heads(self.mode)}
        else:
            flags = self.flags.get(self.row, {})
        diverging = self.diff and self.row > 0 and self.mode not in ROLES
        cap = self.captures[self.row]
        name = self.result.rows[self.row].name
        layer, head = self.cursor
        step = "" if self.mode in ROLES else f" · step {self.step} (query {cap.tokens[self._query(cap)]!r})"
        view.map = HeadMap(values, diverging=diverging, cursor=self.cursor, flags=flags,
                           title=f"{what}: L{layer} H{head} = {values[layer, head]:.3f}")
        header.update(safe("row [b]$row: $name[/]$step · [b]$mode[/]$diff  [dim]$keys[/]", row=self.row, name=name,
                           step=step, mode=self.mode, diff=" · minus baseline" if diverging else "",
                           keys=hint(self.KEYS)))
        view.refresh()

    def action_move(self, dl: int, dh: int) -> None:
        values, _ = self.values()
        if values is not None:
            layers, heads = values.shape
            self.cursor = ((self.cursor[0] + dl) % layers, (self.cursor[1] + dh) % heads)
        self.redraw()

    def action_step(self, delta: int) -> None:
        self.step = max(0, self.step + delta)
        self.redraw()



    def action_diff(self) -> None:
        self.diff = not self.diff
        self.redraw()

    def action_open(self) -> None:
        if self.captures.get(self.row) is not None:
            self.post_message(self.OpenHead(self.row, *self.cursor))
