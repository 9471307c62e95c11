"""Weight lenses ("blurs"): reversible edits of chosen linear layers.

Each computes dW once (from a dequantized copy when the layer is quantized) and hooks
each edited layer with `x -> x dW^T`, which the engine adds to its own row's output
only: the model's arrays are never written, so the baseline row and every later run
see the original weights, byte for byte.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import mlx.core as mx
import numpy as np
from mlx import nn
from mlx.nn.layers import distributed

from lenscope.lenses.base import HookPoint, Hooks, Lens
from lenscope.lenses.errors import BadInput
from lenscope.lenses.params import Param
from lenscope.lenses.probe import Probe

TARGETS = ("mlp.down_proj", "mlp.up_proj", "mlp.gate_proj", "self_attn.o_proj", "self_attn.q_proj",
           "self_attn.k_proj", "self_attn.v_proj")


# the linear layers of a tensor-parallel model (mlx-lm's model.shard) hold a slice of their
# weight: by output rows (their output is this process's slice), or by input columns (summed
# across processes after)
BY_ROWS = (distributed.AllToShardedLinear, distributed.QuantizedAllToShardedLinear)
BY_COLUMNS = (distributed.ShardedToAllLinear, distributed.QuantizedShardedToAllLinear)


def _split(module: nn.Module) -> int | None:
    """The axis of the weight this process holds a slice of (None: the whole weight)."""
    return 0 if isinstance(module, BY_ROWS) else 1 if isinstance(module, BY_COLUMNS) else None


def dense_weight(module: nn.Module) -> np.ndarray:
    """The layer's whole weight, dequantized; on a tensor-parallel model every rank's slice
    gathered (every rank calls this for the same layers in the same order)."""
    if "scales" in module:
        w = mx.dequantize(module.weight, module.scales, module.get("biases"), module.group_size, module.bits)
    else:
        w = module.weight
    w = w.astype(mx.float32)
    axis = _split(module)
    if axis is not None:
        w = mx.moveaxis(mx.distributed.all_gather(mx.moveaxis(w, axis, 0), group=module.group), 0, axis)
    return np.array(w)


def _added_output(module: nn.Module, dw: np.ndarray) -> Callable[[Any, mx.array], mx.array]:
    """What W + dW adds to a linear layer's output, x dW^T, from this process's slice of dW:
    an output-split layer's rows, or an input-split layer's columns summed across ranks."""
    axis, group = _split(module), getattr(module, "group", None)
    if axis is not None:
        n = dw.shape[axis] // group.size()
        dw = np.take(dw, np.arange(group.rank() * n, (group.rank() + 1) * n), axis=axis)
    d = mx.array(dw)
    if axis == 1:
        return lambda ctx, x: mx.distributed.all_sum(x @ d.T, group=group)
    return lambda ctx, x: x @ d.T


def gaussian_blur(w: np.ndarray, sigma: float, axis: int) -> np.ndarray:
    """Blur along an axis with a normalised Gaussian, reflecting at the edges; sigma 0 is identity."""
    if sigma <= 0:
        return w.copy()
    radius = max(1, math.ceil(3 * sigma))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    pad = [(0, 0)] * w.ndim
    pad[axis] = (radius, radius)
    padded = np.pad(w, pad, mode="reflect" if w.shape[axis] > radius else "edge")
    out = np.zeros_like(w)
    n = w.shape[axis]
    for k, o in zip(kernel, offsets):
        out += k * np.take(padded, np.arange(n) + radius + o, axis=axis)
    return out


class _WeightLens(Lens):
    """Finds the target modules; subclasses turn a dense W into W'."""

    def targets(self, probe: Probe) -> dict[str, nn.Module]:
        found = {}
        for i in sorted(self.layers_in(probe.n_layers)):
            hit = probe.linear(i, self.target)
            if hit is None:
                raise BadInput(f"{self.kind}: layer {i} has no linear '{self.target}' in this model")
            found[hit[0]] = hit[1]
        return found

    def prepare(self, probe: Probe, ids: list[int], marks: list[int]) -> None:
        """dW of each target from its whole weight (one at a time: on a tensor-parallel model
        only the weight being edited is ever whole), kept as this process's slice."""
        self.added = {}  # module path -> x -> x dW^T
        for path, module in self.targets(probe).items():
            w = dense_weight(module)
            self.added[path] = _added_output(module, (self.transform(w, probe) - w).astype(np.float32))

    def hooks(self, n_layers: int) -> Hooks:
        return {HookPoint("weights", path=path): added for path, added in self.added.items()}

    def transform(self, w: np.ndarray, probe: Probe) -> np.ndarray:
        raise NotImplementedError


LAYERS = Param("layers", "ints", None, "layers to edit (default: all)")
TARGET = Param("target", "choice", "mlp.down_proj", "which linear layer in each block", choices=TARGETS)


class Blur(_WeightLens):
    kind = "blur"
    summary = "Gaussian blur of a weight matrix along its rows or columns"
    params = (
        Param("sigma", "float", 1.0, "blur width in matrix entries (0 = identity)", 0, 64),
        Param("axis", "choice", "rows", "blur across output rows or input columns", choices=("rows", "cols")),
        LAYERS, TARGET,
    )

    def is_neutral(self) -> bool:
        return self.sigma == 0

    def transform(self, w: np.ndarray, probe: Probe) -> np.ndarray:
        return gaussian_blur(w, self.sigma, 0 if self.axis == "rows" else 1)


class Noise(_WeightLens):
    kind = "noise"
    summary = "add seeded Gaussian noise to a weight matrix, relative to its standard deviation"
    params = (
        Param("scale", "float", 0.1, "noise std as a fraction of the matrix's std (0 = identity)", 0, 10),
        Param("seed", "int", 0, "noise seed", 0, 2**31 - 1),
        LAYERS, TARGET,
    )

    def is_neutral(self) -> bool:
        return self.scale == 0

    def transform(self, w: np.ndarray, probe: Probe) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        return w + self.scale * float(w.std()) * rng.standard_normal(w.shape).astype(np.float32)


class HeadScale(_WeightLens):
    kind = "head-scale"
    summary = "scale what chosen attention heads write to the residual stream (their o_proj columns)"
    params = (
        Param("heads", "ints", (0,), "heads to scale, e.g. 0|3"),
        Param("scale", "float", 0.0, "factor on those heads' output (1 = identity, 0 = ablate)", -10, 10),
        LAYERS,
    )
    target = "self_attn.o_proj"

    def is_neutral(self) -> bool:
        return self.scale == 1.0

    def transform(self, w: np.ndarray, probe: Probe) -> np.ndarray:
        n_heads = probe.n_heads
        head_dim = w.shape[1] // n_heads
        bad = [h for h in self.heads if not 0 <= h < n_heads]
        if bad:
            raise BadInput(f"head-scale: head {bad[0]} outside 0..{n_heads - 1}")
        out = w.copy()
        for h in self.heads:
            out[:, h * head_dim : (h + 1) * head_dim] *= self.scale
        return out


class SvdRemove(_WeightLens):
    kind = "svd-remove"
    summary = "remove the top-k singular directions of a weight matrix"
    params = (
        Param("k", "int", 1, "how many top singular directions to remove (0 = identity)", 0, 4096),
        LAYERS, TARGET,
    )

    def is_neutral(self) -> bool:
        return self.k == 0

    def transform(self, w: np.ndarray, probe: Probe) -> np.ndarray:
        if self.k == 0:
            return w.copy()
        u, s, vt = np.linalg.svd(w.astype(np.float64), full_matrices=False)
        k = min(self.k, len(s))
        return (w - (u[:, :k] * s[:k]) @ vt[:k]).astype(np.float32)
