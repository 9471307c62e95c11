"""The user's data files (lens, experiment, session): reading them, and writing JSON.

`read` turns every way a file can be bad (missing, a folder, unreadable, not UTF-8, not
TOML/JSON, absurdly deep, lone surrogates) into one BadInput line, so the callers only
check meaning. `dumps` is the one way lenscope writes JSON: non-finite numbers become
null, so NaN/Infinity (which are not JSON) never reach a file or stdout.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

from app.errors import BadInput

MAX_DEPTH = 32  # our files nest ~6 deep; far deeper is corrupt or hostile (and recursion-unsafe)


def read(path: str | Path, where: str, fmt: str | None = None) -> Any:
    """Parse a .toml or .json file (`fmt`, else its suffix); `where` names it in errors."""
    p = Path(path).expanduser()
    fmt = fmt or p.suffix.lstrip(".").lower()
    if fmt not in ("toml", "json"):
        raise BadInput(f"{where}: use .toml or .json")
    try:
        if p.is_dir():
            raise BadInput(f"{where}: is a folder, not a file")
        if not p.exists():
            raise BadInput(f"{where}: not found")
        if not p.is_file():  # a FIFO or device would block or never end
            raise BadInput(f"{where}: not a regular file")
        raw = p.read_bytes()
    except OSError as exc:
        raise BadInput(f"{where}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:  # e.g. a NUL byte in the path
        raise BadInput(f"{where}: {exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{where}: not UTF-8 text (byte {exc.start})") from None
    try:
        data = tomllib.loads(text) if fmt == "toml" else json.loads(text)
    except RecursionError:
        raise BadInput(f"{where}: nested too deeply") from None
    except ValueError as exc:  # TOMLDecodeError, JSONDecodeError, too many digits
        raise BadInput(f"{where}: not valid {fmt.upper()} ({str(exc).splitlines()[0][:200]})") from None
    check(data, where)
    return data


def check(data: Any, where: str) -> None:
    """Refuse data nested deeper than MAX_DEPTH or holding text that is not valid unicode
    (JSON's "\\ud800" escapes give lone surrogates, which cannot be printed or saved)."""
    stack = [(data, 1)]  # iterative: the point is to not trust the depth
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise BadInput(f"{where}: text {value[:40]!r} is not valid unicode (lone surrogate)") from None
        elif isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise BadInput(f"{where}: nested deeper than {MAX_DEPTH} levels")
            items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            stack.extend((v, depth + 1) for v in items)


def dumps(data: Any, indent: int | None = None) -> str:
    """JSON text of `data`, standard JSON only: NaN and infinities are written as null."""
    try:
        text = json.dumps(data, ensure_ascii=False, allow_nan=False, indent=indent)
    except ValueError:  # a non-finite float somewhere: null it, never write NaN/Infinity
        text = json.dumps(_finite(data), ensure_ascii=False, allow_nan=False, indent=indent)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: \u-escape it rather than fail to print or save
        text = json.dumps(_finite(data), ensure_ascii=True, allow_nan=False, indent=indent)
    return text


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
