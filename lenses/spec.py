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

from lenscope.lenses import adapter, files
from lenscope.lenses.base import Lens, Variant
from lenscope.lenses.errors import BadInput
from lenscope.lenses.params import Keyframes, number_text, quote
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


def _quoted(value: str) -> str | None:
    """The text of a value that is one double-quoted string (`"a, b"`), its `\\"` and `\\\\`
    undone (other backslashes stay); None when it is not one."""
    if len(value) < 2 or value[0] != '"':
        return None
    out, i = [], 1
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value) and value[i + 1] in '"\\':
            out.append(value[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out) if i == len(value) - 1 else None
        out.append(ch)
        i += 1
    return None


def _unquote(value: str) -> tuple[str, bool]:
    text = _quoted(value)
    if text is not None:
        return text, True
    if len(value) >= 2 and value[0] == value[-1] == '"':  # "a"b": the outer quotes go, as they always did
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\"), True
    return value, False


def _items(value: str, where: str) -> list[str]:
    """A list value with quotes: `"a, b"|c|"d|e"` -> [a, b; c; d|e] (each item may be quoted)."""
    out = []
    for piece in _split(value, "|", where):
        text = _quoted(piece.strip())
        if text is not None:
            out.append(text)
        elif piece:
            out.append(piece)
    return out


def _hint(key: str, value: str, sep: str) -> str:
    return f"; quote a value that holds '{sep}': {key}={quote(value)}"


def parse_inline(text: str) -> Variant:
    """`emphasis:strength=3+steer:layers=2` -> one Variant named by the text.
    `patch:source="a, b: c"` quotes a value; a quoted value is one item, never a list
    (`bias:words="a|b"|c` is two words, `a|b` and `c`). `Lens.label()` writes this form back."""
    where = f"lens spec '{text}'"
    if not text.strip():
        raise BadInput("lens spec: empty")
    lenses = []
    last: tuple[str, str] | None = None  # the key=value before a '+': the '+' may belong to its value
    for part in _split(text, "+", where):
        kind, colon, rest = part.strip().partition(":")
        kind = kind.strip()
        if kind not in KINDS and not colon and last is not None:
            raise BadInput(f"{where}: unknown lens kind '{kind}' (known: {', '.join(KINDS)})"
                           + _hint(last[0], f"{last[1]}+{part.split(',')[0]}", "+"))
        entry: dict[str, Any] = {"kind": kind}
        cls = KINDS.get(kind)
        types = {p.name: p.type for p in cls.params} if cls else {}
        raw = _split(rest, ",", where)
        last, at = None, 0
        for n, item in enumerate(s.strip() for s in raw):
            if not item:
                continue
            key, eq, value = item.partition("=")
            if not eq:
                if last is None:
                    raise BadInput(f"{where}: '{item}' is not key=value")
                end = next((m for m in range(n + 1, len(raw)) if "=" in raw[m]), len(raw))
                whole = ",".join([raw[at].partition("=")[2], *raw[at + 1 : end]]).strip()  # what the commas cut
                raise BadInput(f"{where}: '{item}' is not key=value" + _hint(last[0], whole, ","))
            key, value = key.strip(), value.strip()
            last, at = (key, value), n
            if types.get(key) == "strs" and '"' in value:
                entry[key] = _items(value, where)
            else:
                entry[key] = _unquote(value)[0]
        lenses.append(build_lens(entry, where))
    return Variant(name=text.strip(), lenses=lenses)


def spec_of(lenses: list[Lens]) -> str:
    """A stack of lenses as one inline spec (what `parse_inline` reads back to the same stack)."""
    return "+".join(lens.label() for lens in lenses)


def is_auto_name(name: str, lenses: list[Lens]) -> bool:
    """True when `name` is a spec of these very lenses: the name a variant gets when nobody
    names it (the spec as typed, or `spec_of`), not one a person chose."""
    if name == spec_of(lenses):
        return True
    try:
        return spec_of(parse_inline(name).lenses) == spec_of(lenses)
    except BadInput:
        return False


def edited_name(typed: str, old: Variant | None, lenses: list[Lens], default: str) -> str:
    """A variant's name after an edit made it `lenses`: what the person typed, except that a
    name nobody chose (the old variant's spec, left as it was) follows the new lenses and
    becomes `default` (their spec), as does an empty one."""
    typed = typed.strip()
    if not typed:
        return default
    if old is not None and typed == old.name and spec_of(lenses) != spec_of(old.lenses) \
            and is_auto_name(old.name, old.lenses):
        return default
    return typed


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
    """A lens with `points=k` (slerp) becomes k rows at equidistant t in [0, t]: `t=0.6,points=3`
    gives t = 0, 0.3 and 0.6 (keyframed t: each row's keyframes scaled by 0 .. 1). Each row
    has its own name: its spec, t written out, when the variant's name was its spec (nobody
    named it), else that name and ` t=...`."""
    for i, lens in enumerate(variant.lenses):
        k = lens.values.get("points") or 0
        if k > 1:
            if lens.always("t", 0):
                raise BadInput(f"variant '{variant.name}': points={k} spreads t over [0, t], and t is 0: "
                               "every row would be the same")
            auto = is_auto_name(variant.name, variant.lenses)
            out = []
            for j in range(k):
                row = build_lens({**lens.normalized(), "t": _scaled(lens.t, j / (k - 1)), "points": 0}, variant.name)
                stack = variant.lenses[:i] + [row] + variant.lenses[i + 1 :]
                name = ("+".join(x.label(keep=("t",)) if x is row else x.label() for x in stack) if auto
                        else f"{variant.name} t={row.t!r}" if isinstance(row.t, Keyframes)
                        else f"{variant.name} t={number_text(row.t)}")
                out.append(Variant(name, stack))
            return out
    return [variant]


def _scaled(t: Any, f: float) -> Any:
    """t times f (keyframes: each value), rounded to 12 digits (0.6 / 3 is 0.2, not 0.19999999999999998)."""
    if isinstance(t, Keyframes):
        return [[s, float(f"{v * f:.12g}")] for s, v in t.points]
    return float(f"{t * f:.12g}")


def is_lens_file(spec: str) -> bool:
    """A --lens value names a lens file when the whole value is an existing file, or when it
    has no `:` and ends in .toml or .json (a missing file is then said as one). An inline spec
    is never taken for a file because of its ending: `constrain:schema=s.json` is a lens."""
    try:
        exists = files.user_path(spec, f"lens file '{spec}'").is_file()
    except (OSError, ValueError, BadInput):
        exists = False
    return exists or (":" not in spec and spec.endswith((".toml", ".json")))


PATH_KEYS = ("file", "path", "schema", "grammar", "regex_file")  # lens parameters that name a file or folder


def parse(spec: str) -> list[Variant]:
    """A --lens value: a .toml/.json file (one or more variants), an mlx-lm adapter folder
    (one `adapter` row) or an inline spec."""
    if adapter.is_adapter_folder(spec):
        variants = [Variant(f"adapter:{Path(spec).name}", [build_lens({"kind": "adapter", "path": spec}, spec)])]
    elif is_lens_file(spec):
        base = files.user_path(spec, f"lens file '{spec}'").parent
        variants = variants_from_data(_relative_to(read_file(spec), base), f"lens file '{spec}'")
    else:
        variants = [parse_inline(spec)]
    return [row for v in variants for row in expand_points(v)]


def _relative_to(data: Any, base: Path) -> Any:
    """A lens file's relative paths (file=, path=, schema=, ...) read from the file's own
    folder, as a fitted lens's lens.toml names the tensors beside it."""
    if isinstance(data, list):
        return [_relative_to(x, base) for x in data]
    if not isinstance(data, dict):
        return data
    out = {k: _relative_to(v, base) for k, v in data.items()}
    if "kind" in out:
        for key in PATH_KEYS:
            value = out.get(key)
            if isinstance(value, str) and value and not value.startswith(("/", "~")):
                out[key] = str(base / value)
    return out


def to_data(variants: list[Variant]) -> dict[str, Any]:
    """The file form of variants (what `read_file` + `variants_from_data` read back)."""
    return {"variant": [{"name": v.name, "lens": [lens.normalized() for lens in v.lenses]} for v in variants]}
