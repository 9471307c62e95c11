"""`lenscope diff RUN_A RUN_B`: which comparisons changed between two runs of an experiment.

Comparisons are matched by name, rows within them by name. A row changed when its tokens
differ; for each change it says where the outputs first part, and how the first
divergence from the baseline and the mean attention on the marks moved. A row renamed in
place is compared as one row; comparisons or rows only in one run are listed as such.
"""

from __future__ import annotations

import html
from functools import partial
from pathlib import Path
from typing import Any

from lenscope.core.results import finite_mean
from lenscope.errors import BadInput
from lenscope.reports.conversation import is_conversation
from lenscope.storage.datafile import json_lines


def load_run(path: str | Path) -> dict[str, dict[str, Any]]:
    """A run folder's (or a results.jsonl file's) comparisons by name."""
    p = Path(path)
    p = p / "results.jsonl" if p.is_dir() else p
    out = {}
    where = f"run '{path}'" + (f": {p.name}" if p != Path(path) else "")
    # a cut last line (a killed run) is refused, not left out: a diff must not miss a comparison
    for n, rec in enumerate(json_lines(p, where, cut_last=False), 1):
        try:
            found = _turns(rec) if is_conversation(rec) else {str(rec["comparison"]): rec}
            ok = all(isinstance(row["name"], str) and isinstance(row["text"], str) and isinstance(row["token_ids"], list)
                     for comp in found.values() for row in comp["rows"])
        except (KeyError, TypeError, AttributeError):
            ok = False
        if not ok:
            raise BadInput(f"run '{path}': line {n} of {p.name} is not a comparison result")
        out.update(found)
    return out


def _turns(rec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A conversation compared turn by turn: each turn's rows as a comparison's."""
    out = {}
    for k, t in enumerate(rec["conversation"]["turns"]):
        rows = [{"name": r["name"], "text": r["text"], "token_ids": r["token_ids"], "first_divergence": None,
                 "attention_to_marks": [sum(v for v in r["shares"] if v is not None)]} for r in t["rows"]]
        out[f"{rec['comparison']} · turn {k + 1}"] = {"rows": rows}
    return out


def _first_difference(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def _compare(name: str, ra: dict[str, Any], rb: dict[str, Any]) -> dict[str, Any]:
    return {"row": name, "text_a": ra["text"], "text_b": rb["text"],
            "token_ids_a": ra["token_ids"], "token_ids_b": rb["token_ids"],
            "parts_at": _first_difference(ra["token_ids"], rb["token_ids"]),
            "first_divergence": [ra["first_divergence"], rb["first_divergence"]],
            "attention_on_marks": [finite_mean(ra["attention_to_marks"]), finite_mean(rb["attention_to_marks"])]}


def diff(a: dict[str, dict], b: dict[str, dict]) -> dict[str, Any]:
    """Per comparison in both runs, its rows that changed (docs/json/diff.schema.json). A row
    only in A and a row only in B at the same place among the rows is one row renamed
    (`renamed_from`), compared like the others; the rest are `only_in` one run."""
    changed = []
    for name in [n for n in a if n in b]:
        rows_a = {r["name"]: r for r in a[name]["rows"]}
        rows_b = {r["name"]: r for r in b[name]["rows"]}
        rows = [_compare(row, rows_a[row], rows_b[row]) for row in rows_a if row in rows_b
                and rows_a[row]["token_ids"] != rows_b[row]["token_ids"]]
        place_a = {i: r["name"] for i, r in enumerate(a[name]["rows"]) if r["name"] not in rows_b}
        place_b = {i: r["name"] for i, r in enumerate(b[name]["rows"]) if r["name"] not in rows_a}
        for i in sorted(place_a.keys() & place_b.keys()):
            rows.append({**_compare(place_b[i], rows_a[place_a[i]], rows_b[place_b[i]]), "renamed_from": place_a[i]})
        for side, place, by_name in (("a", place_a, rows_a), ("b", place_b, rows_b)):
            rows += [{"row": n, "only_in": side, "text": by_name[n]["text"], "token_ids": by_name[n]["token_ids"]}
                     for i, n in place.items() if i not in place_a.keys() & place_b.keys()]
        if rows:
            changed.append({"comparison": name, "rows": sorted(rows, key=lambda r: r["row"])})
    return {"changed": changed, "only_in_a": [n for n in a if n not in b], "only_in_b": [n for n in b if n not in a],
            "unchanged": sum(1 for n in a if n in b) - len(changed)}


def _num(x: Any, none: str) -> str:
    return none if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def to_html(d: dict[str, Any], a: str, b: str) -> str:
    num = partial(_num, none="–")

    parts = [("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>lenscope diff</title><style>"
             "body{font:15px system-ui,sans-serif;max-width:70em;margin:2em auto}td,th{border:1px solid #ccc;"
             "padding:.3em;vertical-align:top}table{border-collapse:collapse}code{white-space:pre-wrap}</style>"
             f"</head><body><h1>lenscope diff</h1><p>A: <code>{html.escape(a)}</code><br>B: <code>{html.escape(b)}"
             f"</code></p><p>{len(d['changed'])} changed, {d['unchanged']} unchanged</p>")]
    for c in d["changed"]:
        parts.append(f"<h2>{html.escape(c['comparison'])}</h2><table><tr><th>row</th><th>A</th><th>B</th>"
                     "<th>parts at</th><th>first divergence A → B</th><th>attention on marks A → B</th></tr>")
        for r in c["rows"]:
            if "only_in" in r:
                side = f"<td colspan='2'><code>{html.escape(r['text'])}</code></td><td colspan='3'></td>"
                parts.append(f"<tr><td>{html.escape(r['row'])} (only in {r['only_in'].upper()})</td>"
                             + (side if r["only_in"] == "a" else f"<td></td>{side}") + "</tr>")
                continue
            fd, am = r["first_divergence"], r["attention_on_marks"]
            renamed = f" (was {html.escape(r['renamed_from'])})" if "renamed_from" in r else ""
            parts.append(f"<tr><td>{html.escape(r['row'])}{renamed}</td><td><code>{html.escape(r['text_a'])}</code></td>"
                         f"<td><code>{html.escape(r['text_b'])}</code></td><td>{num(r['parts_at'])}</td>"
                         f"<td>{num(fd[0])} → {num(fd[1])}</td><td>{num(am[0])} → {num(am[1])}</td></tr>")
        parts.append("</table>")
    for key, label in (("only_in_a", "only in A"), ("only_in_b", "only in B")):
        if d[key]:
            parts.append(f"<p>{label}: {html.escape(', '.join(d[key]))}</p>")
    return "\n".join(parts) + "</body></html>\n"


def to_text(d: dict[str, Any]) -> list[str]:
    """The diff for the terminal, one line each (as the HTML page says it): per changed row
    both outputs, where they part, first divergence and attention on the marks A -> B."""
    num = partial(_num, none="-")
    lines = [f"{len(d['changed'])} changed, {d['unchanged']} unchanged"]
    for c in d["changed"]:
        lines.append(f"{c['comparison']}:")
        for r in c["rows"]:
            if "only_in" in r:
                lines.append(f"  {r['row']}: only in {r['only_in'].upper()}: {r['text']!r}")
                continue
            fd, am = r["first_divergence"], r["attention_on_marks"]
            name = f"{r['row']} (was {r['renamed_from']})" if "renamed_from" in r else r["row"]
            lines += [(f"  {name}: parts at token {num(r['parts_at'])} · first divergence {num(fd[0])} -> {num(fd[1])}"
                      f" · attention on marks {num(am[0])} -> {num(am[1])}"),
                      f"    A: {r['text_a']!r}", f"    B: {r['text_b']!r}"]
    for key, label in (("only_in_a", "only in A"), ("only_in_b", "only in B")):
        if d[key]:
            lines.append(f"{label}: {', '.join(d[key])}")
    return lines
