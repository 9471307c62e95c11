"""One parser and validator for lens specs, inline or in TOML/JSON files.

Inline: `KIND[:key=value,...]`, stacked with `+`; list values use `|`;
keyframed numbers are `value@step|value@step`.
Files: either one stack at top level (`kind = ...` or `[[lens]]`), or several
variants: `[[variant]]` tables with `name` and `[[variant.lens]]` entries.
Nothing in a spec or file is ever executed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lenscope.lenses import files
from lenscope.lenses.base import Lens, Variant
from lenscope.lenses.errors import BadInput
from lenscope.lenses.registry import KINDS


def build_lens(entry: dict[str, Any], where: str) -> Lens:
    if not isinstance(entry, dict):
        raise BadInput(f"{where}: a lens must be a table with a 'kind'")
    entry = dict(entry)
    kind = entry.pop("kind", None)
    if not isinstance(kind, str) or kind not in KINDS:
        shown = f"'{kind}'" if isinstance(kind, str) else repr(kind)[:60]
        raise BadInput(f"{where}: unknown lens kind {shown} (known: {', '.join(KINDS)})")
    cls = KINDS[kind]
    params = {p.name: p for p in cls.params}
    values = {}
    for key, raw in entry.items():
        if key not in params:
            allowed = ", ".join(params) or "none"
            raise BadInput(f"{where}: lens '{kind}' has no key '{key}' (keys: {allowed})")
        values[key] = params[key].parse(raw, f"{where} {kind}")
    return cls(**values)


def _split(text: str, sep: str, where: str) -> list[str]:
    """Split on `sep` outside double quotes (a quoted value may hold , | + : or =)."""
    parts, cur, quoted, i = [], [], False, 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and quoted and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    if quoted:
        raise BadInput(f"{where}: a double quote is not closed")
    return parts + ["".join(cur)]


def _unquote(value: str) -> tuple[str, bool]:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\"), True
    return value, False


def parse_inline(text: str) -> Variant:
    """`emphasis:strength=3+steer:layers=2` -> one Variant named by the text.
    `patch:source="a, b: c"` quotes a value; a quoted value is one item, never a list."""
    where = f"lens spec '{text}'"
    if not text.strip():
        raise BadInput("lens spec: empty")
    lenses = []
    for part in _split(text, "+", where):
        kind, _, rest = part.strip().partition(":")
        entry: dict[str, Any] = {"kind": kind.strip()}
        cls = KINDS.get(kind.strip())
        types = {p.name: p.type for p in cls.params} if cls else {}
        for item in filter(None, (s.strip() for s in _split(rest, ",", where))):
            key, eq, value = item.partition("=")
            if not eq:
                raise BadInput(f"{where}: '{item}' is not key=value")
            value, quoted = _unquote(value.strip())
            key = key.strip()
            entry[key] = [value] if quoted and types.get(key) == "strs" else value
        lenses.append(build_lens(entry, where))
    return Variant(name=text.strip(), lenses=lenses)


def read_file(path: str | Path) -> dict[str, Any]:
    data = files.read(path, f"lens file '{path}'")
    if not isinstance(data, dict):
        raise BadInput(f"lens file '{path}': the top level must be an object")
    return data


def variants_from_data(data: dict[str, Any], where: str) -> list[Variant]:
    if "variant" in data or "variants" in data:
        entries = data.get("variant", data.get("variants"))
        if not isinstance(entries, list) or not entries:
            raise BadInput(f"{where}: 'variant' must be a non-empty list")
        out = []
        for i, v in enumerate(entries):
            if not isinstance(v, dict):
                raise BadInput(f"{where}: variant {i + 1} must be a table")
            name = _name(v, f"variant {i + 1}", f"{where} variant {i + 1}")
            out.append(Variant(name, _stack(v, f"{where} variant '{name}'")))
        return out
    return [Variant(_name(data, where, where), _stack(data, where))]


def _name(table: dict[str, Any], default: str, where: str) -> str:
    name = table.get("name")
    if name is None or name == "":
        return default
    if not isinstance(name, str):
        raise BadInput(f"{where}: 'name' must be text, got {type(name).__name__}")
    return name


def _stack(table: dict[str, Any], where: str) -> list[Lens]:
    entries = table.get("lens", table.get("lenses"))
    if entries is None:
        entry = {k: v for k, v in table.items() if k != "name"}
        return [build_lens(entry, where)]
    if isinstance(entries, dict):
        entries = [entries]
    if not isinstance(entries, list) or not entries:
        raise BadInput(f"{where}: 'lens' must be a non-empty list of tables")
    return [build_lens(e, f"{where} lens {i + 1}") for i, e in enumerate(entries)]


def expand_points(variant: Variant) -> list[Variant]:
    """A lens with `points=k` (slerp) becomes k rows at equidistant t in [0, 1]."""
    for i, lens in enumerate(variant.lenses):
        k = getattr(lens, "points", 0)
        if k and k > 1:
            out = []
            for j in range(k):
                t = j / (k - 1)
                entry = {**lens.normalized(), "t": t, "points": 0}
                stack = variant.lenses[:i] + [build_lens(entry, variant.name)] + variant.lenses[i + 1 :]
                out.append(Variant(f"{variant.name} t={t:.2f}", stack))
            return out
    return [variant]


def parse(spec: str) -> list[Variant]:
    """A --lens value: a .toml/.json file (one or more variants) or an inline spec."""
    if spec.endswith((".toml", ".json")):
        variants = variants_from_data(read_file(spec), f"lens file '{spec}'")
    else:
        variants = [parse_inline(spec)]
    return [row for v in variants for row in expand_points(v)]


def to_data(variants: list[Variant]) -> dict[str, Any]:
    """The file form of variants (what `read_file` + `variants_from_data` read back)."""
    return {"variant": [{"name": v.name, "lens": [lens.normalized() for lens in v.lenses]} for v in variants]}
