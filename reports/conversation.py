"""Conversation comparisons in the reports: per turn, what each row answered, whether it
passed its check, and each marked span's share of attention (the fade curve); over many
conversations, the pass rate and the mean share on the constraint (each conversation's
first marked span) per turn, baseline against each lens row."""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from lenscope.core.results import distinct_share
from lenscope.reports.svg import COLORS


def is_conversation(rec: dict[str, Any]) -> bool:
    return rec.get("kind") == "conversation"


def light(rec: dict[str, Any]) -> dict[str, Any]:
    """The record without each turn's full comparison results (the page's script reads none)."""
    conv = rec["conversation"]
    turns = [{k: v for k, v in t.items() if k != "results"} for t in conv["turns"]]
    return {**rec, "conversation": {**conv, "turns": turns}}


def summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per turn and row over every conversation record: how many were checked, how many
    passed, the mean share of attention on the first marked span, the mean share of
    distinct tokens in the replies and (when measured) their mean fluency."""
    convs = [r["conversation"] for r in records if is_conversation(r)]
    n_turns = max((len(c["turns"]) for c in convs), default=0)
    names: list[str] = []  # rows are matched by name: conversations may run different lenses
    for c in convs:
        for t in c["turns"]:
            names += [row["name"] for row in t["rows"] if row["name"] not in names]
    checked = np.zeros((len(names), n_turns), int)
    passed = np.zeros((len(names), n_turns), int)
    empty = lambda: [[[] for _ in range(n_turns)] for _ in names]
    shares, distinct, fluency = empty(), empty(), empty()
    for c in convs:
        for k, t in enumerate(c["turns"]):
            for row in t["rows"]:
                r = names.index(row["name"])
                if row.get("passed") is not None:
                    checked[r, k] += 1
                    passed[r, k] += bool(row["passed"])
                if row["shares"] and row["shares"][0] is not None:
                    shares[r][k].append(row["shares"][0])
                if row["token_ids"]:
                    distinct[r][k].append(distinct_share(row["token_ids"]))
                if row.get("fluency") is not None:
                    fluency[r][k].append(row["fluency"])
    mean = lambda cells: [[float(np.mean(v)) if v else None for v in per_turn] for per_turn in cells]
    return {"conversations": len(convs), "rows": names, "checked": checked.tolist(), "passed": passed.tolist(),
            "share": mean(shares), "distinct": mean(distinct), "fluency": mean(fluency)}


def _rate(s: dict[str, Any], r: int, k: int) -> str:
    n = s["checked"][r][k]
    return f"{s['passed'][r][k]}/{n}" if n else "-"


def summary_markdown(s: dict[str, Any], md) -> list[str]:
    """The summary's two tables (`md` escapes text for markdown)."""
    if s["conversations"] < 2:
        return []
    turns = range(len(s["checked"][0]) if s["checked"] else 0)
    head = "| row | " + " | ".join(f"turn {k + 1}" for k in turns) + " |"
    sep = "|---|" + "---|" * len(turns)
    lines = [f"## Over {s['conversations']} conversation(s)", "", "Checks passed per turn:", "", head, sep]
    lines += [f"| {md(name)} | " + " | ".join(_rate(s, r, k) for k in turns) + " |" for r, name in enumerate(s["rows"])]
    lines += ["", "Mean share of attention on the first marked span (the constraint) while answering:", "", head, sep]
    lines += [f"| {md(name)} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in s["share"][r]) + " |"
              for r, name in enumerate(s["rows"])]
    for key, what in (("distinct", "Share of distinct tokens in the reply (repetition lowers it):"),
                      ("fluency", "Fluency: mean log-probability of the reply's tokens under the plain model:")):
        if any(v is not None for per_turn in s.get(key, []) for v in per_turn):
            lines += ["", what, "", head, sep]
            lines += [f"| {md(name)} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in s[key][r]) + " |"
                      for r, name in enumerate(s["rows"])]
    return lines + [""]


def markdown_section(rec: dict[str, Any], md) -> list[str]:
    """One conversation: each turn's user message, every row's reply (with its check), and
    the share of each span. `md` escapes text for markdown."""
    conv = rec["conversation"]
    lines = [f"## {md(rec['comparison'])}", "",
             f"Conversation · {md(rec['model'])} · T={rec['temperature']} · seed {rec['seed']} · mode {conv['mode']}"
             + (f" · tracked: {md(', '.join(conv['concepts']))}" if conv["concepts"] else ""), ""]
    system = next((m["text"] for m in conv["messages"] if m["role"] == "system"), None)
    if system:
        lines += [f"System: {md(system)}", ""]
    for k, t in enumerate(conv["turns"]):
        lines += [f"**Turn {k + 1}.** User: {md(t['user'])}", "", "| row | reply | check | " +
                  " | ".join(f"share on {md(lb)}" for lb in t["spans"]) + " |",
                  "|---|---|---|" + "---|" * len(t["spans"])]
        for row in t["rows"]:
            check = "-" if row["passed"] is None else ("pass" if row["passed"] else "FAIL")
            shares = " | ".join("-" if v is None else f"{v:.3f}" for v in row["shares"])
            lines.append(f"| {md(row['name'])} | {md(row['text'])} | {check} | {shares} |")
        lines.append("")
    return lines


def html_section(c: int, rec: dict[str, Any], chart) -> str:
    """One conversation as HTML: the transcript turn by turn with every row's reply, and the
    fade chart per span (share per turn, one line per row). `chart` draws the SVG lines."""
    conv, fade = rec["conversation"], rec["fade"]
    marked = {}
    for m in conv["marks"]:
        marked.setdefault(m["message"], []).append((m["start"], m["end"]))
    parts = []
    system = next((i for i, m in enumerate(conv["messages"]) if m["role"] == "system"), None)
    if system is not None:
        text = _marked(conv["messages"][system]["text"], marked.get(system))
        parts.append(f"<p class='turn sys'><b>system</b> {text}</p>")
    user_index = [i for i, m in enumerate(conv["messages"]) if m["role"] == "user"]
    for k, t in enumerate(conv["turns"]):
        i = user_index[k] if k < len(user_index) else None
        parts.append(f"<p class='turn'><b>user {k + 1}</b> {_marked(t['user'], marked.get(i))}</p><div class='rows'>")
        for r, row in enumerate(t["rows"]):
            check = "" if row["passed"] is None else (" · <span class='pass'>pass</span>" if row["passed"]
                                                      else " · <span class='fail'>fail</span>")
            shares = " · ".join(f"{html.escape(lb)}: {v:.3f}" for lb, v in zip(t["spans"], row["shares"])
                                if v is not None)
            parts.append(f"<div class='row'><h3 style='color:{COLORS[r % len(COLORS)]}'>{html.escape(row['name'])}"
                         f"{check}</h3><div class='meta'>{shares}</div>"
                         f"<div class='out'>{html.escape(row['text'])}</div></div>")
        parts.append("</div>")
    charts = "".join(chart([(r, fade["shares"][lb][r]) for r in range(len(fade["rows"]))], f"share on {lb} per turn")
                     for lb in fade["labels"])
    charts += "".join(f"<p class='meta'>{html.escape(name)} holds the marks' share at: "
                      + " ".join("-" if v is None else f"{v:.3f}" for v in values) + "</p>"
                      for name, values in (fade.get("held") or {}).items())
    return (f"<section data-c='{c}' class='conversation'><h2>{html.escape(rec['comparison'])}</h2>"
            f"<p class='meta'>conversation · {html.escape(rec['model'])} · T={rec['temperature']:g} · "
            f"seed {rec['seed']} · mode {conv['mode']}</p>{''.join(parts)}<div class='charts'>{charts}</div></section>")


def _marked(text: str, spans: list[tuple[int, int]] | None) -> str:
    out, pos = [], 0
    for a, b in sorted(spans or []):
        if a < pos:
            continue
        out += [html.escape(text[pos:a]), f"<mark>{html.escape(text[a:b])}</mark>"]
        pos = b
    return "".join(out) + html.escape(text[pos:])


CHARTS = ("pass_rate.svg", "share.svg")  # written beside the reports over two or more conversations


def summary_charts(s: dict[str, Any], chart, standalone: bool = True) -> dict[str, str]:
    """The summary's two curves, pass rate and share per turn, as SVG files (`standalone`:
    with their namespace, which a page's inline SVG does not need)."""
    turns = len(s["checked"][0]) if s["checked"] else 0
    rates = [(r, [s["passed"][r][k] / s["checked"][r][k] if s["checked"][r][k] else None for k in range(turns)])
             for r in range(len(s["rows"]))]
    n = s["conversations"]
    charts = {"pass_rate.svg": chart(rates, f"checks passed per turn ({n} conversations)", top=1.0),
              "share.svg": chart(list(enumerate(s["share"])), "mean share of attention on the constraint")}
    if standalone:  # a file is read alone: it names its lines
        legend = "".join(f"<text x='200' y='{14 * (r + 1)}' font-size='11' fill='{COLORS[r % len(COLORS)]}'>━ "
                         f"{html.escape(name)}</text>" for r, name in enumerate(s["rows"]))
        charts = {name: svg.replace("<svg ", "<svg xmlns='http://www.w3.org/2000/svg' ", 1)
                  .replace("</svg>", legend + "</svg>") for name, svg in charts.items()}
    return charts


def html_summary(s: dict[str, Any], chart) -> str:
    if s["conversations"] < 2:
        return ""
    turns = len(s["checked"][0]) if s["checked"] else 0
    head = "<tr><th>row</th>" + "".join(f"<th>turn {k + 1}</th>" for k in range(turns)) + "</tr>"
    body = "".join(f"<tr><td style='color:{COLORS[r % len(COLORS)]}'>{html.escape(n)}</td>"
                   + "".join(f"<td>{_rate(s, r, k)}</td>" for k in range(turns)) + "</tr>"
                   for r, n in enumerate(s["rows"]))
    charts = summary_charts(s, chart, standalone=False)
    return (f"<section class='summary'><h2>Over {s['conversations']} conversations</h2>"
            f"<table><caption>checks passed per turn</caption>{head}{body}</table><div class='charts'>"
            + charts["pass_rate.svg"] + charts["share.svg"] + "</div></section>")
