"""The user's data files (lens, experiment, session): reading them, and writing JSON.

`read` (in lenses/files.py, as lens files are read there too) turns every way a file can
be bad into one BadInput line, so the callers only check meaning. `dumps` is the one way
lenscope writes JSON: non-finite numbers become null, so NaN/Infinity (which are not
JSON) never reach a file or stdout.
"""

from __future__ import annotations

import json
import math
from typing import Any

from lenscope.lenses.files import MAX_DEPTH, check, read  # noqa: F401  (reading is shared with lens files)


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
