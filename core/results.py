"""What a comparison produces: plain data, turned into the JSON of docs/json/comparison.schema.json."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from lenscope.core.records import ComparisonRecord, RowRecord
from lenscope.errors import BadInput


def finite_mean(values: Iterable[float | None]) -> float | None:
    """The mean of the finite values (None, inf and nan are left out); None when there are none.
    The one mean of per-step and per-record numbers, in reports, diffs, searches and turns."""
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    return sum(xs) / len(xs) if xs else None


def distinct_share(ids: Sequence[int], n: int = 1) -> float:
    """Distinct n-grams / n-grams in `ids`; 1.0 for an output shorter than n (nothing repeats),
    0.0 for an empty one (a lens that silences the model must not pass as varied)."""
    if not ids:
        return 0.0
    grams = [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0


def _num(x: float | None) -> float | None:
    """JSON has no inf/nan: an infinite KL (a lens banned a likely token) becomes null."""
    return None if x is None or not math.isfinite(x) else round(x, 6)


@dataclass
class Alternative:
    token_id: int
    token: str
    prob: float


@dataclass
class RowResult:
    name: str
    lens: dict[str, Any] | None
    token_ids: list[int] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    text: str = ""
    finite: bool = True
    finished: bool = False  # reached end-of-sequence
    attention_to_marks: list[float] = field(default_factory=list)
    attention_to_groups: list[list[float]] = field(default_factory=list)  # per step, per marked span (conversations)
    kl_from_baseline: list[float | None] = field(default_factory=list)
    top: list[list[Alternative]] = field(default_factory=list)  # per step, best first
    first_divergence: int | None = None

    def to_json(self) -> RowRecord:
        return {
            "name": self.name, "lens": self.lens,
            "token_ids": self.token_ids, "tokens": self.tokens, "text": self.text,
            "finite": self.finite, "finished": self.finished,
            "attention_to_marks": [_num(x) for x in self.attention_to_marks],
            "first_divergence": self.first_divergence,
            "kl_from_baseline": [_num(x) for x in self.kl_from_baseline],
            "top_alternatives": [[{"token_id": a.token_id, "token": a.token, "prob": _num(a.prob)}
                                  for a in step] for step in self.top],
        } | ({"attention_to_spans": [[_num(x) for x in step] for step in self.attention_to_groups]}
             if self.attention_to_groups else {})


@dataclass
class Step:
    """One generation step for every row, as streamed to the UI."""

    index: int
    token_ids: list[int | None]  # None for rows that already stopped
    tokens: list[str | None]


@dataclass
class RunResult:
    model: str
    backend: str
    seed: int
    temperature: float
    prompt: str
    prompt_token_ids: list[int]
    prompt_tokens: list[str]
    marked_token_indices: list[int]
    rows: list[RowResult]
    timing: dict[str, float] = field(default_factory=dict)
    cancelled: bool = False
    attention: dict[str, Any] | None = None  # filled by --capture-attention
    precision: str = "native"  # how the weights ran: native, or float32/bfloat16/float16 (dequantized)

    def snapshot(self) -> RunResult:
        """A copy of the rows so far that later steps do not change (shallow: the lists are
        copied, the entries are never mutated once appended), for showing a run in progress."""
        rows = [replace(r, token_ids=list(r.token_ids), tokens=list(r.tokens), top=list(r.top),
                        attention_to_marks=list(r.attention_to_marks),
                        attention_to_groups=list(r.attention_to_groups), kl_from_baseline=list(r.kl_from_baseline))
                for r in self.rows]
        return replace(self, rows=rows, timing=dict(self.timing))

    def to_json(self) -> ComparisonRecord:
        out: ComparisonRecord = {
            "model": self.model, "backend": self.backend, "precision": self.precision, "seed": self.seed,
            "temperature": self.temperature, "prompt": self.prompt,
            "prompt_token_ids": self.prompt_token_ids, "prompt_tokens": self.prompt_tokens,
            "marked_token_indices": self.marked_token_indices,
            "rows": [r.to_json() for r in self.rows],
            "timing": {k: round(v, 4) for k, v in self.timing.items()},
            "cancelled": self.cancelled,
        }
        if self.attention is not None:
            out["attention"] = self.attention
        return out


def from_json(data: dict[str, Any], where: str = "result") -> RunResult:
    """A saved result back into objects (sessions replay their outputs). Every field is
    checked against what `to_json` writes; BadInput names the first that is not."""
    if not isinstance(data, dict):
        raise BadInput(f"{where}: must be an object")
    f = _Fields(data, where)
    rows = []
    for i, r in enumerate(f.get("rows", list, [])):
        if not isinstance(r, dict):
            raise BadInput(f"{where}: row {i + 1} must be an object")
        g = _Fields(r, f"{where} row {i + 1}")
        lens = g.get("lens", (dict, type(None)), None)
        row = RowResult(name=g.get("name", str, "?"), lens=lens)
        row.token_ids = g.ints("token_ids")
        row.tokens = g.list_of("tokens", str)
        row.text = g.get("text", str, "")
        row.finite = g.get("finite", bool, True)
        row.finished = g.get("finished", bool, False)
        row.attention_to_marks = [x for x in g.numbers("attention_to_marks") if x is not None]
        row.kl_from_baseline = g.numbers("kl_from_baseline")
        spans = g.get("attention_to_spans", list, [])
        if not all(isinstance(step, list) for step in spans):
            raise BadInput(f"{where} row {i + 1}: 'attention_to_spans' must be a list of lists of numbers")
        row.attention_to_groups = [_Fields({"s": step}, f"{where} row {i + 1} attention_to_spans").numbers("s")
                                   for step in spans]
        row.first_divergence = g.get("first_divergence", (int, type(None)), None)
        row.top = [[_alternative(a, f"{where} row {i + 1} top_alternatives") for a in step]
                   for step in g.list_of("top_alternatives", list)]
        rows.append(row)
    timing = f.get("timing", dict, {})
    return RunResult(
        model=f.get("model", str, ""), backend=f.get("backend", str, ""), seed=f.get("seed", int, 0),
        temperature=_finite_or(f.get("temperature", (int, float), 0.0), 0.0), prompt=f.get("prompt", str, ""),
        prompt_token_ids=f.ints("prompt_token_ids"), prompt_tokens=f.list_of("prompt_tokens", str),
        marked_token_indices=f.ints("marked_token_indices"), rows=rows,
        timing={str(k): float(v) for k, v in timing.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)},
        cancelled=f.get("cancelled", bool, False),
    )


class _Fields:
    """Typed access to one JSON object's fields: a missing field takes its default, a
    field of the wrong type is BadInput naming it (bools are never numbers here)."""

    def __init__(self, data: dict[str, Any], where: str):
        self.data, self.where = data, where

    def get(self, key: str, types: type | tuple[type, ...], default: Any) -> Any:
        value = self.data.get(key, default)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in _tuple(types)):
            raise BadInput(f"{self.where}: '{key}' must be {_names(types)}, got {type(value).__name__}")
        return value

    def list_of(self, key: str, item: type) -> list:
        values = self.get(key, list, [])
        if not all(isinstance(v, item) and not (isinstance(v, bool) and item is not bool) for v in values):
            raise BadInput(f"{self.where}: '{key}' must be a list, each item {_names(item)}")
        return values

    def ints(self, key: str) -> list[int]:
        return self.list_of(key, int)

    def numbers(self, key: str) -> list[float | None]:
        """Numbers or null (what `_num` writes); non-finite values read as null."""
        values = self.get(key, list, [])
        if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values):
            raise BadInput(f"{self.where}: '{key}' must be a list of numbers or null")
        return [None if v is None else _finite_or(float(v), None) for v in values]


def _alternative(a: Any, where: str) -> Alternative:
    if not isinstance(a, dict):
        raise BadInput(f"{where}: each alternative must be an object")
    f = _Fields(a, where)
    for key in ("token_id", "token", "prob"):
        if key not in a:
            raise BadInput(f"{where}: an alternative has no '{key}'")
    prob = f.get("prob", (int, float, type(None)), None)
    return Alternative(f.get("token_id", int, 0), f.get("token", str, ""),
                       math.nan if prob is None else float(prob))


def _finite_or(x: float, default: Any) -> Any:
    return x if math.isfinite(x) else default


def _tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _names(types: type | tuple[type, ...]) -> str:
    words = {str: "text", int: "an integer", float: "a number", bool: "true or false", list: "a list",
             dict: "an object", type(None): "null"}
    return " or ".join(words.get(t, t.__name__) for t in _tuple(types))
