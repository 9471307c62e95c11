"""The files lenscope reads and did not just write (lens, experiment, session, results,
shards, search results): reading them, and writing JSON.

`read` and `read_text` (in lenses/files.py, as lens files are read there too) and
`json_lines` here turn every way a file can be bad into one BadInput line naming it (a
FIFO, device or folder, too large, not UTF-8, unreadable, not JSON, nested too deep), so
the callers only check meaning. `dumps` is the one way
lenscope writes JSON: non-finite numbers become null, so NaN/Infinity (which are not
JSON) never reach a file or stdout.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from lenscope.errors import BadInput
from lenscope.lenses.files import MAX_DEPTH, check, read, read_text  # noqa: F401 (re-exported: one reader for every file)

LINES_LIMIT = 1 << 30  # a results.jsonl or shard past 1 GiB is not one of ours


def json_lines(path: str | Path, where: str, cut_last: bool = True) -> list[Any]:
    """Each line of a JSON-lines file, parsed and checked; a bad line is one BadInput naming
    the file and the line, except (`cut_last`) a last line a killed writer cut off, which is
    left out. Read through `read_text`: a regular file of at most LINES_LIMIT bytes."""
    lines = read_text(path, where, LINES_LIMIT).splitlines()
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except RecursionError:
            raise BadInput(f"{where}: line {n} is nested too deeply") from None
        except ValueError:
            if cut_last and n == len(lines):
                break
            raise BadInput(f"{where}: line {n} is not JSON") from None
        check(item, f"{where}: line {n}")
        out.append(item)
    return out


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
