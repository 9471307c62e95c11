"""A pure Rich renderable for the logit lens: layers down, positions across, each cell the
top-1 token at that layer and position, its background the probability (viridis).

Cells whose token is the model's final prediction at that position are bold, so the layer
where the answer appears reads as the top of a bold column. More layers than lines: an
evenly spaced subset, always with the first and the last (the title says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style

from lenscope.views.heatmap import VIRIDIS, colormap

LABEL = 5  # "emb  " / "L29  "


def _show(token: str, width: int) -> str:
    return token.replace("\n", "⏎").replace(" ", "·")[:width].ljust(width)


def pick_layers(n: int, lines: int) -> list[int]:
    """At most `lines` of n layer indices, evenly spaced, the first and last always in."""
    if n <= lines:
        return list(range(n))
    return sorted({round(i * (n - 1) / (max(lines, 2) - 1)) for i in range(max(lines, 2))})


@dataclass
class LogitLensTable:
    tokens: list[list[str]]  # (layers + 1, P) top-1 token text
    probs: np.ndarray  # (layers + 1, P) its probability
    final: np.ndarray  # (layers + 1, P) bool: equals the last layer's top-1
    position_labels: Sequence[str]  # the input token at each position
    title: str = ""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        n, p = self.probs.shape
        cw = max(3, min(10, (width - LABEL) // max(1, p)))
        shown_p = max(1, min(p, (width - LABEL) // cw))
        cols = list(range(p - shown_p, p))  # the latest positions: where the cursor is
        lines = max(2, (options.height or n + 3) - 2 - bool(self.title))
        layers = pick_layers(n, lines)
        rgb = colormap(np.clip(self.probs, 0, 1), VIRIDIS).tolist()
        if self.title:
            note = "" if len(layers) == n else f" · {len(layers)} of {n} layers"
            yield Segment((self.title + note)[:width], Style(bold=True))
            yield Segment.line()
        yield Segment("in".ljust(LABEL), Style(dim=True))
        for j in cols:
            yield Segment(_show(self.position_labels[j], cw - 1) + " ", Style(dim=True, underline=True))
        yield Segment.line()
        for layer in reversed(layers):  # the output layer on top, as the prediction is read
            yield Segment(("emb" if layer == 0 else f"L{layer - 1}").ljust(LABEL), Style(dim=True))
            for j in cols:
                c = rgb[layer][j]
                fg = "black" if 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] > 140 else "white"
                style = Style(bgcolor=f"rgb({c[0]},{c[1]},{c[2]})", color=fg, bold=bool(self.final[layer, j]))
                yield Segment(_show(self.tokens[layer][j], cw - 1) + " ", style)
            yield Segment.line()
