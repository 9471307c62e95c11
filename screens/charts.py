"""Per-step charts drawn with plotext: attention on the marks, and KL from the baseline."""

from __future__ import annotations

import plotext as plt
from rich.table import Table
from rich.text import Text
from textual.widget import Widget

from app.results import RunResult

COLORS = ["white", "cyan", "magenta", "green", "yellow", "red", "blue", "orange"]


def line_chart(series: dict[str, list[float]], title: str, width: int, height: int) -> Text:
    plt.clear_figure()
    plt.plotsize(max(20, width), max(5, height))
    plt.theme("clear")
    plotted = False
    for i, (name, values) in enumerate(series.items()):
        pts = [(t, v) for t, v in enumerate(values) if v is not None]
        if pts:
            plt.plot([p[0] for p in pts], [p[1] for p in pts], label=name[:16], color=COLORS[i % len(COLORS)],
                     marker="braille")
            plotted = True
    if not plotted:
        return Text(f"{title}: nothing to plot yet", style="dim italic")
    plt.title(title)
    plt.xlabel("step")
    return Text.from_ansi(plt.build())


class StepCharts(Widget):
    DEFAULT_CSS = "StepCharts { height: 1fr; min-height: 8; }"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.result: RunResult | None = None

    def show(self, result: RunResult | None) -> None:
        self.result = result
        self.refresh()

    def render(self) -> Text:
        res = self.result
        if res is None:
            return Text("charts appear after a run", style="dim italic")
        w, h = self.size.width, self.size.height
        text = Text()
        if res.marked_token_indices:
            marks = {r.name: r.attention_to_marks for r in res.rows}
            text.append_text(line_chart(marks, "attention on marks per step", w // 2 - 1 if w >= 100 else w,
                                        h if w >= 100 else h // 2))
        kl = {r.name: r.kl_from_baseline for r in res.rows[1:]}
        chart = line_chart(kl, "KL(baseline || row) per step", w // 2 - 1 if w >= 100 else w,
                           h if w >= 100 or not res.marked_token_indices else h // 2)
        if w >= 100 and res.marked_token_indices:  # side by side on wide terminals
            grid = Table.grid(expand=True)
            grid.add_column(ratio=1)
            grid.add_column(ratio=1)
            grid.add_row(text, chart)
            return grid  # type: ignore[return-value]
        if text:
            text.append("\n")
        text.append_text(chart)
        return text
