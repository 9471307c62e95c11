"""A pure Rich renderable for attention matrices: half-block cells, perceptual colours.

Each terminal cell shows two matrix rows: the upper half block '▀' takes the top row's
colour as foreground and the bottom row's as background; the top row's token is
labelled on the left, the bottom row's on the right. Sequential data uses viridis;
differences use a diverging blue-white-red map centred on zero. Matrices larger than
the space are mean-pooled to fit, or cropped at 1:1 from (`row0`, `col0`) to scroll.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rich.color import Color
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style

# viridis at 9 evenly spaced stops (matplotlib's table, rounded)
VIRIDIS = np.array([
    [68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
    [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]], dtype=np.float64)
# diverging: blue (negative) - near white (0) - red (positive), after ColorBrewer RdBu
DIVERGING = np.array([
    [33, 102, 172], [103, 169, 207], [209, 229, 240], [247, 247, 247],
    [253, 219, 199], [239, 138, 98], [178, 24, 43]], dtype=np.float64)
MARK_STYLE = Style(color="black", bgcolor="yellow", bold=True)


def colormap(values: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGB (..., 3) uint8 by linear interpolation between stops."""
    v = np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0) * (len(stops) - 1)
    lo = np.floor(v).astype(int)
    hi = np.minimum(lo + 1, len(stops) - 1)
    frac = (v - lo)[..., None]
    return (stops[lo] * (1 - frac) + stops[hi] * frac).round().astype(np.uint8)


LEVELS = 256  # colours are quantised to this many levels so styles can be cached
_PALETTES = {name: [Color.from_rgb(*rgb) for rgb in colormap(np.linspace(0, 1, LEVELS), stops).tolist()]
             for name, stops in (("viridis", VIRIDIS), ("diverging", DIVERGING))}
_STYLES: dict[tuple[str, int, int], Style] = {}


def _cell_style(palette: str, top: int, bottom: int) -> Style:
    key = (palette, top, bottom)
    style = _STYLES.get(key)
    if style is None:
        colors = _PALETTES[palette]
        style = _STYLES[key] = Style.from_color(colors[top], colors[bottom] if bottom >= 0 else None)
    return style


def pool(matrix: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Mean-pool a matrix down to at most (rows, cols) blocks."""
    r, c = matrix.shape
    out_r, out_c = min(r, rows), min(c, cols)
    re = np.linspace(0, r, out_r + 1).astype(int)
    ce = np.linspace(0, c, out_c + 1).astype(int)
    row_sums = np.add.reduceat(matrix, re[:-1], axis=0) / np.diff(re)[:, None]
    return np.add.reduceat(row_sums, ce[:-1], axis=1) / np.diff(ce)[None, :]


def _label(token: str, width: int) -> str:
    shown = token.replace("\n", "⏎").replace(" ", "·")
    return shown[:width].rjust(width)


@dataclass
class Heatmap:
    matrix: np.ndarray  # (rows=queries, cols=keys)
    row_labels: Sequence[str]
    col_labels: Sequence[str]
    marked: Sequence[int] = ()
    diverging: bool = False
    title: str = ""
    label_width: int = 8
    col_label_height: int = 4
    row0: int = 0  # window origin when the caller scrolls instead of pooling
    col0: int = 0
    vmax: float | None = None
    fit: bool = True  # pool to fit the space; False: crop at 1:1 from (row0, col0)

    def scaled(self, m: np.ndarray) -> np.ndarray:
        if self.diverging:
            top = self.vmax or float(np.nanmax(np.abs(m))) or 1.0
            return 0.5 + 0.5 * m / top
        top = self.vmax or float(np.nanmax(m)) or 1.0
        return m / top

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        lw = self.label_width
        m = np.asarray(self.matrix, dtype=np.float64)[self.row0 :, self.col0 :]
        cols = max(1, width - 2 * lw - 2)
        rows = max(2, 2 * ((options.height or 2 * m.shape[0]) - self.col_label_height - 1))
        pooled = self.fit and ((m.shape[0] > rows) or (m.shape[1] > cols))
        view = pool(m, rows, cols) if pooled else m[:rows, :cols]
        levels = (np.clip(np.nan_to_num(self.scaled(view)), 0, 1) * (LEVELS - 1)).round().astype(int).tolist()
        palette = "diverging" if self.diverging else "viridis"
        n_rows, n_cols = view.shape
        marked = set(self.marked)
        col_labels = list(self.col_labels)[self.col0 :]
        row_labels = list(self.row_labels)[self.row0 :]
        if self.title:
            yield Segment(self.title[:width], Style(bold=True))
            yield Segment.line()
        if not pooled:
            for line in range(self.col_label_height):
                yield Segment(" " * (lw + 1))
                for j in range(n_cols):
                    text = _label(col_labels[j] if j < len(col_labels) else "", self.col_label_height)
                    style = MARK_STYLE if (j + self.col0) in marked else Style(dim=True)
                    yield Segment(text[line], style)
                yield Segment.line()
        else:
            note = f"{m.shape[0]}x{m.shape[1]} pooled to {n_rows}x{n_cols}"
            yield Segment(" " * (lw + 1) + note[: max(0, width - lw - 1)], Style(dim=True, italic=True))
            yield Segment.line()
        for i in range(0, n_rows, 2):
            if pooled:
                label = f"{i * m.shape[0] // n_rows + self.row0}".rjust(lw)
                lstyle = Style(dim=True)
            else:
                top = row_labels[i] if i < len(row_labels) else ""
                label = _label(top, lw)
                lstyle = MARK_STYLE if (i + self.row0) in marked else Style(dim=True)
            yield Segment(label, lstyle)
            yield Segment(" ")
            right, rstyle = "", Style(dim=True)
            if not pooled and i + 1 < n_rows:
                right = _label(row_labels[i + 1] if i + 1 < len(row_labels) else "", lw).strip()
                rstyle = MARK_STYLE if (i + 1 + self.row0) in marked else rstyle
            top = levels[i]
            bottom = levels[i + 1] if i + 1 < n_rows else [-1] * n_cols
            for j in range(n_cols):
                yield Segment("▀", _cell_style(palette, top[j], bottom[j]))
            if right:
                yield Segment(" ")
                yield Segment(right, rstyle)
            yield Segment.line()
