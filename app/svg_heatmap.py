"""A clean SVG heatmap for reports: one rect per cell (viridis), the query tokens down the
left, the key tokens across the top written at an angle, marked tokens in bold orange.
Readable in a browser, in a Markdown viewer and in an issue."""

from __future__ import annotations

from html import escape
from typing import Sequence

import numpy as np

from lenscope.app.heatmap import VIRIDIS, colormap


def _label(token: str) -> str:
    return escape(token.replace("\n", "⏎").strip() or "·")


def svg(matrix: np.ndarray, tokens: Sequence[str], marks: Sequence[int] = (), title: str = "", cell: int = 12) -> str:
    m = np.asarray(matrix, dtype=np.float64)
    n = m.shape[0]
    left, top = 110, 90 + (18 if title else 0)
    scaled = m / (float(np.nanmax(m)) or 1.0)
    rgb = colormap(np.tril(scaled), VIRIDIS)
    marked = set(marks)
    width = max(left + n * cell + 20, 8 * len(title) + 10)
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{top + n * cell + 10}' "
           f"font-family='monospace' font-size='{max(8, cell - 2)}'>", "<rect width='100%' height='100%' fill='white'/>"]
    if title:
        out.append(f"<text x='4' y='14' font-size='13' font-weight='bold'>{escape(title)}</text>")
    for i, tok in enumerate(tokens[:n]):
        style = " font-weight='bold' fill='#c77700'" if i in marked else ""
        y = top + i * cell + cell - 2
        out.append(f"<text x='{left - 4}' y='{y}' text-anchor='end'{style}>{_label(tok)[:14]}</text>")
        x = left + i * cell + cell - 3
        out.append(f"<text transform='translate({x},{top - 4}) rotate(-60)'{style}>{_label(tok)[:14]}</text>")
    for i in range(n):
        for j in range(i + 1):
            r, g, b = rgb[i, j].tolist()
            out.append(f"<rect x='{left + j * cell}' y='{top + i * cell}' width='{cell}' height='{cell}' "
                       f"fill='rgb({r},{g},{b})'><title>{_label(tokens[i])} → {_label(tokens[j])}: "
                       f"{m[i, j]:.4f}</title></rect>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
