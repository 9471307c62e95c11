"""The one way user and model text reaches a markup string: as a `$name` value.

Textual's markup reads `[Red]`, `[$x]`, `[ x ]` and a trailing backslash as markup, and
neither rich's nor textual's `escape` covers them all; values substituted by
`Content.from_markup` are never parsed, so a lens spec, a prompt or a token shows as typed.
"""

from __future__ import annotations

from textual.content import Content


def safe(template: str, **values: object) -> Content:
    """`template` is markup written here; `values` (user or model text) are shown as they are."""
    return Content.from_markup(template, **{k: str(v) for k, v in values.items()})
