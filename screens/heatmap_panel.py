"""The heatmap panel: choose row, layer, head (or mean) and mode; charts below."""

from __future__ import annotations

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from app.results import RunResult
from screens.charts import StepCharts
from screens.heatmap_view import HeatmapView

MODES = ("lens", "baseline", "difference")


class HeatmapPanel(Vertical, can_focus=True):
    DEFAULT_CSS = """
    HeatmapPanel { height: 1fr; }
    HeatmapPanel #heatmap-header { height: 1; background: $boost; padding: 0 1; }
    HeatmapPanel HeatmapView { height: 3fr; }
    HeatmapPanel StepCharts { height: 1fr; }
    """
    BINDINGS = [
        Binding("]", "layer(1)", "layer+"),
        Binding("[", "layer(-1)", "layer-"),
        Binding("}", "head(1)", "head+"),
        Binding("{", "head(-1)", "head-"),
        Binding("r", "row(1)", "row"),
        Binding("m", "mode", "mode"),
        Binding("z", "fit", "fit/scroll"),
        Binding("up", "scroll_view(-2, 0)", show=False),
        Binding("down", "scroll_view(2, 0)", show=False),
        Binding("left", "scroll_view(0, -4)", show=False),
        Binding("right", "scroll_view(0, 4)", show=False),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.result: RunResult | None = None
        self.attention: dict[int, np.ndarray] = {}  # row -> (layers, heads, T, T)
        self.row_index, self.layer_index, self.head_index, self.view_mode = 0, 0, -1, "lens"  # head -1: mean
        self.fit, self.origin = True, (0, 0)  # scroll mode (fit off) shows tokens at 1:1 from origin

    def compose(self) -> ComposeResult:
        yield Static("", id="heatmap-header")
        yield HeatmapView()
        yield StepCharts()

    def on_resize(self) -> None:
        # below ~28 rows the charts would leave the heatmap a few lines: heatmap only
        self.query_one(StepCharts).display = self.size.height >= 28

    def set_data(self, result: RunResult | None, attention: dict[int, np.ndarray]) -> None:
        self.result, self.attention = result, attention
        if result is not None:
            self.row_index = min(self.row_index, len(result.rows) - 1)
        self.redraw()

    def _tokens(self, r: int) -> list[str]:
        return self.result.prompt_tokens + self.result.rows[r].tokens if self.result else []

    def _matrix(self, r: int) -> np.ndarray | None:
        a = self.attention.get(r)
        if a is None:
            return None
        layer = a[self.layer_index % a.shape[0]]
        return layer.mean(axis=0) if self.head_index < 0 else layer[self.head_index % a.shape[1]]

    def redraw(self) -> None:
        view = self.query_one(HeatmapView)
        self.query_one(StepCharts).show(self.result)
        header = self.query_one("#heatmap-header", Static)
        if self.result is None or not self.attention:
            header.update("attention heatmap")
            view.show(None)
            return
        first = next(iter(self.attention.values()))
        n_layers, n_heads = first.shape[:2]
        self.layer_index %= n_layers
        if self.head_index >= n_heads:
            self.head_index = -1
        row_name = self.result.rows[self.row_index].name
        head = "mean of heads" if self.head_index < 0 else f"head {self.head_index}/{n_heads - 1}"
        marks = self.result.marked_token_indices
        shown_row = 0 if self.view_mode == "baseline" else self.row_index
        if self.view_mode == "difference" and self.row_index != 0:
            a, b = self._matrix(self.row_index), self._matrix(0)
            if a is None or b is None:
                view.show(None, empty="capture missing for this row")
            else:
                n = min(a.shape[0], b.shape[0])
                view.show(a[:n, :n] - b[:n, :n], self._tokens(self.row_index)[:n], self._tokens(self.row_index)[:n], marks,
                          diverging=True, title=f"{row_name} minus baseline (blue: less, red: more)",
                          fit=self.fit, origin=self.origin)
        else:
            m = self._matrix(shown_row)
            name = self.result.rows[shown_row].name
            view.show(m, self._tokens(shown_row), self._tokens(shown_row), marks,
                      title=f"{name}: queries down, keys across",
                      empty="capture skipped for this row (too long?)", fit=self.fit, origin=self.origin)
        where = "fit" if self.fit else f"scroll @{self.origin[0]},{self.origin[1]}"
        header.update(f"row [b]{row_name}[/] · layer [b]{self.layer_index}/{n_layers - 1}[/] · [b]{head}[/] · "
                      f"mode [b]{self.view_mode}[/] · {where}   ([ ] layer  {{ }} head  r row  m mode  z fit)")

    def action_fit(self) -> None:
        self.fit = not self.fit
        self.redraw()

    def action_scroll_view(self, rows: int, cols: int) -> None:
        if not self.fit:
            self.origin = (max(0, self.origin[0] + rows), max(0, self.origin[1] + cols))
            self.redraw()

    def action_layer(self, delta: int) -> None:
        self.layer_index += delta
        self.redraw()

    def action_head(self, delta: int) -> None:
        if self.attention:
            n_heads = next(iter(self.attention.values())).shape[1]
            self.head_index = (self.head_index + 1 + delta) % (n_heads + 1) - 1
        self.redraw()

    def action_row(self, delta: int) -> None:
        if self.result:
            self.row_index = (self.row_index + delta) % len(self.result.rows)
        self.redraw()

    def action_mode(self) -> None:
        self.view_mode = MODES[(MODES.index(self.view_mode) + 1) % len(MODES)]
        self.redraw()
