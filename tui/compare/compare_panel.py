"""Baseline and lens rows side by side, streaming; a step cursor shows alternatives."""

from __future__ import annotations

from collections.abc import Callable

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import HorizontalScroll, Vertical, VerticalScroll
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from lenscope.core.results import RunResult
from lenscope.tui.compose.token_chips import chip_text
from lenscope.tui.keys import Key, bindings, hint
from lenscope.tui.widgets.attention_text_view import SOURCES, AttentionTextView

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
    speed = "" if steps_per_s is None else f" · {steps_per_s:.1f}/s"
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
    # no id: columns are reused and removed asynchronously, an id could collide with a new one
    DEFAULT_CSS = """
    RowColumn { width: 1fr; border: round $panel-lighten-2; padding: 0 1; border-title-color: $text; }
    RowColumn.-focused { border: round $accent; border-title-style: bold; }
    RowColumn .row-status { color: $text-muted; height: auto; }
    RowColumn VerticalScroll { height: 1fr; }
    """

    def __init__(self, index: int, name: str) -> None:
        super().__init__()
        self.index = index
        self.rename(name)
        self.status = Static("", classes="row-status")
        self.body = Static("", classes="row-text")

    def compose(self) -> ComposeResult:
        yield self.status
        with VerticalScroll():
            yield self.body

    def rename(self, name: str) -> None:
        self.row_name = name
        self.border_title = Text(name)  # Text: a name is never read as markup

    def update(self, text: Text, status: str) -> None:
        self.body.update(text)
        self.status.update(status)


MIN_COLUMN_WIDTH = 26  # below this a column shows too few characters per line to read


def columns_on_screen(n_rows: int, width: int) -> int:
    """How many columns fit side by side (at least one); the rest scroll horizontally."""
    return max(1, min(n_rows, width // MIN_COLUMN_WIDTH))


class ComparePanel(Widget, can_focus=True):
    """Columns for every row; left/right move the step cursor, up/down the focused row."""

    DEFAULT_CSS = """
    ComparePanel { height: 1fr; }
    ComparePanel #compare-info { height: 1; padding: 0 1; color: $text-muted; }
    ComparePanel HorizontalScroll { height: 1fr; }
    ComparePanel #alternatives { height: auto; max-height: 8; border-top: solid $panel; padding: 0 1; }
    """
    KEYS = [
        Key("left", "step(-1)", "step through the tokens: top alternatives for the row and the baseline below"),
        Key("right", "step(1)", "step through the tokens: top alternatives for the row and the baseline below"),
        Key("up", "row(-1)", "focus the previous / next row (columns scroll)"),
        Key("down", "row(1)", "focus the previous / next row (columns scroll)"),
        Key("home", "step_to(0)", "first / last token"),
        Key("end", "step_to(-1)", "first / last token"),
        Key("a", "attention_text", "attention on the text: colour it by the cursor token's attention",
            "attention on text"),
        Key("g", "attention_source", "attention source: mean of layers and heads / one layer / one head / rollout"),
        Key("d", "attention_diff", "attention on the text minus the baseline's"),
        Key("[", "attention_layer(-1)", "attention layer - / +"),
        Key("]", "attention_layer(1)", "attention layer - / +"),
        Key("{", "attention_head(-1)", "attention head - / +"),
        Key("}", "attention_head(1)", "attention head - / +"),
    ]
    BINDINGS = bindings(KEYS)

    cursor: reactive[int] = reactive(0)
    focused_row: reactive[int] = reactive(0)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.result: RunResult | None = None
        self.running = False
        self.stale = False  # the inputs changed since this result was made
        self.steps_per_s: float | None = None
        self.raw_token: Callable[[int], str | None] = lambda token_id: None  # the app knows the tokenizer
        self._columns: list[RowColumn] = []  # the live columns, in row order (removed ones are not here)

    def compose(self) -> ComposeResult:
        yield Static("", id="compare-info")
        yield HorizontalScroll(id="columns")
        yield Static("", id="alternatives")
        yield AttentionTextView(id="attention-text")

    def on_mount(self) -> None:
        pane = self.query_one(AttentionTextView)
        pane.display = False
        pane.keys = hint([k for k in self.KEYS if k.action.startswith("attention")])
        self.watch(self.query_one("#columns", HorizontalScroll), "scroll_x", self._show_info, init=False)

    def set_result(self, result: RunResult | None, running: bool = False, steps_per_s: float | None = None) -> None:
        """Show a (possibly growing) result; columns are added or removed only when the rows change."""
        self.result, self.running, self.steps_per_s = result, running, steps_per_s
        names = [r.name for r in result.rows] if result else []
        if [c.row_name for c in self._columns] != names:
            self._sync_columns(names)
        if result is not None:
            self.focused_row = min(self.focused_row, len(result.rows) - 1)
        self.redraw()

    def _sync_columns(self, names: list[str]) -> None:
        # reuse the columns there are, rename them, then drop or add the difference
        for col in self._columns[len(names):]:
            col.remove()
        del self._columns[len(names):]
        for col, name in zip(self._columns, names):
            col.rename(name)
        new = [RowColumn(i, name) for i, name in enumerate(names) if i >= len(self._columns)]
        if new:
            self.query_one("#columns", HorizontalScroll).mount_all(new)
            self._columns += new
        self._size_columns()

    def set_stale(self, stale: bool) -> None:
        self.stale = stale
        self._show_info()

    def on_resize(self) -> None:
        self._size_columns()

    def _size_columns(self) -> None:
        """Equal widths that fill the view exactly with as many columns as are readable."""
        if not self._columns:
            return self._show_info()
        width = self.size.width
        shown = columns_on_screen(len(self._columns), width)
        every = shown == len(self._columns)
        for col in self._columns:
            col.styles.width = "1fr" if every else width // shown
        # the view is as wide as the columns it shows whole: no cut border of the next one peeks in
        self.query_one("#columns", HorizontalScroll).styles.width = "1fr" if every else width // shown * shown
        self._show_info()

    def visible_rows(self) -> tuple[int, int]:
        """First and last row (0-based) whose column is on screen."""
        n = len(self._columns)
        shown = columns_on_screen(n, self.size.width)
        if n <= shown:
            return 0, n - 1
        col_width = max(1, self.size.width // shown)
        first = min(n - shown, round(self.query_one("#columns", HorizontalScroll).scroll_x / col_width))
        return first, first + shown - 1

    def _show_info(self) -> None:
        text = Text()
        n = len(self._columns)
        if n:
            first, last = self.visible_rows()
            text.append(f"rows {first + 1}-{last + 1} of {n}" if last > first else f"row {first + 1} of {n}",
                        style="bold" if last + 1 < n or first > 0 else "")
            if last + 1 < n or first > 0:
                text.append(" · ↑↓ scroll to the others")
        if self.stale:
            text.append("  stale: inputs changed since this run · ctrl+r runs again", style="bold yellow")
        self.query_one("#compare-info", Static).update(text)

    def redraw(self) -> None:
        if self.result is None:
            self.query_one("#alternatives", Static).update(
                Text("ctrl+r runs the comparison: the baseline and each lens variant side by side", style="dim"))
            return
        longest = max((len(r.tokens) for r in self.result.rows), default=0)
        self.cursor = min(self.cursor, max(0, longest - 1))
        for col in self._columns:
            if col.index < len(self.result.rows):
                cursor = self.cursor if self.has_focus else None
                col.update(row_text(self.result, col.index, cursor),
                           row_status(self.result, col.index, self.running, self.steps_per_s))
                col.set_class(col.index == self.focused_row and self.has_focus, "-focused")
        self.query_one("#alternatives", Static).update(self.alternatives_text())
        pane = self.query_one(AttentionTextView)
        if pane.display:
            pane.show(self.result, self.focused_row, self.cursor)

    def alternatives_text(self) -> Text:
        res, t, r = self.result, self.cursor, self.focused_row
        text = Text()
        if res is None or not any(len(row.top) > t for row in res.rows):
            return Text("no tokens yet", style="dim")
        for idx, label in ((r, res.rows[r].name), (0, "baseline")) if r else ((0, "baseline"),):
            row = res.rows[idx]
            text.append(f"{label if len(label) <= 24 else label[:23] + '…'} @{t}: ", style="bold")
            if t < len(row.top):
                for alt in row.top[t]:
                    text.append(f"{chip_text(alt.token, self.raw_token(alt.token_id))} ", style="cyan")
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
        if self.focused_row < len(self._columns):
            self.query_one("#columns", HorizontalScroll).scroll_to_widget(self._columns[self.focused_row],
                                                                          animate=False)

    def on_focus(self) -> None:
        self.redraw()

    def on_blur(self) -> None:
        self.redraw()

    def action_step(self, delta: int) -> None:
        self.cursor = max(0, self.cursor + delta)

    def action_step_to(self, index: int) -> None:
        longest = max((len(r.tokens) for r in self.result.rows), default=1) if self.result else 1
        self.cursor = index % max(1, longest)

    # -- attention on the text -------------------------------------------------------------
    def set_captures(self, captures, inherited: dict[int, list[int]] | None = None) -> None:
        self.query_one(AttentionTextView).set_captures(captures, inherited)
        self.redraw()

    def action_attention_text(self) -> None:
        pane = self.query_one(AttentionTextView)
        pane.display = not pane.display
        self.redraw()

    def _attention(self, change) -> None:
        pane = self.query_one(AttentionTextView)
        pane.display = True
        change(pane)
        self.redraw()

    def action_attention_source(self) -> None:
        self._attention(lambda p: setattr(p, "source", SOURCES[(SOURCES.index(p.source) + 1) % len(SOURCES)]))

    def action_attention_diff(self) -> None:
        self._attention(lambda p: setattr(p, "diff", not p.diff))

    def action_attention_layer(self, delta: int) -> None:
        self._attention(lambda p: setattr(p, "attn_layer", p.attn_layer + delta))

    def action_attention_head(self, delta: int) -> None:
        self._attention(lambda p: setattr(p, "head", p.head + delta))

    def action_row(self, delta: int) -> None:
        if self.result:
            self.focused_row = (self.focused_row + delta) % len(self.result.rows)
