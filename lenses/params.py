"""A lens's parameters, declared as data (`Param`, `Keyframes` for values that change over
the steps) and written back as a spec reads them (`spec_value`). MLX-free: the command line
builds its options from these before it loads MLX."""

from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from lenscope.lenses.errors import BadInput


class Keyframes:
    """A numeric parameter that changes over generation steps, linearly interpolated."""

    def __init__(self, points: list[tuple[int, float]]):
        self.points = sorted(points)
        self._x = np.array([p[0] for p in self.points], dtype=np.float64)
        self._y = np.array([p[1] for p in self.points], dtype=np.float64)

    def at(self, steps: np.ndarray | int) -> np.ndarray:
        return np.interp(steps, self._x, self._y)

    def values(self) -> list[float]:
        return [p[1] for p in self.points]

    def to_json(self) -> list[list[float]]:
        return [[s, v] for s, v in self.points]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Keyframes) and self.points == other.points

    def __repr__(self) -> str:
        return "|".join(f"{number_text(v)}@{s}" for s, v in self.points)


@dataclass(frozen=True)
class Param:
    """One lens parameter: its type, default, range and a one-line meaning."""

    name: str
    type: str  # float | int | str | bool | ints | strs | choice
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    keyframes: bool = False  # may vary over generation steps ("0@0|4@10")

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "type": self.type, "default": jsonable(self.default),
                             "help": self.help}
        if self.min is not None:
            d["min"] = self.min
        if self.max is not None:
            d["max"] = self.max
        if self.choices:
            d["choices"] = list(self.choices)
        if self.keyframes:
            d["keyframes"] = True
        return d

    def parse(self, raw: Any, where: str, label: str | None = None) -> Any:
        """Validate a value from a spec, a file or a flag: its type, finiteness, range and
        choices. `where` (may be empty) and `label` (default: the name) name it in errors."""
        label = label or self.name
        at = f"{where}: " if where else ""
        try:
            value = self._convert(raw)
        except (TypeError, ValueError, OverflowError):
            raise BadInput(f"{at}{label} must be {self._noun()}, got {_show(raw)}") from None
        lo, hi = self.bounds()
        for v in _numbers(value):
            if isinstance(v, float) and not math.isfinite(v):  # nan passes every range check
                raise BadInput(f"{at}{label} must be a finite number, got {v}")
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                raise BadInput(f"{at}{label} must be in [{_g(lo, '-inf')}, {_g(hi, 'inf')}]; "
                               f"{_g(v, '')} is out of range")
        if self.choices and value not in self.choices:
            raise BadInput(f"{at}{label} must be one of {', '.join(self.choices)}, got {_show(value)}")
        return value

    def bounds(self) -> tuple[float | None, float | None]:
        """The declared range; integers without one stay within int32 (they reach MLX)."""
        if self.type in ("int", "ints"):
            return (-INT_LIMIT if self.min is None else self.min, INT_LIMIT if self.max is None else self.max)
        return self.min, self.max

    def _noun(self) -> str:
        if self.type == "float" and self.keyframes:
            return "a number or keyframes (value@step|value@step, or [[step, value], ...])"
        if self.type == "choice":
            return f"one of {', '.join(self.choices)}"
        return _NOUNS[self.type]

    def _convert(self, raw: Any) -> Any:
        if self.type == "float":
            if self.keyframes and (isinstance(raw, list) or (isinstance(raw, str) and "@" in raw)):
                return _keyframes(raw)
            return _float(raw)
        if self.type == "int":
            return _int(raw)
        if self.type == "bool":
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, (str, int)) and str(raw).strip().lower() in ("1", "true", "yes", "on"):
                return True
            if isinstance(raw, (str, int)) and str(raw).strip().lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if self.type == "ints":
            if raw is None or raw == "" or raw == "all":
                return None
            if isinstance(raw, (list, tuple)):
                return tuple(_int(x) for x in raw)
            if isinstance(raw, str):
                return tuple(_int(x) for x in raw.replace(";", "|").split("|") if x.strip())
            return (_int(raw),)
        if self.type == "strs":
            if isinstance(raw, (list, tuple)):
                return tuple(_text(x) for x in raw)
            return tuple(x for x in _text(raw).split("|") if x != "")
        return _text(raw)


INT_LIMIT = 2**31 - 1
_NOUNS = {"float": "a number", "int": "an integer", "bool": "true or false", "ints": "integers (e.g. 1|2)",
          "strs": "texts (e.g. a|b)", "str": "text"}


def _float(raw: Any) -> float:
    """A number from a file (int/float) or a spec (text); never a bool, list or table."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise TypeError
    return float(raw)  # huge ints raise OverflowError; "nan"/"inf" are refused by parse


def _int(raw: Any) -> int:
    """An integer; a float only when whole (1e999 and nan are not), never a bool."""
    if isinstance(raw, bool):
        raise TypeError
    if isinstance(raw, float):
        if not raw.is_integer():
            raise ValueError
        return int(raw)
    if isinstance(raw, (int, str)):
        return int(raw)
    raise TypeError


def _text(raw: Any) -> str:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return str(raw)
    raise TypeError


def _keyframes(raw: Any) -> Keyframes:
    """`value@step|value@step` or `[[step, value], ...]`: at least one point, steps >= 0."""
    if isinstance(raw, str):
        points = []
        for part in raw.split("|"):
            value, at, step = part.partition("@")
            if not at:
                raise ValueError
            points.append((_int(step), _float(value)))
    else:
        if not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in raw):
            raise ValueError
        points = [(_int(s), _float(v)) for s, v in raw]
    if not points or any(not 0 <= s <= INT_LIMIT for s, _ in points):
        raise ValueError
    return Keyframes(points)


def _show(raw: Any) -> str:
    """A value for an error message: short, and safe however large or nested it is."""
    return _REPR.repr(raw)


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 60
_REPR.maxlevel = 3


def _g(x: float | None, none: str) -> str:
    if x is None:
        return none
    return _show(x) if isinstance(x, int) else f"{x:g}"  # ints may be too large for a float


def _numbers(value: Any) -> list[float | int]:
    if isinstance(value, Keyframes):
        return value.values()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value]
    if isinstance(value, tuple) and all(isinstance(v, int) for v in value):
        return list(value)
    return []


def jsonable(value: Any) -> Any:
    if isinstance(value, Keyframes):
        return value.to_json()
    if isinstance(value, tuple):
        return list(value)
    return value


def number_text(x: float) -> str:
    """A number as a spec writes it: short (0.3, 1e20, never 1e+20, whose '+' would stack a
    lens) and exact (float() of it gives x back)."""
    text = f"{x:g}"
    if float(text) != x:
        text = repr(float(x))
    return text.replace("e+", "e")


def quote(text: str) -> str:
    """`text` in double quotes, with its backslashes and double quotes escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def needs_quotes(text: str, extra: str = "") -> bool:
    """True when an inline spec cannot hold `text` bare: it holds `,` (between keys), `+`
    (between lenses), a double quote or any of `extra`, or begins or ends with white space."""
    return any(c in text for c in ',+"' + extra) or text != text.strip()


def spec_value(p: Param, v: Any) -> str:
    """The value of parameter `p` as `spec.parse_inline` reads it back."""
    if v is None:
        return "all" if p.type == "ints" else ""
    if isinstance(v, Keyframes):
        return repr(v)
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return number_text(v)
    if isinstance(v, tuple):
        if p.type == "ints":
            return "|".join(str(x) for x in v) or "|"  # "|": no layer at all; "" would be all of them
        # each item alone in quotes where it must be: one that holds '|' or is empty, too
        return "|".join(quote(x) if not x or needs_quotes(x, "|") else x for x in map(str, v))
    text = str(v)
    return quote(text) if needs_quotes(text) else text
