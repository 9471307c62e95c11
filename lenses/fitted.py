"""Lenses learned from examples (`lenscope fit`, batch/fit.py), read back from the
safetensors file the fit wrote.

Two methods, both residual-stream edits at the layers the fit chose:

- `steer`: h + s * v_l, one learned vector per layer (a learned steering vector);
- `reft`:  h + s * R^T (W h + b - R h), LoReFT (pyreft): R (r x D) with orthonormal rows,
  W (r x D), b (r); the edit replaces h's component in R's row space by W h + b.

`strength` (s) scales the edit: 0 is the baseline exactly (the lens installs nothing), 1
the fitted lens. The same `residual` runs while fitting (with the tensors being learned)
and when the lens is used, so a fitted lens means the same in both.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from typing import Any

import mlx.core as mx
import numpy as np

from lenscope.lenses.base import Ctx, HookPoint, Hooks, Lens
from lenscope.lenses.errors import BadInput
from lenscope.lenses.files import user_path
from lenscope.lenses.params import Param
from lenscope.lenses.probe import Probe
from lenscope.lenses.steering import POSITIONS, position_gate

METHODS = ("steer", "reft")
FORMAT = "lenscope-fit-1"  # the safetensors metadata's `format`
FILE_LIMIT = 1 << 30


class Fitted(Lens):
    kind = "fitted"
    summary = "a lens learned from examples by `lenscope fit`: a vector per layer (steer) or a LoReFT edit (reft)"
    params = (
        Param("file", "str", "", "the .safetensors file `lenscope fit` wrote (in a lens file: relative to it)"),
        Param("strength", "float", 1.0, "scales the learned edit: 0 is the baseline, exactly; 1 as fitted",
              -100, 100, keyframes=True),
        POSITIONS,
    )

    def __init__(self, **values: Any):
        """The file is read now: its method and layers decide the lens's hooks."""
        super().__init__(**values)
        if not self.file:
            raise BadInput("fitted: file= names the .safetensors file lenscope fit wrote")
        self.tensors, self.meta = read(self.file)
        self.method = self.meta["method"]
        self.fit_layers = tuple(sorted(int(k.split(".")[1]) for k in self.tensors if k.endswith((".v", ".R"))))

    def is_neutral(self) -> bool:
        return self.always("strength", 0)

    def prepare(self, probe: Probe, ids: list[int], marks: list[int]) -> None:
        where = f"fitted '{self.file}'"
        want = {"hidden_size": probe.hidden_size, "n_layers": probe.n_layers, "vocab": vocab_hash(probe.tokenizer)}
        for key, value in want.items():
            if str(value) != self.meta.get(key):
                raise BadInput(f"{where}: fitted on a model with {key} {self.meta.get(key)!s:.20}, this one has "
                               f"{value!s:.20}")

    def hooks(self, n_layers: int) -> Hooks:
        return {HookPoint("residual", self.fit_layers): self.residual}

    def residual(self, ctx: Ctx, h: mx.array) -> mx.array:
        s = mx.array(self.value_at("strength", ctx.steps), dtype=mx.float32)[:, None]
        gate = position_gate(ctx, self.positions) * s  # (L, 1)
        return (h + gate[None] * edit(self.method, self.tensors, ctx.layer, h)).astype(h.dtype)


def edit(method: str, tensors: dict[str, mx.array], layer: int, h: mx.array) -> mx.array:
    """What the fitted edit adds to hidden states h (B, L, D) at `layer`, in float32."""
    x = h.astype(mx.float32)
    if method == "steer":
        return mx.broadcast_to(tensors[f"layer.{layer}.v"], x.shape)
    r, w, b = tensors[f"layer.{layer}.R"], tensors[f"layer.{layer}.W"], tensors[f"layer.{layer}.b"]
    return (x @ w.T + b - x @ r.T) @ r


_VOCABS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def vocab_hash(tokenizer: Any) -> str:
    """The vocabulary (every token and its id) as 16 hex digits: a fitted lens is refused on a
    model whose token ids mean other things, whatever its shape."""
    hf = getattr(tokenizer, "_tokenizer", tokenizer)
    if hf not in _VOCABS:
        items = sorted(hf.get_vocab().items(), key=lambda kv: kv[1])
        _VOCABS[hf] = hashlib.sha256(json.dumps(items, ensure_ascii=False).encode()).hexdigest()[:16]
    return _VOCABS[hf]


def read(path: str) -> tuple[dict[str, mx.array], dict[str, str]]:
    """The fitted tensors and their metadata, every name, shape and value checked."""
    where = f"fitted file '{path}'"
    p = user_path(path, where)
    if not p.is_file():
        raise BadInput(f"{where}: {'is a folder' if p.is_dir() else 'not found'}")
    if p.stat().st_size > FILE_LIMIT:
        raise BadInput(f"{where}: larger than {FILE_LIMIT >> 20} MiB")
    try:
        tensors, meta = mx.load(str(p), return_metadata=True)
    except Exception as exc:  # MLX's parse errors of a corrupt or foreign file
        raise BadInput(f"{where}: not a safetensors file ({str(exc).splitlines()[0][:120] if str(exc) else exc})") \
            from None
    if meta.get("format") != FORMAT or meta.get("method") not in METHODS:
        raise BadInput(f"{where}: not a file lenscope fit wrote (format {FORMAT}, method steer or reft)")
    try:
        hidden = int(meta["hidden_size"])
    except (KeyError, ValueError):
        raise BadInput(f"{where}: no hidden_size in its metadata") from None
    shapes = {"v": (hidden,)} if meta["method"] == "steer" else None
    layers = set()
    for name, a in tensors.items():
        parts = name.split(".")
        if len(parts) != 3 or parts[0] != "layer" or not parts[1].isdigit():
            raise BadInput(f"{where}: unexpected tensor '{name[:60]}'")
        layers.add(int(parts[1]))
        if shapes is not None and parts[2] in shapes and tuple(a.shape) != shapes[parts[2]]:
            raise BadInput(f"{where}: tensor '{name}' has shape {tuple(a.shape)}, not {shapes[parts[2]]}")
        if not mx.issubdtype(a.dtype, mx.floating) or not bool(mx.all(mx.isfinite(a)).item()):
            raise BadInput(f"{where}: tensor '{name}' is not finite floats")
    want = ("v",) if meta["method"] == "steer" else ("R", "W", "b")
    for layer in layers:
        missing = [k for k in want if f"layer.{layer}.{k}" not in tensors]
        if missing:
            raise BadInput(f"{where}: layer {layer} lacks {', '.join(missing)}")
        if meta["method"] == "reft":
            r = tensors[f"layer.{layer}.R"].shape
            if len(r) != 2 or r[1] != hidden or tensors[f"layer.{layer}.W"].shape != r or \
                    tuple(tensors[f"layer.{layer}.b"].shape) != (r[0],):
                raise BadInput(f"{where}: layer {layer}'s R, W, b do not fit rank x {hidden}")
    if not layers:
        raise BadInput(f"{where}: holds no layer")
    return {k: v.astype(mx.float32) for k, v in tensors.items()}, dict(meta)


def write(path, method: str, tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """The file `read` reads back (tensors `layer.L.v`, or `layer.L.R/W/b`)."""
    mx.save_safetensors(str(path), {k: mx.array(np.asarray(v, np.float32)) for k, v in tensors.items()},
                        metadata={"format": FORMAT, "method": method, **{k: str(v) for k, v in meta.items()}})
