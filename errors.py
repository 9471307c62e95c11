"""The one exception type for bad user input, and how its message reaches a terminal.

The CLI prints its message as one line on stderr and exits 2; the TUI shows it as a
notification and keeps running. The message names the input and what is wrong.
`BadInput` itself is defined in lenses/errors.py (the bottom layer) and re-exported here.
"""

import re

from lenscope.lenses.errors import BadInput
from lenscope.lenses.files import user_path

__all__ = ["BadInput", "one_line", "reason", "user_path"]


# What must never reach a terminal raw: C0/C1 controls and DEL (escape sequences, bells,
# line breaks), Unicode line separators, bidi overrides and lone surrogates (unprintable).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def one_line(text: str) -> str:
    """`text` as one printable line: unsafe characters escaped as repr() writes them
    (`\\n`, `\\x1b`, `\\udcff`), every other character, any script or emoji, kept."""
    return _UNSAFE.sub(lambda m: repr(m.group())[1:-1], text)


def reason(exc: BaseException, limit: int = 300) -> str:
    """An exception as one printable line: a BadInput says it all, anything else is named."""
    text = str(exc) if isinstance(exc, BadInput) else f"{type(exc).__name__}: {exc}"
    return one_line(" ".join(text.split()))[:limit]
