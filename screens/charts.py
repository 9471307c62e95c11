"""Per-step charts drawn with plotext: attention on the marks, and KL from the baseline."""

from __future__ import annotations

import math

import plotext as plt
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widget import Widget

from lenscope.app.core.results import RunResult

# names both plotext and Rich know, and mean about the same colour by: plotext has no
# "yellow" (it draws that line uncoloured) and Rich no "orange" (a legend with it raises
# MissingStyle); "black" would not show on a dark terminal
COLORS = ["white", "cyan", "magenta", "green", "red", "blue"]


def row_color(r: int) -> str:
    """Row r's colour in every chart, so one legend serves them all."""
    return COLORS[r % len(COLORS)]


def line_chart(series: list[tuple[int, list[float | None]]], title: str, width: int, height: int,
               x_label: str = "step", first: int = 0, whole_x: bool = False) -> Text:
    """One line per (row index, values); None values (e.g. KL after divergence) are gaps; x counts
    from `first`; `whole_x`: ticks at whole numbers only, over every x (turns)."""
    plt.clear_figure()
    plt.plotsize(max(20, width), max(5, height))
    plt.theme("clear")
    plotted = False
    for r, values in series:
        # plotext fails on inf and nan (an infinite KL where a lens masks a token): gaps, like None
        pts = [(t, v) for t, v in enumerate(values, start=first) if v is not None and math.isfinite(v)]
        if pts:
            plt.plot([p[0] for p in pts], [p[1] for p in pts], color=row_color(r), marker="braille")
            plotted = True
    if not plotted:
        return Text(f"{title}: nothing to plot yet", style="dim italic")
    plt.title(title)
    plt.xlabel(x_label)
    if whole_x:
        n = max(len(values) for _, values in series)
        plt.xticks(list(range(first, first + n)))
        plt.xlim(first, first + max(n - 1, 1))
    return Text.from_ansi(plt.build().rstrip("\n"))  # a trailing newline would push the legend off


def legend(names: list[str]) -> Text:
    """A line under the charts (plotext's own legend sits over the lines of a small chart)."""
    text = Text()
    for r, name in enumerate(names):
        text.append("━━ ", style=row_color(r))
        text.append(f"{name[:24]}   ")
    return text


class StepCharts(Widget):
    DEFAULT_CSS = "StepCharts { height: 1fr; min-height: 8; }"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.result: RunResult | None = None

    def show(self, result: RunResult | None) -> None:
        self.result = result
        self.refresh()

    def render(self):
        res = self.result
        if res is None:
            return Text("charts appear after a run", style="dim italic")
        key = legend([row.name for row in res.rows])
        w = self.size.width
        h = self.size.height - math.ceil(key.cell_len / max(1, w))  # the legend's lines go under the charts
        wide = w >= 100 and bool(res.marked_token_indices)  # side by side on wide terminals
        cw, ch = (w // 2 - 1, h) if wide else (w, h // 2 if res.marked_token_indices else h)
        charts = []
        if res.marked_token_indices:
            charts.append(line_chart([(r, row.attention_to_marks) for r, row in enumerate(res.rows)],
                                     "attention on marks per step", cw, ch))
        charts.append(line_chart([(r, row.kl_from_baseline) for r, row in enumerate(res.rows) if r > 0],
                                 "KL(baseline || row) per step", cw, ch))
        if wide:
            grid = Table.grid(expand=True)
            grid.add_column(ratio=1)
            grid.add_column(ratio=1)
            grid.add_row(*charts)
            return Group(grid, key)
        return Group(*charts, key)
