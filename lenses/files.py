"""Reading the user's data files (lens, experiment, session) safely.

`read` turns every way a file can be bad (missing, a folder, unreadable, not UTF-8, not
TOML/JSON, absurdly deep, lone surrogates) into one BadInput line, so the callers only
check meaning. It sits in lenses/ because lens files are read here; storage/datafile.py
re-exports it next to `dumps`, the one way lenscope writes JSON.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

from lenscope.lenses.errors import BadInput

MAX_DEPTH = 32  # our files nest ~6 deep; far deeper is corrupt or hostile (and recursion-unsafe)


def read(path: str | Path, where: str, fmt: str | None = None) -> Any:
    """Parse a .toml or .json file (`fmt`, else its suffix); `where` names it in errors."""
    fmt = fmt or Path(path).suffix.lstrip(".").lower()
    if fmt not in ("toml", "json"):
        raise BadInput(f"{where}: use .toml or .json")
    text = read_text(path, where)
    try:
        data = tomllib.loads(text) if fmt == "toml" else json.loads(text)
    except RecursionError:
        raise BadInput(f"{where}: nested too deeply") from None
    except ValueError as exc:  # TOMLDecodeError, JSONDecodeError, too many digits
        raise BadInput(f"{where}: not valid {fmt.upper()} ({str(exc).splitlines()[0][:200]})") from None
    check(data, where)
    return data


def user_path(path: str | Path, where: str) -> Path:
    """A path as the user wrote it, `~` and `~user` expanded: the one place that is done, so
    an unknown user or a NUL byte is one line everywhere (pathlib raises RuntimeError)."""
    try:
        text = os.fspath(path)
        if "\0" in text:
            raise BadInput(f"{where}: the path holds a NUL byte")
        return Path(text).expanduser()
    except RuntimeError:
        raise BadInput(f"{where}: '{str(path).split('/')[0]}' names no user with a home folder") from None


def read_text(path: str | Path, where: str, limit: int | None = None) -> str:
    """A UTF-8 text file's content (at most `limit` bytes); every way it can be unreadable
    is one BadInput line."""
    p = user_path(path, where)
    try:
        if p.is_dir():
            raise BadInput(f"{where}: is a folder, not a file")
        if not p.exists():
            raise BadInput(f"{where}: not found")
        if not p.is_file():  # a FIFO or device would block or never end
            raise BadInput(f"{where}: not a regular file")
        if limit is not None and p.stat().st_size > limit:
            raise BadInput(f"{where}: larger than {limit >> 10} KiB")
        raw = p.read_bytes()
    except OSError as exc:
        raise BadInput(f"{where}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:  # e.g. a NUL byte in the path
        raise BadInput(f"{where}: {exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{where}: not UTF-8 text (byte {exc.start})") from None


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
