"""A thin widget around the pure `app.heatmap.Heatmap` renderable."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from rich.text import Text
from textual.widget import Widget

from app.heatmap import Heatmap


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

    def show(self, matrix: np.ndarray | None, rows: Sequence[str] = (), cols: Sequence[str] = (),
             marks: Sequence[int] = (), diverging: bool = False, title: str = "", empty: str = "",
             fit: bool = True, origin: tuple[int, int] = (0, 0)) -> None:
        self._matrix, self._rows, self._cols = matrix, rows, cols
        self._fit, self._origin = fit, origin
        self._marks, self._diverging, self._title = marks, diverging, title
        if empty:
            self._empty = empty
        self.refresh()

    def render(self):
        if self._matrix is None:
            return Text(self._empty, style="dim italic")
        n_rows, n_cols = self._matrix.shape
        row0, col0 = min(self._origin[0], max(0, n_rows - 1)), min(self._origin[1], max(0, n_cols - 1))
        return Heatmap(self._matrix, self._rows, self._cols, marked=self._marks, diverging=self._diverging,
                       title=self._title, fit=self._fit, row0=row0, col0=col0)
