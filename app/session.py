"""Sessions: prompt, marks, variants, settings and outputs as one plain JSON file.

Written atomically (temp file + rename in the same folder) so a crash mid-save never
leaves a half-written session over a good one.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.errors import BadInput
from lenses.base import Variant
from lenses.spec import to_data, variants_from_data

FORMAT = "lenscope-session"
VERSION = 1


@dataclass
class Session:
    prompt: str = ""
    marks: list[int] = field(default_factory=list)
    variants: list[Variant] = field(default_factory=list)
    model: str | None = None
    seed: int = 0
    temperature: float = 0.0
    max_tokens: int = 48
    result: dict[str, Any] | None = None  # RunResult.to_json() of the last run

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "version": VERSION, "model": self.model, "prompt": self.prompt,
            "marks": self.marks, "variants": to_data(self.variants)["variant"],
            "settings": {"seed": self.seed, "temperature": self.temperature, "max_tokens": self.max_tokens},
            "result": self.result,
        }


def atomic_write(path: str | Path, text: str) -> Path:
    """Write a whole file or nothing: a temp file in the same folder, then rename."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise BadInput(f"'{path}': is a folder")
    if not p.parent.exists():
        raise BadInput(f"'{path}': folder {p.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def save(session: Session, path: str | Path) -> Path:
    return atomic_write(path, json.dumps(session.to_json(), indent=1, ensure_ascii=False) + "\n")


def load(path: str | Path) -> Session:
    p = Path(path).expanduser()
    where = f"session '{path}'"
    if not p.is_file():
        raise BadInput(f"{where}: not found")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BadInput(f"{where}: not a lenscope session (no \"format\": \"{FORMAT}\")")
    if data.get("version", 0) > VERSION:
        raise BadInput(f"{where}: version {data['version']} is newer than this lenscope reads ({VERSION})")
    settings = data.get("settings") or {}
    try:
        marks = [int(m) for m in data.get("marks") or []]
        seed = int(settings.get("seed", 0))
        temperature = float(settings.get("temperature", 0.0))
        max_tokens = int(settings.get("max_tokens", 48))
    except (TypeError, ValueError):
        raise BadInput(f"{where}: marks and settings must be numbers") from None
    prompt = data.get("prompt", "")
    if not isinstance(prompt, str):
        raise BadInput(f"{where}: 'prompt' must be text")
    variants = variants_from_data({"variant": data["variants"]}, where) if data.get("variants") else []
    result = data.get("result")
    if result is not None and not (isinstance(result, dict) and isinstance(result.get("rows"), list)):
        raise BadInput(f"{where}: 'result' is not a comparison result")
    return Session(prompt=prompt, marks=marks, variants=variants, model=data.get("model"), seed=seed,
                   temperature=temperature, max_tokens=max_tokens, result=result)
