"""Per-step charts drawn with plotext: attention on the marks, and KL from the baseline."""

from __future__ import annotations

import math

import plotext as plt
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widget import Widget

from lenscope.core.results import RunResult

# 16 xterm-256 colours both plotext (an int) and Rich (`color(N)`) draw the same, told apart
# on a dark terminal: 16 rows (a baseline and 15 lenses) never share one. Row 0 is white.
COLORS = [255, 51, 201, 46, 196, 33, 226, 208, 129, 118, 45, 213, 166, 87, 141, 180]
MIN_CHART_LINES = 5  # under this a plot says nothing: the chart asks for room instead
LEGEND_LINES = 2  # a legend never takes more; names shorten (to the row number at last) to fit


def row_color(r: int) -> int:
    """Row r's colour in every chart (plotext), so one legend serves them all."""
    return COLORS[r % len(COLORS)]


def row_style(r: int) -> str:
    """Row r's colour as a Rich style."""
    return f"color({row_color(r)})"


def too_small(height: int, what: str = "the charts") -> Text | None:
    """A line asking for room when a plot would get fewer than MIN_CHART_LINES lines."""
    if height >= MIN_CHART_LINES:
        return None
    return Text(f"enlarge the terminal: {what} need {MIN_CHART_LINES - height} more lines", style="dim italic")


def line_chart(series: list[tuple[int, list[float | None]]], title: str, width: int, height: int,
               x_label: str = "step", first: int = 0, whole_x: bool = False) -> Text:
    """One line per (row index, values); None values (e.g. KL after divergence) are gaps; x counts
    from `first`; `whole_x`: ticks at whole numbers only, over every x (turns)."""
    if (small := too_small(height)) is not None:
        return small
    plt.clear_figure()
    plt.plotsize(max(20, width), height)
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


def legend(names: list[str], width: int = 0) -> Text:
    """Lines under the charts (plotext's own legend sits over the lines of a small chart): at
    most LEGEND_LINES at `width`, names cut shorter as rows grow (the row number alone at last)."""
    for cut in (24, 12, 6, 0):
        text = Text()
        for r, name in enumerate(names):
            text.append("━━" if cut else f"━{r}", style=row_style(r))
            text.append(f" {name[:cut]}  " if cut else " ")
        if not width or math.ceil(text.cell_len / width) <= LEGEND_LINES:
            return text
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
        w = self.size.width
        key = legend([row.name for row in res.rows], w)
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
