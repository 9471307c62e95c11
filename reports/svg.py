"""SVG for reports, readable in a browser, in a Markdown viewer and in an issue: a heatmap
(one rect per cell, viridis; the query tokens down the left, the key tokens across the top
written at an angle, marked tokens in bold orange) and a line chart (one colour per row)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from html import escape
from pathlib import Path

import numpy as np

from lenscope.views.heatmap import VIRIDIS, colormap

COLORS = ["#555", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b"]  # one per row


def _label(token: str, cut: int | None = None) -> str:
    """A token as SVG text: cut to `cut` characters first, then escaped (cutting escaped
    text can split an entity, `&quot;` into `&quo`, and break the XML)."""
    return escape((token.replace("\n", "⏎").strip() or "·")[:cut])


def svg(matrix: np.ndarray, tokens: Sequence[str], marks: Sequence[int] = (), title: str = "", cell: int = 12) -> str:
    m = np.asarray(matrix, dtype=np.float64)
    n = m.shape[0]
    left, top = 110, 90 + (18 if title else 0)
    scaled = m / (float(np.nanmax(m)) or 1.0)
    rgb = colormap(np.tril(scaled), VIRIDIS)
    marked = set(marks)
    width = max(left + n * cell + 20, 8 * len(title) + 10)
    out = [(f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{top + n * cell + 10}' "
           f"font-family='monospace' font-size='{max(8, cell - 2)}'>"), "<rect width='100%' height='100%' fill='white'/>"]
    if title:
        out.append(f"<text x='4' y='14' font-size='13' font-weight='bold'>{escape(title)}</text>")
    for i, tok in enumerate(tokens[:n]):
        style = " font-weight='bold' fill='#c77700'" if i in marked else ""
        y = top + i * cell + cell - 2
        out.append(f"<text x='{left - 4}' y='{y}' text-anchor='end'{style}>{_label(tok, 14)}</text>")
        x = left + i * cell + cell - 3
        out.append(f"<text transform='translate({x},{top - 4}) rotate(-60)'{style}>{_label(tok, 14)}</text>")
    for i in range(n):
        for j in range(i + 1):
            r, g, b = rgb[i, j].tolist()
            out.append(f"<rect x='{left + j * cell}' y='{top + i * cell}' width='{cell}' height='{cell}' "
                       f"fill='rgb({r},{g},{b})'><title>{_label(tokens[i])} → {_label(tokens[j])}: "
                       f"{m[i, j]:.4f}</title></rect>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def line_chart(series: list[tuple[int, list]], title: str, width: int = 320, height: int = 110,
               x_label: str = "step", first: int = 0, top: float | None = None) -> str:
    """An inline SVG line chart: one polyline per row (None values are gaps); x counts from
    `first`; y from 0 to `top` (the largest value when None)."""
    values = [v for _, vs in series for v in vs if v is not None]
    if not values:
        return ""
    top = top or max(max(values), 1e-9)
    steps = max(len(vs) for _, vs in series)
    x = lambda t: 30 + (width - 40) * t / max(steps - 1, 1)
    y = lambda v: height - 18 - (height - 34) * v / top
    lines = []
    for r, vs in series:
        segs, cur = [], []
        for t, v in enumerate(vs):
            if v is None:
                segs, cur = segs + [cur] if cur else segs, []
            else:
                cur.append(f"{x(t):.1f},{y(v):.1f}")
        segs = segs + [cur] if cur else segs
        colour = COLORS[r % len(COLORS)]
        for seg in segs:  # a lone point (KL before the prefixes part) is drawn as a dot
            if len(seg) == 1:
                cx, cy = seg[0].split(",")
                lines.append(f"<circle cx='{cx}' cy='{cy}' r='3' fill='{colour}'/>")
            else:
                lines.append(f"<polyline fill='none' stroke='{colour}' stroke-width='1.5' points='{' '.join(seg)}'/>")
    return (f"<svg width='{width}' height='{height}' role='img' aria-label='{html.escape(title)}'>"
            f"<text x='4' y='12' font-size='11'>{html.escape(title)}</text>"
            f"<text x='4' y='{height - 4}' font-size='10'>0</text><text x='4' y='26' font-size='10'>{top:.3g}</text>"
            f"<text x='{width - 44}' y='{height - 4}' font-size='10'>{x_label} {steps - 1 + first}</text>{''.join(lines)}</svg>")


def write_svg(path: Path, matrix: np.ndarray, tokens: list[str], marks: list[int], title: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(svg(matrix, tokens, marks, title), encoding="utf-8")
