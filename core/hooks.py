"""Hooks on a stock mlx-lm model, installed for one run and removed afterwards.

Two techniques, both leave the model's code and weights untouched:

- Residual stream: each decoder block (and the token embedding) gets a subclass of
  its own class whose `__call__` records the layer index and passes the block output
  through `HookState.block_output`. A proxy object would break `make_prompt_cache`,
  which reads attributes such as `layer.use_sliding`.
- Attention: mlx-lm model modules import `scaled_dot_product_attention` by name from
  `mlx_lm.models.base`; we swap that name, in every module the model's classes come
  from, for `HookState.attention`, which adds per-row biases, records attention on
  marks, and captures probabilities when asked.

Linear layers a weight lens edits get a subclass the same way, adding the lens's
x dW^T to its row's output. What each row's lenses hook is found in one place,
`collect`, from each lens's `hooks()`.

`hooked(model, state)` restores every class and module attribute on exit, also when
the body raises. It refuses (ModelBusy) to install over hooks already installed: what it
restores is what it found, so two overlapping installs that exit out of order would
leave the model hooked. The engine's lock keeps its own runs from overlapping
(core/model_lock.py: the rules every caller follows).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import mlx.core as mx
import numpy as np
from mlx import nn

import lenscope.metal
from lenscope.core.model_lock import require
from lenscope.core.tensor_parallel import TensorSplit, split_of
from lenscope.errors import BadInput
from lenscope.lenses.base import HOOK_KINDS, Ctx, Lens
from lenscope.metal.attention_probs import repeat_kv

SDPA_NAME = "scaled_dot_product_attention"
_SUBCLASSES: dict[tuple[str, type], type] = {}  # (role, original class) -> hooked subclass
# makes "not hooked yet, so install" and "restore" atomic between threads: two racing
# installs get one ModelBusy, never a mix of both states
_INSTALLING = threading.Lock()


class ModelBusy(RuntimeError):
    """The model (or its attention module, shared by every model of its type) already
    carries another run's hooks."""

# kind -> place (layer, module path, or None) -> row -> the row's hook functions, in stack order
Table = dict[str, dict[Any, dict[int, list[Callable[..., Any]]]]]


def collect(rows: list[list[Lens]], n_layers: int) -> Table:
    """Every hook of every row's lenses, filed by kind and place: the one place the
    engine asks lenses what they do. A neutral lens installs nothing."""
    table: Table = {kind: {} for kind in HOOK_KINDS}
    valid = {"residual": range(-1, n_layers), "attention_bias": range(n_layers), "attention_scores": range(n_layers)}
    for r, lenses in enumerate(rows):
        for lens in lenses:
            if lens.is_neutral():
                continue
            for point, fn in lens.hooks(n_layers).items():
                for place in point.places():
                    if point.kind in valid and place not in valid[point.kind]:
                        raise ValueError(f"lens '{lens.kind}': {point.kind} hook at layer {place}, "
                                         f"outside {valid[point.kind]}")
                    table[point.kind].setdefault(place, {}).setdefault(r, []).append(_named(lens, fn))
    return table


def _named(lens: Lens, fn: Callable[..., Any]) -> Callable[..., Any]:
    """A hook whose failure names its lens: a run of many rows otherwise says only what
    broke, not which variant to fix."""
    if not callable(fn):
        return fn

    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BadInput as exc:
            raise BadInput(f"lens '{lens.label()}': {exc}") from None
        except Exception as exc:
            raise BadInput(f"lens '{lens.label()}' failed: {type(exc).__name__}: {exc}") from exc

    return call


class HookState:
    """What the hooks do during one forward: per-row lenses, recording, capture."""

    def __init__(self, rows: list[list[Lens]], n_layers: int, prompt_len: int, marks: tuple[int, ...] = ()):
        self.rows = rows
        self.n_layers = n_layers
        self.prompt_len = prompt_len
        self.marks = tuple(marks)
        self.layer = -1
        self._keys: np.ndarray | None = None  # the current attention's key positions (key_positions)
        self.positions = mx.arange(0)
        self.original_sdpa: Callable[..., mx.array] | None = None
        # computed once, so an unhooked layer costs one dict lookup
        self.hooks = collect(rows, n_layers)
        self.residual_at = self.hooks["residual"]
        self.bias_at = self.hooks["attention_bias"]
        self.scores_at = self.hooks["attention_scores"]
        self.deltas = self.hooks["weights"]  # module path -> {row: [x -> x dW^T]}
        self.record_layers: set[int] = set()
        self.recorded: dict[int, mx.array] = {}
        self.track_marks = bool(self.marks)
        self.mark_attention: list[mx.array] = []  # one (B,) array per layer, for the last query
        self.mark_groups: list[list[int]] = []  # marked spans measured apart
        self.group_attention: list[mx.array] = []  # one (B, groups) array per layer, for the last query
        self.capture = False
        self.capture_layers: set[int] | None = None  # None: every layer
        self.captured: dict[int, mx.array] = {}  # layer -> (B, every head, L, S)
        self.split: TensorSplit | None = None  # set by `hooked` on a tensor-parallel model

    @property
    def idle(self) -> bool:
        """Nothing to do inside the model: no lens hooks in it, no marks, no recording."""
        inside = ("residual", "attention_bias", "attention_scores", "weights")
        return not (any(self.hooks[k] for k in inside) or self.track_marks or self.capture or self.record_layers)

    def step_hooks(self, kind: str, row: int) -> list[Callable[..., Any]]:
        """Row `row`'s logits or temperature hooks, in stack order."""
        return self.hooks[kind].get(None, {}).get(row, [])

    def begin(self, positions: mx.array) -> None:
        self.positions = positions
        self.mark_attention = []
        self.group_attention = []

    def ctx(self, layer: int, heads: int = 0, keys: np.ndarray | None = None) -> Ctx:
        """`heads`: how many heads this forward's attention holds (on a tensor-parallel model,
        this rank's share of them), for lenses that pick heads by their global index; `keys`:
        the position each attention key holds (`key_positions`)."""
        first, total = self.split.heads(heads) if self.split and heads else (0, heads)
        return Ctx(layer=layer, positions=self.positions, prompt_len=self.prompt_len,
                   marks=self.marks, n_layers=self.n_layers, first_head=first, model_heads=total, keys=keys)

    def head_mean(self, x: mx.array) -> mx.array:
        """A mean over the heads this process holds -> over every head of the model."""
        return self.split.head_mean(x) if self.split else x

    # -- residual stream -------------------------------------------------------------
    def block_output(self, layer: int, h: mx.array) -> mx.array:
        by_row = self.residual_at.get(layer)
        if by_row:
            ctx = self.ctx(layer)
            parts = []
            for r in range(h.shape[0]):
                part = h[r : r + 1]
                for fn in by_row.get(r, ()):
                    part = fn(ctx, part).astype(h.dtype)
                parts.append(part)
            h = mx.concatenate(parts, axis=0)
        if layer in self.record_layers:
            self.recorded[layer] = h
        return h

    def _lens_bias(self, by_row: dict[int, list[Callable]], B: int, H: int, L: int, S: int,
                   keys: np.ndarray | None) -> mx.array:
        """(B, 1 or H, L, S): each row's attention biases summed; zeros for other rows."""
        ctx = self.ctx(self.layer, H, keys)
        rows = []
        for r in range(B):
            b = mx.zeros((1, 1, L, S), dtype=mx.float32)
            for fn in by_row.get(r, ()):
                extra = fn(ctx, H, S)
                if extra is not None:
                    b = b + extra.reshape((1,) + extra.shape[-3:]) if extra.ndim >= 3 else b + extra
            rows.append(b)
        heads = max(b.shape[1] for b in rows)
        return mx.concatenate([mx.broadcast_to(b, (1, heads, L, S)) for b in rows], axis=0)

    def linear_output(self, path: str, x: mx.array, out: mx.array) -> mx.array:
        by_row = self.deltas.get(path)
        if not by_row:
            return out
        ctx = self.ctx(self.layer)
        parts = []
        for r in range(out.shape[0]):
            part = out[r : r + 1]
            for fn in by_row.get(r, ()):
                part = part + fn(ctx, x[r : r + 1]).astype(out.dtype)
            parts.append(part)
        return mx.concatenate(parts, axis=0)

    # -- attention ---------------------------------------------------------------------
    def attention(self, queries, keys, values, cache, scale, mask, sinks=None):
        layer = self.layer
        biased = self.bias_at.get(layer)
        edited = self.scores_at.get(layer) or {}  # row -> score functions; those rows run unfused
        capture = self.capture and (self.capture_layers is None or layer in self.capture_layers)
        if not biased and not edited and not capture and not self.track_marks:
            return self.original_sdpa(queries, keys, values, cache, scale=scale, mask=mask, sinks=sinks)
        if isinstance(keys, tuple) or hasattr(cache, "bits"):
            raise BadInput("attention lenses and capture do not support a quantized KV cache")
        B, H, L, _ = queries.shape
        S = keys.shape[2]
        self._keys = key_positions(cache, S)
        bias = _additive_mask(mask, L, S, queries.dtype)  # (1 or B, 1, L, S) or None
        if biased:
            bias = _sum_bias(bias, self._lens_bias(biased, B, H, L, S, self._keys), queries.dtype)
        if capture:
            probs = attention_probs(queries, keys, scale, bias, sinks)
            if edited:
                probs = mx.concatenate([self._edited_probs(edited[r], queries[r : r + 1], keys[r : r + 1], scale,
                                                           bias, r) if r in edited else probs[r : r + 1]
                                        for r in range(B)], axis=0)
            self.captured[layer] = self.split.all_heads(probs) if self.split else probs
            return _weighted_values(probs, values)
        if self.track_marks and L == 1 and not edited and sinks is None:
            # a decode step: one softmax gives both the output and the marks' share
            probs, out = _decode_attention(queries, keys, values, scale, bias)
            self._note_marks(probs)
            return out
        # the edited rows' probabilities (their score functions applied), computed once for both
        # the marks' share and the output
        edited_probs = {r: self._edited_probs(edited[r], queries[r : r + 1], keys[r : r + 1], scale, bias, r)
                        for r in edited}
        if self.track_marks:
            last_bias = None if bias is None else bias[..., -1:, :]
            p_last = attention_probs(queries[:, :, -1:, :], keys, scale, last_bias, sinks)  # (B,H,1,S)
            if edited_probs:
                p_last = mx.concatenate([edited_probs[r][:, :, -1:, :] if r in edited_probs else p_last[r : r + 1]
                                         for r in range(B)], axis=0)
            self._note_marks(p_last)
        out = mx.fast.scaled_dot_product_attention(queries, keys, values, scale=scale, mask=bias, sinks=sinks)
        if edited:  # only the edited rows are recomputed explicitly
            out = mx.concatenate([_weighted_values(edited_probs[r], values[r : r + 1]) if r in edited_probs
                                  else out[r : r + 1] for r in range(B)], axis=0)
        return out

    def _note_marks(self, p_last: mx.array) -> None:
        """The last query's share (B, H, 1, S) on the marks, and on each marked span apart, mean over heads."""
        B, S = p_last.shape[0], p_last.shape[-1]
        ctx = self.ctx(self.layer, keys=self._keys)

        def share(positions: Sequence[int]) -> mx.array:
            on = replace(ctx, marks=tuple(positions)).mark_keys(S)
            return p_last[:, :, 0, mx.array(on)].sum(axis=-1).mean(axis=-1) if on else mx.zeros((B,))

        self.mark_attention.append(share(self.marks))
        if self.mark_groups:
            self.group_attention.append(mx.stack([share(g) for g in self.mark_groups], axis=-1))

    def _edited_probs(self, fns: list[Callable], q: mx.array, k: mx.array, scale, bias, r: int) -> mx.array:
        """Row r's probabilities (1, H, L, S) with its score functions (e.g. top-k sparsity) applied."""
        k = repeat_kv(k, q.shape[1]).astype(mx.float32)
        scores = (q.astype(mx.float32) * scale) @ k.swapaxes(-1, -2)
        if bias is not None:
            scores = scores + (bias[r : r + 1] if bias.shape[0] > 1 else bias).astype(mx.float32)
        ctx = self.ctx(self.layer, q.shape[1], self._keys)
        for fn in fns:
            scores = fn(ctx, scores)
        return mx.softmax(scores, axis=-1, precise=True)


def key_positions(cache: Any, S: int) -> np.ndarray | None:
    """The position each of the S keys holds, or None when key j is position j. mlx-lm's
    RotatingKVCache (sliding-window layers: gemma2/3, mistral) keeps the last `max_size`
    positions: in time order after a prompt chunk, in ring order once decoding wraps, with
    the next write at `_idx` (the first `keep` slots are never overwritten)."""
    offset, size = getattr(cache, "offset", None), getattr(cache, "max_size", None)
    if not isinstance(offset, int) or not isinstance(size, int) or S == offset:
        return None
    idx, keep = int(getattr(cache, "_idx", S)), int(getattr(cache, "keep", 0))
    if idx >= S:  # time order: the last S positions
        return np.arange(offset - S, offset)
    slots = np.arange(S)
    ring = size - keep  # slot idx-1 was written last, with position offset-1
    pos = offset - 1 - (idx - 1 - slots) % ring
    return np.where(slots < keep, slots, pos)


def _sum_bias(a: mx.array | None, b: mx.array, dtype: mx.Dtype) -> mx.array:
    return b.astype(dtype) if a is None else a + b.astype(dtype)


def _additive_mask(mask: Any, L: int, S: int, dtype: mx.Dtype) -> mx.array | None:
    """The model's mask as an additive float array: mx.fast sdpa takes 'causal' or an
    array, not both, so when we add a bias we build the causal part ourselves."""
    if mask is None:
        return None
    if isinstance(mask, str):
        q = mx.arange(S - L, S)[:, None]
        k = mx.arange(S)[None]
        mask = q >= k
    if mask.dtype == mx.bool_:
        mask = mx.where(mask, mx.array(0.0, dtype), mx.array(-np.inf, dtype))
    while mask.ndim < 4:
        mask = mask[None]
    return mask.astype(dtype)


def attention_probs(queries, keys, scale, bias=None, sinks=None) -> mx.array:
    """softmax(Q K^T * scale + bias) in float32, (B, H, L, S); sinks take mass but are dropped."""
    if sinks is None:
        return lenscope.metal.attention_probs(queries, keys, scale, bias)
    keys = repeat_kv(keys, queries.shape[1])
    scores = (queries.astype(mx.float32) * scale) @ keys.astype(mx.float32).swapaxes(-1, -2)
    if bias is not None:
        scores = scores + bias.astype(mx.float32)
    sink = mx.broadcast_to(sinks.astype(mx.float32)[None, :, None, None], scores.shape[:-1] + (1,))
    return mx.softmax(mx.concatenate([sink, scores], axis=-1), axis=-1, precise=True)[..., 1:]


def _decode_attention(queries, keys, values, scale, bias) -> tuple[mx.array, mx.array]:
    """One query per row: (probs (B, H, 1, S) float32, output (B, H, 1, D)). Grouped heads
    are matched by reshaping the queries, so keys and values are never copied per head."""
    B, H, _, D = queries.shape
    kv = keys.shape[1]
    q = (queries.astype(mx.float32) * scale).reshape(B, kv, H // kv, D)
    scores = (q @ keys.astype(mx.float32).swapaxes(-1, -2)).reshape(B, H, 1, -1)
    if bias is not None:
        scores = scores + bias.astype(mx.float32)
    probs = mx.softmax(scores, axis=-1, precise=True)
    out = probs.reshape(B, kv, H // kv, -1) @ values.astype(mx.float32)
    return probs, out.reshape(B, H, 1, -1).astype(values.dtype)


def _weighted_values(probs: mx.array, values: mx.array) -> mx.array:
    values = repeat_kv(values, probs.shape[1])
    return (probs @ values.astype(mx.float32)).astype(values.dtype)


# -- installing and removing ------------------------------------------------------------
def _subclass(cls: type) -> type:
    """A subclass of a block class whose __call__ reports its output to the hook state."""
    if ("block", cls) not in _SUBCLASSES:

        def __call__(self, x, *args, **kwargs):
            state: HookState = self._lens_state
            state.layer = self._lens_index
            out = cls.__call__(self, x, *args, **kwargs)
            if isinstance(out, tuple):  # a few blocks return (h, extra)
                return (state.block_output(self._lens_index, out[0]),) + out[1:]
            return state.block_output(self._lens_index, out)

        _SUBCLASSES["block", cls] = type(f"Hooked{cls.__name__}", (cls,), {"__call__": __call__})
    return _SUBCLASSES["block", cls]


def _linear_subclass(cls: type) -> type:
    """A subclass of a linear layer class that adds per-row weight deltas to its output."""
    if ("linear", cls) not in _SUBCLASSES:

        def __call__(self, x):
            return self._lens_state.linear_output(self._lens_path, x, cls.__call__(self, x))

        _SUBCLASSES["linear", cls] = type(f"Delta{cls.__name__}", (cls,), {"__call__": __call__})
    return _SUBCLASSES["linear", cls]


# per model, what finding needs a walk of every module for (about 7 ms each on a 30-layer
# model, and a run enters `hooked` once per step): the embedding's path and the modules
# whose attention function is swapped. A path is looked up again each time, so a module
# swapped since (precision.to_float) is found, not a stale one.
# (kept on the model itself: an nn.Module is a dict, so it cannot key a weak dictionary)
FOUND_ATTR = "_lens_found"


def _found(model: nn.Module) -> tuple[str | None, tuple[str, ...]]:
    if FOUND_ATTR not in model.__dict__:
        modules = model.named_modules()
        embedding = next((p for p, m in modules if isinstance(m, (nn.Embedding, nn.QuantizedEmbedding))), None)
        object.__setattr__(model, FOUND_ATTR, (embedding, tuple(sorted({type(m).__module__ for _, m in modules}))))
    return model.__dict__[FOUND_ATTR]


def _at(model: nn.Module, path: str) -> Any:
    node: Any = model
    for part in path.split(".") if path else []:
        node = node[int(part)] if isinstance(node, list) else getattr(node, part, None)
    return node


def find_embedding(model: nn.Module) -> nn.Module | None:
    path, _ = _found(model)
    found = None if path is None else _at(model, path)
    if path is not None and not isinstance(found, (nn.Embedding, nn.QuantizedEmbedding)):
        object.__delattr__(model, FOUND_ATTR)  # the model changed shape since: walk it again
        path, _ = _found(model)
        found = None if path is None else _at(model, path)
    return found


def attention_modules(model: nn.Module) -> list[Any]:
    """The Python modules whose `scaled_dot_product_attention` this model calls."""
    _, names = _found(model)
    return [sys.modules[n] for n in names if n in sys.modules and hasattr(sys.modules[n], SDPA_NAME)]


def check_hookable(model: nn.Module) -> None:
    if not attention_modules(model):
        model_type = getattr(getattr(model, "args", None), "model_type", type(model).__module__)
        raise BadInput(f"model type '{model_type}': its attention does not call mlx-lm's "
                       f"{SDPA_NAME}, so attention lenses and capture cannot hook it")


def _check_unhooked(modules: list[Any], targets: list[nn.Module]) -> None:
    for module in targets:
        if "_lens_state" in module.__dict__:
            raise ModelBusy("the model is already hooked by another run")
    for module in modules:
        if isinstance(getattr(getattr(module, SDPA_NAME), "__self__", None), HookState):
            raise ModelBusy(f"the model is already hooked by another run ({module.__name__}'s attention, "
                            "shared by every model of its type)")


@contextmanager
def hooked(model: nn.Module, state: HookState) -> Iterator[HookState]:
    require(model)
    blocks: list[tuple[nn.Module, type]] = []
    swapped: list[tuple[Any, Any]] = []
    embedding = find_embedding(model)
    targets = [(-1, embedding)] if embedding is not None else []
    targets += list(enumerate(model.layers))
    named = dict(model.named_modules()) if state.deltas else {}
    modules = attention_modules(model)
    state.split = split_of(model)
    try:
        with _INSTALLING:
            # checked before anything is swapped, so a refusal leaves the model as it was
            _check_unhooked(modules, [b for _, b in targets] + [named[p] for p in state.deltas if p in named])
            for index, block in targets:
                blocks.append((block, type(block)))
                object.__setattr__(block, "_lens_index", index)
                object.__setattr__(block, "_lens_state", state)
                block.__class__ = _subclass(type(block))
            for path in state.deltas:
                module = named[path]
                blocks.append((module, type(module)))
                object.__setattr__(module, "_lens_path", path)
                object.__setattr__(module, "_lens_state", state)
                module.__class__ = _linear_subclass(type(module))
            for module in modules:
                original = getattr(module, SDPA_NAME)
                swapped.append((module, original))
                state.original_sdpa = state.original_sdpa or original
                setattr(module, SDPA_NAME, state.attention)
        yield state
    finally:
        with _INSTALLING:
            for block, cls in reversed(blocks):  # reverse: a module may have been wrapped twice
                block.__class__ = cls
                for attr in ("_lens_index", "_lens_state", "_lens_path"):
                    if attr in block.__dict__:
                        object.__delattr__(block, attr)
            for module, original in swapped:
                setattr(module, SDPA_NAME, original)
