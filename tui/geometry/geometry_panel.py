"""The geometry tab: where a lens moved the residual stream, and whether later layers undo it.

Top: 1 - cosine between the row's hidden states and the baseline's at each layer and
position (or the norm ratio, `m`): a strip that lights up from the layer a lens acts on.
Bottom: a 2-D PCA of every row's hidden state at one layer over the generated steps (the
state that chose each output token), one colour per row.
"""

from __future__ import annotations

import math

import numpy as np
import plotext as plt
from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from lenscope.core.capture import RowCapture, hidden_label
from lenscope.core.results import RunResult
from lenscope.tui.keys import Key, bindings, hint
from lenscope.tui.markup import safe
from lenscope.tui.widgets.charts import legend, row_color, too_small
from lenscope.tui.widgets.heatmap_view import HeatmapView
from lenscope.tui.widgets.panel import Panel
from lenscope.views import hidden_states as geometry

MODES = ("1 - cosine", "norm ratio - 1")


def pca_chart(rows: list[tuple[int, np.ndarray]], title: str, width: int, height: int) -> Text:
    if (small := too_small(height, "the PCA")) is not None:
        return small
    plt.clear_figure()
    plt.plotsize(max(20, width), height)
    plt.theme("clear")
    for r, pts in rows:
        pts = pts[np.isfinite(pts).all(axis=1)]  # plotext fails on nan and inf: a row that overflowed is left out
        if not len(pts):
            continue
        plt.scatter(pts[:, 0].tolist(), pts[:, 1].tolist(), color=row_color(r), marker="braille")
        plt.plot(pts[:, 0].tolist(), pts[:, 1].tolist(), color=row_color(r), marker="braille")
    plt.title(title)
    return Text.from_ansi(plt.build().rstrip("\n"))


class GeometryPanel(Panel):
    MODES = MODES
    DEFAULT_CSS = """
    GeometryPanel { height: 1fr; }
    GeometryPanel #geometry-header { height: 1; background: $boost; padding: 0 1; }
    GeometryPanel HeatmapView { height: 1fr; }
    GeometryPanel #geometry-pca { height: 1fr; min-height: 8; }
    """
    KEYS = [
        Key("r", "row(1)", "next lens row", "row"),
        Key("m", "mode", "1 - cosine / norm ratio - 1", "cosine/norm"),
        Key("[", "pca_layer_step(-1)", "the hidden state the PCA reads - / +", "PCA layer"),
        Key("]", "pca_layer_step(1)", "the hidden state the PCA reads - / +"),
    ]
    BINDINGS = bindings(KEYS)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.result: RunResult | None = None
        self.captures: dict[int, RowCapture] = {}
        self.row, self.mode, self.pca_layer = 1, MODES[0], -1

    def compose(self) -> ComposeResult:
        yield Static("", id="geometry-header")
        yield HeatmapView()
        yield Static("", id="geometry-pca")

    def set_data(self, result: RunResult | None, captures: dict[int, RowCapture]) -> None:
        self.result, self.captures = result, captures
        if result is not None:
            self.row = min(max(self.row, 1 if len(result.rows) > 1 else 0), len(result.rows) - 1)
        self.redraw()

    def on_resize(self) -> None:
        self.redraw()

    def redraw(self) -> None:
        if not self.is_mounted:
            return
        header = self.query_one("#geometry-header", Static)
        view = self.query_one(HeatmapView)
        pca = self.query_one("#geometry-pca", Static)
        caps = [self.captures.get(r) for r in range(len(self.result.rows))] if self.result else []
        if not caps or any(c is None or c.hidden is None for c in caps):
            header.update("geometry")
            view.show(None, empty=self.app.tabs.empty_note("no capture yet: run a comparison (ctrl+r); geometry "
                                                            "reads its hidden states"))
            pca.update("")
            return
        cap, base = caps[self.row], caps[0]
        cos, ratio = geometry.compare(cap.hidden, base.hidden)
        matrix = 1 - cos if self.mode == MODES[0] else ratio - 1
        layers = [hidden_label(i) for i in range(cap.hidden.shape[0])]
        name = self.result.rows[self.row].name
        what = "1 - cosine to the baseline" if self.mode == MODES[0] else "norm ratio to the baseline - 1"
        view.show(matrix, layers, cap.tokens[: matrix.shape[1]], self.result.marked_token_indices,
                  diverging=self.mode != MODES[0], title=f"{what}: hidden states down, positions across")
        n = cap.hidden.shape[0]
        self.pca_layer = max(-n, min(self.pca_layer, n - 1))
        steps = [(r, c.hidden[self.pca_layer, c.prompt_len - 1 : len(c.ids) - 1]) for r, c in enumerate(caps)]
        steps = [(r, s) for r, s in steps if len(s)]
        if steps:
            points, explained = geometry.pca_2d([s for _, s in steps])
            title = (f"PCA of the states at {hidden_label(self.pca_layer % n)} over the steps "
                     f"({100 * explained[0]:.0f}% + {100 * explained[1]:.0f}% of variance)")
            key = legend([row.name for row in self.result.rows], self.size.width)
            room = pca.size.height - math.ceil(key.cell_len / max(1, self.size.width))  # the legend's lines first
            pca.update(Text("\n").join([pca_chart(list(zip([r for r, _ in steps], points)), title,
                                                  self.size.width, room), key]))
        else:
            pca.update(Text("no generated steps to project", style="dim italic"))
        top = float(np.abs(matrix).max()) if matrix.size else 0.0
        header.update(safe("row [b]$row: $name[/] vs baseline · [b]$mode[/] (max $top) · PCA at $pca  [dim]$keys[/]",
                           row=self.row, name=name, mode=self.mode, top=f"{top:.3g}",
                           pca=hidden_label(self.pca_layer % n), keys=hint(self.KEYS)))



    def action_pca_layer_step(self, delta: int) -> None:
        self.pca_layer += delta
        self.redraw()
