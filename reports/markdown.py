"""Markdown reports: `md_escape`, the one way model output and names reach Markdown, and
report.md of a run (`lenscope run`, and the TUI's export)."""

from __future__ import annotations

import re
from typing import Any

from lenscope.core.results import finite_mean
from lenscope.reports import conversation as cr

_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}()#+!|~<>&-])")


def md_escape(text: Any) -> str:
    """Text that Markdown shows as written, on one line (a heading or a table cell cannot span
    lines): Markdown syntax and HTML's `<`, `>`, `&` backslashed, so a chat prompt reads
    `\\<|im_start|\\>` in the file and `<|im_start|>` rendered, never as HTML entities."""
    return _MD_SPECIAL.sub(r"\\\1", re.sub(r"\s*[\r\n]+\s*", " ", str(text)))


def _mean(xs: list) -> str:
    m = finite_mean(xs)
    return "-" if m is None else f"{m:.3f}"


def markdown(results: list[dict]) -> str:
    lines = ["# lenscope report", "", *cr.summary_markdown(cr.summary(results), md_escape)]
    for rec in results:
        if cr.is_conversation(rec):
            lines += cr.markdown_section(rec, md_escape)
            continue
        marked = rec["marked_token_indices"] or "none"
        lines += [f"## {md_escape(rec['comparison'])}", "", f"Prompt: {md_escape(rec['prompt'])}", "",
                  (f"Model {md_escape(rec['model'])} · T={rec['temperature']} · seed {rec['seed']} · marked tokens: "
                   f"{md_escape(marked)}"), "",
                  "| row | output | first divergence | mean KL (same prefix) | attention on marks |",
                  "|---|---|---|---|---|"]
        for row in rec["rows"]:
            div = "-" if row["first_divergence"] is None else row["first_divergence"]
            flag = "" if row["finite"] else " (NaN)"
            lines.append(f"| {md_escape(row['name'])}{flag} | {md_escape(row['text'])} | {div} | "
                         f"{_mean(row['kl_from_baseline'])} | {_mean(row['attention_to_marks'])} |")
        for svg in rec.get("heatmaps", []):
            lines.append(f"\n![attention]({svg})")
        lines.append("")
    return "\n".join(lines)
