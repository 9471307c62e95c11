"""A thin widget around the pure `app.heatmap.Heatmap` renderable, and its colour scale."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from lenscope.views.heatmap import DIVERGING, VIRIDIS, Heatmap, colormap


def colour_scale(vmax: float, diverging: bool, width: int = 24) -> Text:
    """One line: the colours from the lowest value shown to the highest, labelled at both ends."""
    stops = DIVERGING if diverging else VIRIDIS
    text = Text()
    text.append(f"{-vmax:+.3g} " if diverging else "0 ", style="bold")
    for r, g, b in colormap(np.linspace(0, 1, width), stops).tolist():
        text.append("█", Style(color=f"rgb({r},{g},{b})"))
    text.append(f" {vmax:+.3g}" if diverging else f" {vmax:.3g}", style="bold")
    meaning = "blue: less than the baseline, red: more" if diverging else "share of attention"
    text.append(f"  {meaning}", style="dim")
    return text


class HeatmapView(Widget):
    """Shows one matrix; the panel around it decides which (row, layer, head, mode)."""

    DEFAULT_CSS = "HeatmapView { height: 1fr; }"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._matrix: np.ndarray | None = None
        self._rows: Sequence[str] = ()
        self._cols: Sequence[str] = ()
        self._marks: Sequence[int] = ()
        self._diverging = False
        self._title = ""
        self._empty = "no attention captured yet: run a comparison (ctrl+r)"
        self._fit, self._origin = True, (0, 0)
        self.vmax = 1.0  # the value of the brightest (or, diverging: the reddest) colour

    def show(self, matrix: np.ndarray | None, rows: Sequence[str] = (), cols: Sequence[str] = (),
             marks: Sequence[int] = (), diverging: bool = False, title: str = "", empty: str = "",
             fit: bool = True, origin: tuple[int, int] = (0, 0)) -> None:
        self._matrix, self._rows, self._cols = matrix, rows, cols
        self._fit, self._origin = fit, origin
        self._marks, self._diverging, self._title = marks, diverging, title
        if matrix is not None and matrix.size:
            # one scale for the whole matrix, so pooling or scrolling never changes what a colour means
            top = float(np.nanmax(np.abs(matrix))) if np.isfinite(matrix).any() else 0.0
            self.vmax = top if np.isfinite(top) and top > 0 else 1.0
        if empty:
            self._empty = empty
        self.refresh()

    def scale(self) -> Text | None:
        return None if self._matrix is None else colour_scale(self.vmax, self._diverging)

    def render(self):
        if self._matrix is None:
            return Text(self._empty, style="dim italic")
        n_rows, n_cols = self._matrix.shape
        row0, col0 = min(self._origin[0], max(0, n_rows - 1)), min(self._origin[1], max(0, n_cols - 1))
        return Heatmap(self._matrix, self._rows, self._cols, marked=self._marks, diverging=self._diverging,
                       title=self._title, fit=self._fit, row0=row0, col0=col0, vmax=self.vmax)
