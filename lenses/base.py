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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import mlx.core as mx
import numpy as np

from lenscope.lenses.errors import BadInput
from lenscope.lenses.params import Keyframes, Param, jsonable, spec_value
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
        return {"kind": self.kind, **{k: jsonable(v) for k, v in self.values.items() if v is not None}}

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
