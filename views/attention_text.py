"""A pure Rich renderable: the text coloured by how much one token attends to each token.

The query token is shown reversed; tokens after it (which it cannot attend to) are dim;
marked tokens stay visible as marked (bold, underlined); tokens that inherited part of the
marks' importance (emphasis with `propagate`) are overlined and italic, the second marker. Sequential weights use viridis
as a background; differences (row minus baseline) the diverging map centred on zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.style import Style
from rich.text import Text

from lenscope.views.heatmap import DIVERGING, VIRIDIS, colormap


def _on(rgb: Sequence[int]) -> str:
    """Black or white text, whichever reads on this background."""
    return "black" if 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 140 else "white"


@dataclass
class AttentionText:
    tokens: Sequence[str]
    weights: np.ndarray  # (T,) the query's attention on each token; entries after the query are ignored
    query: int
    marked: Sequence[int] = ()
    diverging: bool = False
    title: str = ""
    inherited: Sequence[int] = ()  # tokens that inherited importance from the marks (propagation)

    def text(self) -> Text:
        w = np.asarray(self.weights, dtype=np.float64)[: self.query + 1]
        top = float(np.nanmax(np.abs(w))) if len(w) else 0.0
        top = top or 1.0
        scaled = 0.5 + 0.5 * w / top if self.diverging else w / top
        rgb = colormap(scaled, DIVERGING if self.diverging else VIRIDIS).tolist()
        marked, inherited = set(self.marked), set(self.inherited) - set(self.marked)
        out = Text()
        if self.title:
            out.append(self.title + "\n", Style(bold=True))
        for i, tok in enumerate(self.tokens):
            shown = tok.replace("\n", "⏎\n")
            if i > self.query:
                style = Style(dim=True)
            elif i == self.query:
                style = Style(reverse=True, bold=True)
            else:
                c = rgb[i]
                style = Style(bgcolor=f"rgb({c[0]},{c[1]},{c[2]})", color=_on(c))
            if i in marked:
                style += Style(bold=True, underline=True)
            elif i in inherited:
                style += Style(italic=True, overline=True)
            out.append(shown, style)
        return out

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.text()
