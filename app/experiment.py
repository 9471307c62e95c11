"""`lenscope run EXPERIMENT.toml --out DIR`: a batch of comparisons and their report.

An experiment file holds optional top-level `model` and `[defaults]`, and one
`[[comparison]]` table per comparison with the options of `generate`:

    [defaults]
    max_tokens = 24
    [[comparison]]
    name = "recall"
    prompt = "the key is blue. ... answer: the key is"
    mark = ["blue"]
    lens = ["emphasis:strength=3", "lenses/focus.toml"]   # files relative to this file

Writes DIR/results.jsonl (one `generate --json` object per line, plus "comparison"),
DIR/report.md, DIR/report.html and DIR/heatmaps/*.svg (with capture_attention).
"""

from __future__ import annotations

import html
import json
import tomllib
from pathlib import Path
from typing import Any, Callable

import numpy as np
from rich.console import Console

from app.errors import BadInput
from app.heatmap import Heatmap
from app.session import atomic_write

KEYS = {"name", "prompt", "mark", "mark_tokens", "lens", "max_tokens", "temperature", "seed", "capture_attention"}


def load(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"experiment '{path}': not found")
    try:
        data = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"experiment '{path}': not valid TOML ({exc})") from None
    comparisons = data.get("comparison")
    if not isinstance(comparisons, list) or not comparisons:
        raise BadInput(f"experiment '{path}': needs at least one [[comparison]] table")
    defaults = data.get("defaults", {})
    out = []
    for i, c in enumerate(comparisons):
        merged = {**defaults, **c}
        where = f"experiment '{path}' comparison {i + 1}"
        unknown = set(merged) - KEYS
        if unknown:
            raise BadInput(f"{where}: unknown key '{sorted(unknown)[0]}' (keys: {', '.join(sorted(KEYS))})")
        if not isinstance(merged.get("prompt"), str) or not merged["prompt"].strip():
            raise BadInput(f"{where}: 'prompt' must be non-empty text")
        lenses = merged.get("lens", [])
        merged["lens"] = [str((p.parent / s)) if s.endswith((".toml", ".json")) else s
                          for s in ([lenses] if isinstance(lenses, str) else lenses)]
        merged["mark"] = [merged["mark"]] if isinstance(merged.get("mark"), str) else list(merged.get("mark", []))
        merged.setdefault("name", f"comparison {i + 1}")
        out.append(merged)
    return {"model": data.get("model"), "comparisons": out}


def run(engine, experiment: dict[str, Any], out_dir: Path, progress: Callable[[str], None] = print) -> list[dict]:
    from app.capture import row_attention
    from app.engine import Request
    from lenses.spec import parse

    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for i, c in enumerate(experiment["comparisons"]):
        progress(f"[{i + 1}/{len(experiment['comparisons'])}] {c['name']}")
        variants = [v for s in c["lens"] for v in parse(s)]
        ids = engine.encode(c["prompt"])
        marks = set(engine.marks_from_text(c["prompt"], ids, c["mark"])) if c["mark"] else set()
        marks |= set(engine.check_marks(c.get("mark_tokens", []), len(ids)))
        comparison = engine.compare(Request(c["prompt"], variants, sorted(marks), int(c.get("max_tokens", 32)),
                                            float(c.get("temperature", 0.0)), int(c.get("seed", 0))))
        result = comparison.run()
        record = {"comparison": c["name"], **result.to_json()}
        if c.get("capture_attention"):
            svgs = []
            for r, row in enumerate(result.rows):
                probs = row_attention(engine, result, comparison.variants, r)
                tokens = result.prompt_tokens + row.tokens
                name = f"heatmaps/{i + 1:03d}-{r}.svg"
                write_svg(out_dir / name, probs.mean(axis=(0, 1)), tokens, result.marked_token_indices,
                          f"{c['name']} · {row.name} · mean over layers and heads")
                svgs.append(name)
            record["heatmaps"] = svgs
        results.append(record)
    atomic_write(out_dir / "results.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results))
    atomic_write(out_dir / "report.md", markdown(results))
    atomic_write(out_dir / "report.html", to_html(results))
    return results


def write_svg(path: Path, matrix: np.ndarray, tokens: list[str], marks: list[int], title: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    width = min(220, len(tokens) + 20)
    console = Console(record=True, width=width, file=open("/dev/null", "w"), color_system="truecolor")
    console.print(Heatmap(matrix, tokens, tokens, marked=marks, title=title))
    atomic_write(path, console.export_svg(title=title))


def _mean(xs: list) -> str:
    vals = [x for x in xs if x is not None]
    return f"{np.mean(vals):.3f}" if vals else "-"


def markdown(results: list[dict]) -> str:
    lines = ["# lenscope report", ""]
    for rec in results:
        lines += [f"## {rec['comparison']}", "", f"Prompt: `{rec['prompt']}`", "",
                  f"Model {rec['model']} · T={rec['temperature']} · seed {rec['seed']} · marked tokens: "
                  f"{rec['marked_token_indices'] or 'none'}", "",
                  "| row | output | first divergence | mean KL (same prefix) | attention on marks |",
                  "|---|---|---|---|---|"]
        for row in rec["rows"]:
            text = row["text"].replace("|", "\\|").replace("\n", " ")
            div = "-" if row["first_divergence"] is None else row["first_divergence"]
            flag = "" if row["finite"] else " (NaN)"
            lines.append(f"| {row['name']}{flag} | {text} | {div} | {_mean(row['kl_from_baseline'])} | "
                         f"{_mean(row['attention_to_marks'])} |")
        for svg in rec.get("heatmaps", []):
            lines.append(f"\n![attention]({svg})")
        lines.append("")
    return "\n".join(lines)


def to_html(results: list[dict]) -> str:
    parts = ["<!doctype html><meta charset='utf-8'><title>lenscope report</title>",
             "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}td,th{border:1px solid #ccc;"
             "padding:.3em;vertical-align:top}table{border-collapse:collapse}img{max-width:100%}</style>",
             "<h1>lenscope report</h1>"]
    for rec in results:
        parts.append(f"<h2>{html.escape(rec['comparison'])}</h2><p>Prompt: <code>{html.escape(rec['prompt'])}</code>"
                     f"</p><table><tr><th>row</th><th>output</th><th>first divergence</th><th>mean KL</th>"
                     f"<th>attention on marks</th></tr>")
        for row in rec["rows"]:
            div = "-" if row["first_divergence"] is None else row["first_divergence"]
            parts.append(f"<tr><td>{html.escape(row['name'])}</td><td>{html.escape(row['text'])}</td><td>{div}</td>"
                         f"<td>{_mean(row['kl_from_baseline'])}</td><td>{_mean(row['attention_to_marks'])}</td></tr>")
        parts.append("</table>")
        parts += [f"<p><img src='{html.escape(svg)}' alt='attention heatmap'></p>" for svg in rec.get("heatmaps", [])]
    return "\n".join(parts) + "\n"
