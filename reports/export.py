"""A comparison's reports written into a folder: report.html and report.md, each atomically
(the TUI's export; `lenscope run` writes the same two per run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lenscope.errors import BadInput, user_path
from lenscope.reports.html import render
from lenscope.reports.markdown import markdown
from lenscope.storage.files import atomic_write


def write_reports(folder: str | Path, results: list[dict], meta: dict[str, Any]) -> list[Path]:
    """report.html and report.md of `results` into `folder` (made if missing), each written
    atomically: what the TUI's export writes for the comparison on screen."""
    out = user_path(folder, f"export '{folder}'")
    if out.exists() and not out.is_dir():
        raise BadInput(f"export '{folder}': is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"export '{folder}': cannot make it ({exc.strerror or exc})") from None
    return [atomic_write(out / "report.html", render(results, meta)), atomic_write(out / "report.md", markdown(results))]
