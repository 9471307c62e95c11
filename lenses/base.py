"""The lens protocol: what a lens is, where it acts, and its parameters.

A lens is a small object with `Param`s. It declares where it acts together with what it
does there in one method, `hooks(n_layers) -> {HookPoint: function}`, which the engine
reads and nothing else (core/hooks.py `collect`). The functions, per hook point kind:

- `residual`: `fn(ctx, h) -> h`, one row's hidden states (1, L, D) after block
  `ctx.layer` (layer -1: the token embeddings);
- `attention_bias`: `fn(ctx, n_heads, n_keys) -> (H or 1, L, S) | None`, added to that
  row's attention logits at `ctx.layer`;
- `attention_scores`: `fn(ctx, scores) -> scores` on the masked scores (1, H, L, S); the
  row's attention at that layer is then computed explicitly, not fused. H (n_heads) is the
  heads this process holds: all of them, or a tensor-parallel slice of them, so a lens that
  picks heads by their index in the model goes through `ctx.head_mask` / `ctx.head_slice`;
- `weights`: `fn(ctx, x) -> x dW^T`, added to the output of the linear layer at `path`
  for that row (the model's weights are never written);
- `logits`: `fn(ctx, logits) -> logits`, and `temperature`: `fn(ctx, t) -> t`, on that
  row's next-token distribution and sampling temperature; `ctx.generated` holds the
  tokens that row has chosen so far (what a grammar or a forced text follows).

`prepare(probe, ids, marks)` computes what the hooks need (directions, source states,
weight deltas) from the model (a `Probe`) and the prompt, before the run. A lens whose
`is_neutral()` is true installs no hook. The engine calls a lens only for its own row,
so row 0 stays the plain model.
"""

from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Sequence

import mlx.core as mx
import numpy as np

from lenscope.lenses.errors import BadInput
from lenscope.lenses.probe import Probe


@dataclass(frozen=True)
class Ctx:
    """Where a hook is being called: layer, query positions, prompt length, marks."""

    layer: int
    positions: mx.array  # (L,) absolute positions of the queries in this forward
    prompt_len: int
    marks: tuple[int, ...]
    n_layers: int
    generated: tuple[int, ...] = ()  # logits/temperature hooks: this row's tokens chosen so far
    # attention hooks: the model's index of the first head the hook is given, and the model's
    # head count (a tensor-parallel process holds a slice of the heads); 0, 0: all of them
    first_head: int = 0
    model_heads: int = 0
    # attention hooks: the position each key holds; None when key j is position j (a sliding-
    # window layer's cache keeps only its last positions, in ring order once decoding wraps it)
    keys: np.ndarray | None = None

    def key_positions(self, n_keys: int) -> np.ndarray:
        """(n_keys,) the position of each key the attention hook sees."""
        return np.arange(n_keys) if self.keys is None else self.keys

    def mark_keys(self, n_keys: int) -> list[int]:
        """The keys that hold a marked position (marks out of a sliding window have none)."""
        if self.keys is None:
            return [m for m in self.marks if m < n_keys]
        return np.flatnonzero(np.isin(self.keys, self.marks)).tolist()

    def head_mask(self, heads: Sequence[int], n_heads: int) -> mx.array:
        """(n_heads,) over the hook's heads: 1 where the head's index in the model is in `heads`."""
        mine = [h - self.first_head for h in heads if self.first_head <= h < self.first_head + n_heads]
        mask = mx.zeros((n_heads,))
        return mask.at[mx.array(mine)].add(1.0) if mine else mask

    def head_slice(self, n_heads: int) -> slice:
        """Where the hook's `n_heads` heads sit among the model's, for per-head arrays."""
        return slice(self.first_head, self.first_head + n_heads)

    @property
    def steps(self) -> np.ndarray:
        """Generation step each query produces a token for (0 = last prompt position)."""
        return np.array(self.positions) - (self.prompt_len - 1)

    @property
    def step(self) -> int:
        return int(self.steps[-1])


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
        d: dict[str, Any] = {"name": self.name, "type": self.type, "default": _jsonable(self.default),
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


def _jsonable(value: Any) -> Any:
    if isinstance(value, Keyframes):
        return value.to_json()
    if isinstance(value, tuple):
        return list(value)
    return value


HOOK_KINDS = ("residual", "attention_bias", "attention_scores", "weights", "logits", "temperature")


@dataclass(frozen=True)
class HookPoint:
    """Where a hook acts: `kind` (one of HOOK_KINDS) at `layers` (residual and attention
    kinds), at the linear layer `path` (weights), or once per step (logits, temperature)."""

    kind: str
    layers: frozenset[int] = frozenset()
    path: str = ""

    def __post_init__(self) -> None:
        if self.kind not in HOOK_KINDS:  # a typo would otherwise install nothing, silently
            raise ValueError(f"hook point kind '{self.kind}' is not one of {', '.join(HOOK_KINDS)}")
        object.__setattr__(self, "layers", frozenset(self.layers))

    def places(self) -> tuple[Any, ...]:
        """The keys the engine files this hook under: layers, a module path, or None."""
        if self.kind == "weights":
            return (self.path,)
        if self.kind in ("logits", "temperature"):
            return (None,)
        return tuple(sorted(self.layers))


Hooks = dict[HookPoint, Callable[..., Any]]


class Lens:
    """Base class: no hooks, never neutral; subclasses declare `params` and `hooks`."""

    kind: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    default_layers: ClassVar[str] = "all"  # `layers` unset: every layer, or "middle"

    def __init__(self, **values: Any):
        given = dict(values)
        for p in self.params:
            setattr(self, p.name, given.pop(p.name, p.default))
        if given:
            raise BadInput(f"lens '{self.kind}': unknown key '{next(iter(given))}'")
        self.values = {p.name: getattr(self, p.name) for p in self.params}

    # -- identity of a lens, for JSON and reports -------------------------------------
    def normalized(self) -> dict[str, Any]:
        return {"kind": self.kind, **{k: _jsonable(v) for k, v in self.values.items() if v is not None}}

    def label(self, keep: tuple[str, ...] = ()) -> str:
        """This lens as an inline spec, `kind:key=value,...`, naming the parameters that differ
        from their defaults (and those in `keep`); `spec.parse_inline` reads it back to an equal
        lens: a value that holds `,` `+` or a double quote is written in double quotes."""
        changed = [f"{p.name}={spec_value(p, getattr(self, p.name))}" for p in self.params
                   if p.name in keep or getattr(self, p.name) != p.default]
        return self.kind + (":" + ",".join(changed) if changed else "")

    def value_at(self, name: str, steps: np.ndarray | int) -> np.ndarray:
        """A numeric parameter at the given generation steps (keyframes interpolated)."""
        v = getattr(self, name)
        if isinstance(v, Keyframes):
            return v.at(steps)
        return np.full(np.shape(steps), float(v))

    def always(self, name: str, value: float) -> bool:
        """True when a numeric parameter is `value` at every step. Keyframes interpolate
        linearly between points and hold at the ends, so checking the points suffices."""
        v = getattr(self, name)
        return all(x == value for x in (v.values() if isinstance(v, Keyframes) else [v]))

    def is_neutral(self) -> bool:
        """True when this lens, as configured, cannot change anything: it installs no hook."""
        return False

    def fit_problems(self, n_layers: int, n_heads: int) -> dict[str, str]:
        """Parameter -> why it does not fit a model of `n_layers` layers and `n_heads` heads
        (layers and heads it does not have); empty when it fits. The engine checks every lens
        before it prepares or runs it, so a bad head is one line, not an error mid-forward."""
        problems = {}
        layers = getattr(self, "layers", None)
        if layers is not None:
            try:
                layers_or_all(layers, n_layers, self.kind)
            except BadInput as exc:
                problems["layers"] = str(exc)
        bad = [h for h in getattr(self, "heads", None) or () if not 0 <= h < n_heads]
        if bad:
            problems["heads"] = f"{self.kind}: head {bad[0]} does not exist (heads are 0..{n_heads - 1})"
        if getattr(self, "auto_heads", 0) > n_heads:
            problems["auto_heads"] = f"{self.kind}: auto_heads={self.auto_heads}, the model has {n_heads} heads"
        return problems

    def prepared(self) -> dict[str, Any]:
        """What `prepare` found on the current prompt that the views show, by name; most lenses
        find nothing to show."""
        return {}

    def needs_marks(self) -> bool:
        """True when this lens acts only through the marked tokens (nothing marked: no effect)."""
        return getattr(self, "positions", None) == "marked"

    def layers_in(self, n_layers: int) -> set[int]:
        """The `layers` parameter on this model: checked, negatives from the end; unset is
        every layer, or the middle one where `default_layers = "middle"`."""
        layers = getattr(self, "layers", None)
        if self.default_layers == "middle":
            layers = layers or (n_layers // 2,)
        return layers_or_all(layers, n_layers, self.kind)

    # -- preparing and hooking ---------------------------------------------------------
    def prepare(self, probe: Probe, ids: list[int], marks: list[int]) -> None:
        """Compute what the hooks need from the model and the prompt (ids, marked indices)."""

    def depends_on_prompt(self) -> bool:
        """True when prepare() reads the prompt or marks (then it reruns when they change)."""
        return False

    def ensure_prepared(self, probe: Probe, ids: list[int], marks: list[int]) -> None:
        """prepare() once per model (and prompt, if it matters): results are reused across runs."""
        key = (id(probe), tuple(ids), tuple(marks)) if self.depends_on_prompt() else (id(probe),)
        if getattr(self, "_prepared_key", None) != key:
            self.prepare(probe, list(ids), list(marks))
            self._prepared_key = key

    def hooks(self, n_layers: int) -> Hooks:
        """Every place this lens acts, with the function that acts there (after prepare)."""
        return {}


@dataclass
class Variant:
    """One comparison row: a name and a stack of lenses applied in order."""

    name: str
    lenses: list[Lens] = field(default_factory=list)

    def normalized(self) -> dict[str, Any] | None:
        if not self.lenses:
            return None
        return {"name": self.name, "stack": [lens.normalized() for lens in self.lenses]}

    def fit_problem(self, n_layers: int, n_heads: int) -> str | None:
        """The first reason this variant cannot run on a model of that shape, naming it; None if it fits."""
        for lens in self.lenses:
            for problem in lens.fit_problems(n_layers, n_heads).values():
                return f"variant '{self.name}': {problem}"
        return None


def layers_or_all(layers: tuple[int, ...] | None, n_layers: int, what: str) -> set[int]:
    if layers is None:
        return set(range(n_layers))
    bad = [i for i in layers if not -n_layers <= i < n_layers]
    if bad:
        raise BadInput(f"{what}: layer {bad[0]} does not exist (the model has {n_layers} layers)")
    return {i % n_layers for i in layers}


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
