"""A pure Rich renderable: a layers x heads grid, one coloured cell per head.

Each cell is a value for one head (its share of attention on the marks, its entropy, a
role score, or a lens-minus-baseline difference). A one-character flag can sit in a cell
(e.g. the heads `auto_heads` picked, or head roles); the cursor cell is drawn with
brackets. Cells are 1 to 4 columns wide to fit the width; more heads than columns are
mean-pooled, more layers than lines are mean-pooled too (the title says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style

from lenscope.views.heatmap import DIVERGING, VIRIDIS, colormap, pool

LABEL = 4  # "L29 "


@dataclass
class HeadMap:
    values: np.ndarray  # (layers, heads)
    diverging: bool = False
    cursor: tuple[int, int] | None = None  # (layer, head)
    flags: dict[tuple[int, int], str] = field(default_factory=dict)
    title: str = ""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        m = np.asarray(self.values, dtype=np.float64)
        n_layers, n_heads = m.shape
        lines = max(1, (options.height or n_layers + 2) - 1 - bool(self.title))
        cw = max(1, min(4, (width - LABEL) // max(1, n_heads)))
        view = pool(m, lines, max(1, (width - LABEL) // cw))
        rows, cols = view.shape
        pooled = (rows, cols) != m.shape
        top = float(np.nanmax(np.abs(view))) if view.size else 0.0
        top = top or 1.0
        scaled = 0.5 + 0.5 * view / top if self.diverging else view / top
        rgb = colormap(scaled, DIVERGING if self.diverging else VIRIDIS).tolist()
        if self.title:
            yield Segment(self.title[:width], Style(bold=True))
            yield Segment.line()
        yield Segment(" " * LABEL)
        if pooled:
            yield Segment(f"{n_layers}x{n_heads} pooled to {rows}x{cols}"[: width - LABEL], Style(dim=True, italic=True))
        else:
            for h in range(cols):
                yield Segment((str(h) if cw > 1 or h % 5 == 0 else " ")[:cw].rjust(cw), Style(dim=True))
        yield Segment.line()
        for i in range(rows):
            layer = i * n_layers // rows
            yield Segment(f"L{layer}".ljust(LABEL)[:LABEL], Style(dim=True))
            for j in range(cols):
                c = rgb[i][j]
                fg = "black" if 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] > 140 else "white"
                cell = (layer, j * n_heads // cols)
                at_cursor = not pooled and self.cursor == cell
                flag = "" if pooled else self.flags.get(cell, "")
                text = (flag or ("◆" if at_cursor else ""))[:cw].center(cw)
                style = Style(bgcolor=f"rgb({c[0]},{c[1]},{c[2]})", color=fg, bold=bool(flag) or at_cursor,
                              reverse=at_cursor)
                yield Segment(text.ljust(cw)[:cw], style)
            yield Segment.line()
