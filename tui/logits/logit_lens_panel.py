"""The logit lens tab: what the model would predict at each layer, for a window of
positions ending at the cursor, for one row; pinned tokens' probability across layers,
the row against the baseline, in a chart below.

Decoding needs the model, so the panel asks for it (`Wanted`) and the app answers with
`set_lens` from a worker; results are kept per (row, positions, pins).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import plotext as plt
from rich.text import Text
from textual.app import ComposeResult
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from lenscope.core.capture import RowCapture, hidden_label
from lenscope.core.results import RunResult
from lenscope.tui.keys import Key, bindings, hint
from lenscope.tui.markup import safe
from lenscope.tui.widgets.panel import Panel
from lenscope.views.logit_lens import LogitLens
from lenscope.views.logit_lens_table import LABEL, LogitLensTable

CELL = 8  # columns per position in the table
PIN_COLORS = ["cyan", "magenta", "green", "yellow", "red"]

LensKey = tuple[int, tuple[int, ...], tuple[int, ...]]  # row, positions, pinned token ids


class LensTableView(Widget):
    DEFAULT_CSS = "LensTableView { height: 1fr; }"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.table: LogitLensTable | None = None
        self.empty = ""

    def render(self):
        return self.table if self.table is not None else Text(self.empty, style="dim italic")


def pinned_chart(series: list[tuple[str, str, list[float], bool]], width: int, height: int) -> Text:
    """(label, colour, probability per layer, is baseline): baseline lines dotted."""
    plt.clear_figure()
    plt.plotsize(max(20, width), max(5, height))
    plt.theme("clear")
    for label, colour, values, baseline in series:
        plt.plot(list(range(len(values))), values, color=colour, marker="dot" if baseline else "braille",
                 label=label)
    plt.xlabel("hidden state (0 = embeddings)")
    plt.ylim(0, 1)
    return Text.from_ansi(plt.build().rstrip("\n"))


class LogitLensPanel(Panel):
    DEFAULT_CSS = """
    LogitLensPanel { height: 1fr; }
    LogitLensPanel #lens-header { height: 1; background: $boost; padding: 0 1; }
    LogitLensPanel #lens-chart { height: 12; }
    """
    KEYS = [
        Key("left", "cursor(-1)", "move the last position shown"),
        Key("right", "cursor(1)", "move the last position shown"),
        Key("home", "cursor_to(0)", "first / last position"),
        Key("end", "cursor_to(-1)", "first / last position"),
        Key("r", "row(1)", "next row", "row"),
        Key("p", "pin", "pin the prediction at the cursor: its probability across layers, row and baseline",
            "pin prediction"),
        Key("x", "clear_pins", "clear the pinned tokens", "clear pins"),
    ]
    BINDINGS = bindings(KEYS)

    @dataclass
    class Wanted(Message):
        """Decode these positions of this row (and the baseline, for the chart)."""

        key: LensKey

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.result: RunResult | None = None
        self.captures: dict[int, RowCapture] = {}
        self.lenses: dict[LensKey, LogitLens] = {}
        self.asked: set[LensKey] = set()
        self.row, self.cursor = 0, -1  # cursor -1: not placed yet (the last prompt token)
        self.pinned: list[int] = []
        self.token_text: Callable[[int], str] = str  # the app knows the tokenizer

    def compose(self) -> ComposeResult:
        yield Static("", id="lens-header")
        yield LensTableView()
        yield Static("", id="lens-chart")

    def set_data(self, result: RunResult | None, captures: dict[int, RowCapture]) -> None:
        self.result, self.captures = result, captures
        self.lenses, self.asked = {}, set()
        if result is not None:
            self.row = min(self.row, len(result.rows) - 1)
        self.cursor = -1
        self.redraw()

    def set_lens(self, key: LensKey, lens: LogitLens) -> None:
        self.lenses[key] = lens
        self.redraw()

    def on_resize(self) -> None:
        self.redraw()

    def _key(self, row: int) -> LensKey | None:
        cap = self.captures.get(row)
        if cap is None:
            return None
        if self.cursor < 0:
            self.cursor = cap.prompt_len - 1
        cursor = min(self.cursor, len(cap.ids) - 1)
        shown = self._columns()
        return row, tuple(range(max(0, cursor - shown + 1), cursor + 1)), tuple(self.pinned)

    def _columns(self) -> int:
        """How many positions fit side by side."""
        return max(1, min(16, (max(self.size.width, 40) - LABEL) // CELL))

    def _lens(self, row: int) -> LogitLens | None:
        key = self._key(row)
        if key is None:
            return None
        if key not in self.lenses and key not in self.asked:
            self.asked.add(key)
            self.post_message(self.Wanted(key))
        return self.lenses.get(key)

    def redraw(self) -> None:
        if not self.is_mounted:
            return
        header = self.query_one("#lens-header", Static)
        view = self.query_one(LensTableView)
        chart = self.query_one("#lens-chart", Static)
        cap = self.captures.get(self.row)
        if self.result is None or cap is None:
            header.update("logit lens")
            view.table = None
            view.empty = self.app.tabs.empty_note("no capture yet: run a comparison (ctrl+r); the logit lens reads it")
            chart.display = False
            view.refresh()
            return
        lens = self._lens(self.row)
        name = self.result.rows[self.row].name
        if lens is None:
            header.update(safe("row [b]$row: $name[/] · logit lens", row=self.row, name=name))
            view.table, view.empty = None, "decoding every layer at these positions…"
            view.refresh()
            return
        tokens = [[self.token_text(int(t)) for t in layer] for layer in lens.top_ids[:, :, 0]]
        final = lens.top_ids[:, :, 0] == lens.top_ids[-1:, :, 0]
        pos = lens.positions[-1]
        prediction = int(lens.top_ids[-1, -1, 0])
        first = lens.first_top1_layer(len(lens.positions) - 1, prediction)
        title = (f"{cap.tokens[pos]!r} @{pos} → {self.token_text(prediction)!r}, top-1 from "
                 f"{hidden_label(first) if first is not None else '-'}")
        view.table = LogitLensTable(tokens, lens.top_probs[:, :, 0], final,
                                    [cap.tokens[p] for p in lens.positions], title=title)
        pins = ", ".join(repr(self.token_text(t)) for t in self.pinned) or "none (p pins the prediction)"
        header.update(safe("row [b]$row: $name[/] · positions $first–$pos · pinned $pins  [dim]$keys[/]",
                           row=self.row, name=name, first=lens.positions[0], pos=pos, pins=pins, keys=hint(self.KEYS)))
        view.refresh()
        self._chart(chart, lens)

    def _chart(self, chart: Static, lens: LogitLens) -> None:
        chart.display = bool(self.pinned)
        if not self.pinned:
            return
        base = self._lens(0) if self.row else None
        series = []
        for k, token in enumerate(self.pinned):
            colour = PIN_COLORS[k % len(PIN_COLORS)]
            label = repr(self.token_text(token))
            series.append((f"{label} row {self.row}", colour, lens.pinned_probs[:, -1, k].tolist(), False))
            if base is not None:
                series.append((f"{label} baseline", colour, base.pinned_probs[:, -1, k].tolist(), True))
        chart.update(pinned_chart(series, self.size.width, chart.size.height or 12))

    def action_cursor(self, delta: int) -> None:
        cap = self.captures.get(self.row)
        if cap is not None:
            self._key(self.row)  # places a cursor not placed yet
            self.cursor = max(0, min(self.cursor + delta, len(cap.ids) - 1))
        self.redraw()

    def action_cursor_to(self, where: int) -> None:
        cap = self.captures.get(self.row)
        if cap is not None:  # the cursor is the last position shown: Home shows the first screenful
            self.cursor = min(self._columns(), len(cap.ids)) - 1 if where == 0 else len(cap.ids) - 1
        self.redraw()


    def action_pin(self) -> None:
        lens = self._lens(self.row)
        if lens is not None:
            token = int(lens.top_ids[-1, -1, 0])
            if token not in self.pinned:
                self.pinned = (self.pinned + [token])[-len(PIN_COLORS):]
        self.redraw()

    def action_clear_pins(self) -> None:
        self.pinned = []
        self.redraw()

