"""The heatmap panel: choose row, layer, head (or mean) and mode; charts below."""

from __future__ import annotations

import numpy as np
from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import Static

from lenscope.core.results import RunResult
from lenscope.tui.keys import Key, bindings, hint
from lenscope.tui.markup import safe
from lenscope.tui.widgets.charts import StepCharts
from lenscope.tui.widgets.heatmap_view import HeatmapView
from lenscope.tui.widgets.panel import Panel
from lenscope.views.attention import rollout

MODES = ("lens", "baseline", "difference", "rollout")
CHARTS_MIN_HEIGHT = 28  # below this the heatmap and the charts do not both fit: one at a time
HEATMAP_CHROME = 6  # title, column labels (4) and the pooled/scroll note: lines that are not matrix rows


class HeatmapPanel(Panel):
    MODES = MODES
    DEFAULT_CSS = """
    HeatmapPanel { height: 1fr; }
    HeatmapPanel #heatmap-header { height: 1; background: $boost; padding: 0 1; }
    HeatmapPanel #heatmap-scale { height: 1; padding: 0 1; }
    HeatmapPanel HeatmapView { height: 3fr; }
    HeatmapPanel StepCharts { height: 1fr; }
    """
    KEYS = [
        Key("[", "layer(-1)", "layer - / +", "layer"),
        Key("]", "layer(1)", "layer - / +"),
        Key("{", "head(-1)", "head - / + (past the last head: the mean of heads)", "head"),
        Key("}", "head(1)", "head - / + (past the last head: the mean of heads)"),
        Key("r", "row(1)", "next row", "row"),
        Key("m", "mode", "mode: lens / baseline / difference / rollout", "mode"),
        Key("c", "charts", "charts on / off (on a small terminal they take the heatmap's place)", "charts"),
        Key("z", "fit", "fit (mean-pool long sequences) or scroll at 1:1", "fit/scroll"),
        Key("up", "scroll_view(-1, 0)", "scroll one query or key (leaves fit mode)"),
        Key("down", "scroll_view(1, 0)", "scroll one query or key (leaves fit mode)"),
        Key("left", "scroll_view(0, -1)", "scroll one query or key (leaves fit mode)"),
        Key("right", "scroll_view(0, 1)", "scroll one query or key (leaves fit mode)"),
        Key("pageup", "page(-1)", "a page of queries up / down; the first / the last"),
        Key("pagedown", "page(1)", "a page of queries up / down; the first / the last"),
        Key("home", "scroll_to(0)", "a page of queries up / down; the first / the last"),
        Key("end", "scroll_to(-1)", "a page of queries up / down; the first / the last"),
    ]
    BINDINGS = bindings(KEYS)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.result: RunResult | None = None
        self.attention: dict[int, np.ndarray] = {}  # row -> (layers, heads, T, T)
        self._rollouts: dict[int, np.ndarray] = {}  # row -> (T, T), computed when first shown
        self.row, self.layer_index, self.head_index, self.mode = 0, 0, -1, "lens"  # head -1: mean
        self.fit, self.origin = True, (0, 0)  # scroll mode (fit off) shows tokens at 1:1 from origin
        self.charts_wanted: bool | None = None  # None: shown when there is room; c toggles
        self.stale = False
        self.empty_note = "no attention captured yet: run a comparison (ctrl+r)"

    def compose(self) -> ComposeResult:
        yield Static("", id="heatmap-header")
        yield HeatmapView()
        yield Static("", id="heatmap-scale")
        yield StepCharts()

    def on_resize(self) -> None:
        self._layout()

    def charts_shown(self) -> bool:
        return self.size.height >= CHARTS_MIN_HEIGHT if self.charts_wanted is None else self.charts_wanted

    def _layout(self) -> None:
        charts = self.charts_shown()
        self.query_one(StepCharts).display = charts
        # too small for both: the charts, asked for, take the heatmap's place
        heatmap = not charts or self.size.height >= CHARTS_MIN_HEIGHT
        self.query_one(HeatmapView).display = heatmap
        self.query_one("#heatmap-scale").display = heatmap

    def set_data(self, result: RunResult | None, attention: dict[int, np.ndarray], empty: str = "") -> None:
        self.result, self.attention, self._rollouts = result, attention, {}
        if empty:
            self.empty_note = empty
        if result is not None:
            self.row = min(self.row, len(result.rows) - 1)
        self.redraw()

    def set_stale(self, stale: bool) -> None:
        self.stale = stale
        self.redraw()

    def _tokens(self, r: int) -> list[str]:
        return self.result.prompt_tokens + self.result.rows[r].tokens if self.result else []

    def _matrix(self, r: int) -> np.ndarray | None:
        a = self.attention.get(r)
        if a is None:
            return None
        if self.mode == "rollout":
            if r not in self._rollouts:
                self._rollouts[r] = rollout(a)
            return self._rollouts[r]
        layer = a[self.layer_index % a.shape[0]]
        return layer.mean(axis=0) if self.head_index < 0 else layer[self.head_index % a.shape[1]]

    def _shown_size(self) -> tuple[int, int]:
        """(query rows, key columns) of the matrix on screen now, (0, 0) if none."""
        if not self.attention or self.result is None:
            return 0, 0
        r = 0 if self.mode == "baseline" else self.row
        m = self._matrix(r)
        return (0, 0) if m is None else m.shape

    def redraw(self) -> None:
        view = self.query_one(HeatmapView)
        scale = self.query_one("#heatmap-scale", Static)
        self.query_one(StepCharts).show(self.result)
        header = self.query_one("#heatmap-header", Static)
        stale = "[b yellow]stale[/] · " if self.stale else ""
        if self.result is None or not self.attention:
            header.update(f"{stale}attention heatmap   (c charts)")
            view.show(None, empty=self.app.tabs.empty_note(self.empty_note))
            scale.update("")
            return
        first = next(iter(self.attention.values()))
        n_layers, n_heads = first.shape[:2]
        self.layer_index %= n_layers
        if self.head_index >= n_heads:
            self.head_index = -1
        row_name = self.result.rows[self.row].name
        head = "head mean" if self.head_index < 0 else f"head {self.head_index}/{n_heads - 1}"
        marks = self.result.marked_token_indices
        shown_row = 0 if self.mode == "baseline" else self.row
        if self.mode == "difference" and self.row != 0:
            a, b = self._matrix(self.row), self._matrix(0)
            if a is None or b is None:
                view.show(None, empty="capture missing for this row")
            else:
                n = min(a.shape[0], b.shape[0])
                tokens = self._tokens(self.row)[:n]
                view.show(a[:n, :n] - b[:n, :n], tokens, tokens, marks,
                          diverging=True, title=f"{row_name} minus baseline (blue: less, red: more)",
                          fit=self.fit, origin=self.origin)
        else:
            m = self._matrix(shown_row)
            name = self.result.rows[shown_row].name
            what = "rollout through all layers (0.5 A + 0.5 I)" if self.mode == "rollout" else \
                "queries down, keys across"
            view.show(m, self._tokens(shown_row), self._tokens(shown_row), marks,
                      title=f"{name}: {what}",
                      empty="capture skipped for this row (too long?)", fit=self.fit, origin=self.origin)
        scale.update(view.scale() or "")
        where = "fit" if self.fit else f"scroll @{self.origin[0]},{self.origin[1]}"
        header.update(Content.assemble(Content.from_markup(stale), safe(
            "row [b]$row: $name[/] · layer [b]$layer/$last[/] · [b]$head[/] · [b]$mode[/] · $where  [dim]$keys[/]",
            row=self.row, name=row_name, layer=self.layer_index, last=n_layers - 1, head=head, mode=self.mode,
            where=where, keys=hint(self.KEYS))))

    def action_fit(self) -> None:
        self.fit = not self.fit
        self.redraw()

    def _scroll(self, row: int, col: int) -> None:
        """Scroll mode at origin (row, col), kept inside the matrix; a scroll key leaves fit mode."""
        n_rows, n_cols = self._shown_size()
        self.fit = False  # never past the last full page of queries: a page down shows a page, not a row
        self.origin = (max(0, min(row, n_rows - self._page_rows())), max(0, min(col, n_cols - 1)))
        self.redraw()

    def _page_rows(self) -> int:
        return max(2, 2 * (self.query_one(HeatmapView).size.height - HEATMAP_CHROME))  # a cell shows 2 rows

    def action_scroll_view(self, rows: int, cols: int) -> None:
        self._scroll(self.origin[0] + rows, self.origin[1] + cols)

    def action_page(self, pages: int) -> None:
        self._scroll(self.origin[0] + pages * self._page_rows(), self.origin[1])

    def action_scroll_to(self, where: int) -> None:
        """Home: the first query; End: the last page of queries."""
        last = max(0, self._shown_size()[0] - self._page_rows())
        self._scroll(0 if where == 0 else last, self.origin[1])

    def action_charts(self) -> None:
        self.charts_wanted = not self.charts_shown()
        self._layout()

    def action_layer(self, delta: int) -> None:
        self.layer_index += delta
        self.redraw()

    def action_head(self, delta: int) -> None:
        if self.attention:
            n_heads = next(iter(self.attention.values())).shape[1]
            self.head_index = (self.head_index + 1 + delta) % (n_heads + 1) - 1
        self.redraw()


