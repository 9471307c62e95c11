"""Baseline and lens rows side by side, streaming; a step cursor shows alternatives."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import HorizontalScroll, Vertical, VerticalScroll
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from app.results import RunResult
from screens.token_chips import chip_text

DIFF_STYLE = Style(color="black", bgcolor="magenta")
CURSOR_STYLE = Style(reverse=True, bold=True)


def row_status(result: RunResult, r: int, running: bool, steps_per_s: float | None) -> str:
    row = result.rows[r]
    if not row.finite:
        return "[red]NaN/inf: stopped[/]"
    if row.finished:
        state = "finished"
    elif result.cancelled:
        state = "[yellow]cancelled[/]"
    elif running:
        state = "[cyan]generating[/]"
    else:
        state = "done"
    div = "" if r == 0 or row.first_divergence is None else f" · differs @{row.first_divergence}"
    speed = "" if steps_per_s is None else f" {steps_per_s:.0f}/s"
    return f"{state} · {len(row.token_ids)} tok{speed}{div}"


def row_text(result: RunResult, r: int, cursor: int | None) -> Text:
    base = result.rows[0].token_ids
    row = result.rows[r]
    text = Text()
    for t, tok in enumerate(row.tokens):
        style = Style()
        if r > 0 and (t >= len(base) or base[t] != row.token_ids[t]):
            style = DIFF_STYLE
        if t == cursor:
            style = style + CURSOR_STYLE
        text.append(tok.replace("\n", "⏎\n"), style)
    return text


class RowColumn(Vertical):
    DEFAULT_CSS = """
    RowColumn { width: 1fr; min-width: 26; border: round $panel; padding: 0 1; }
    RowColumn.-focused { border: round $accent; }
    RowColumn .row-status { color: $text-muted; height: 1; }
    RowColumn VerticalScroll { height: 1fr; }
    """

    def __init__(self, index: int, name: str) -> None:
        super().__init__(id=f"row-{index}")
        self.index = index
        self.border_title = name
        self.status = Static("", classes="row-status")
        self.body = Static("", classes="row-text")

    def compose(self) -> ComposeResult:
        yield self.status
        with VerticalScroll():
            yield self.body

    def update(self, text: Text, status: str) -> None:
        self.body.update(text)
        self.status.update(status)


class ComparisonView(Widget, can_focus=True):
    """Columns for every row; left/right move the step cursor, up/down the focused row."""

    DEFAULT_CSS = """
    ComparisonView { height: 1fr; }
    ComparisonView HorizontalScroll { height: 1fr; }
    ComparisonView #alternatives { height: auto; max-height: 8; border-top: solid $panel; padding: 0 1; }
    """
    BINDINGS = [
        Binding("left", "step(-1)", "prev token", show=False),
        Binding("right", "step(1)", "next token", show=False),
        Binding("up", "row(-1)", "prev row", show=False),
        Binding("down", "row(1)", "next row", show=False),
        Binding("home", "step_to(0)", show=False),
        Binding("end", "step_to(-1)", show=False),
    ]

    cursor: reactive[int] = reactive(0)
    focused_row: reactive[int] = reactive(0)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.result: RunResult | None = None
        self.running = False
        self.steps_per_s: float | None = None

    def compose(self) -> ComposeResult:
        yield HorizontalScroll(id="columns")
        yield Static("", id="alternatives")

    def set_result(self, result: RunResult | None, running: bool = False, steps_per_s: float | None = None) -> None:
        """Show a (possibly growing) result; rebuilds columns only when the rows change."""
        self.result, self.running, self.steps_per_s = result, running, steps_per_s
        columns = self.query_one("#columns", HorizontalScroll)
        names = [r.name for r in result.rows] if result else []
        if [c.border_title for c in columns.query(RowColumn)] != names:
            columns.remove_children()
            columns.mount_all([RowColumn(i, n) for i, n in enumerate(names)])
            self.call_after_refresh(self.redraw)
        else:
            self.redraw()

    def redraw(self) -> None:
        if self.result is None:
            self.query_one("#alternatives", Static).update(
                Text("ctrl+r runs the comparison: the baseline and each lens variant side by side", style="dim"))
            return
        longest = max((len(r.tokens) for r in self.result.rows), default=0)
        self.cursor = min(self.cursor, max(0, longest - 1))
        for col in self.query(RowColumn):
            if col.index < len(self.result.rows):
                cursor = self.cursor if self.has_focus else None
                col.update(row_text(self.result, col.index, cursor),
                           row_status(self.result, col.index, self.running, self.steps_per_s))
                col.set_class(col.index == self.focused_row and self.has_focus, "-focused")
        self.query_one("#alternatives", Static).update(self.alternatives_text())

    def alternatives_text(self) -> Text:
        res, t, r = self.result, self.cursor, self.focused_row
        text = Text()
        if res is None or not any(len(row.top) > t for row in res.rows):
            return Text("no tokens yet", style="dim")
        for idx, label in ((r, res.rows[r].name), (0, "baseline")) if r else ((0, "baseline"),):
            row = res.rows[idx]
            text.append(f"{label[:18]} @{t}: ", style="bold")
            if t < len(row.top):
                for alt in row.top[t]:
                    text.append(f"{chip_text(alt.token)} ", style="cyan")
                    text.append(f"{alt.prob:.2f}  ", style="dim")
            else:
                text.append("(stopped)", style="dim")
            text.append("\n")
        text.rstrip()
        return text

    def watch_cursor(self) -> None:
        self.redraw()

    def watch_focused_row(self) -> None:
        self.redraw()
        for col in self.query(RowColumn):
            if col.index == self.focused_row:
                self.query_one("#columns", HorizontalScroll).scroll_to_widget(col, animate=False)

    def on_focus(self) -> None:
        self.redraw()

    def on_blur(self) -> None:
        self.redraw()

    def action_step(self, delta: int) -> None:
        self.cursor = max(0, self.cursor + delta)

    def action_step_to(self, index: int) -> None:
        longest = max((len(r.tokens) for r in self.result.rows), default=1) if self.result else 1
        self.cursor = index % max(1, longest)

    def action_row(self, delta: int) -> None:
        if self.result:
            self.focused_row = (self.focused_row + delta) % len(self.result.rows)
