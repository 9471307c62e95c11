"""Running a quantized model in float: dequantize its layers once, and choose when to.

On the CPU backend the choice is measured per model (`measure_paths`): its own first
block's linear layers over a short run (a prefill and decode steps of 3 rows), as stored
(MLX's quantized CPU kernels), dequantized to float32 (the BLAS) and to bfloat16 (MLX's
own kernels), each where it fits memory. With OpenBLAS preloaded float32 wins (a 64-row
product 6x faster than bfloat16, 14x than 4-bit, on SmolLM2's MLP); on MLX's reference
BLAS bfloat16 wins (about 2x both others). On a GPU the quantized kernels are the
fast path, so the model stays as it was stored.
"""

from __future__ import annotations

import os
import resource
import sys
import time

import mlx.core as mx
from mlx import nn
from mlx.utils import tree_flatten, tree_map, tree_unflatten

from lenscope.errors import BadInput

PRECISIONS = ("auto", "native", "float32", "bfloat16", "float16")
DTYPES = {"float32": mx.float32, "bfloat16": mx.bfloat16, "float16": mx.float16}
RUN_SHAPE = (64, 3, 16)  # what a measured run is: a 64-token prefill, then 16 decode steps of 3 rows
MARGIN = 1.2  # a near tie goes to the stored weights, then to exact float32: no choice flips on noise


def _dequantized(m, dtype) -> mx.array:
    # scales/biases first: dequantizing in their float16 would round the weights
    biases = None if m.biases is None else m.biases.astype(dtype)
    return mx.dequantize(m.weight, m.scales.astype(dtype), biases, group_size=m.group_size, bits=m.bits,
                         mode=getattr(m, "mode", "affine")).astype(dtype)


def to_float(model: nn.Module, dtype=mx.float32, evaluate: bool = True) -> int:
    """Replace every QuantizedLinear/QuantizedEmbedding with a plain Linear/Embedding holding
    its dequantized weights, and cast every other float parameter to dtype. In place; returns
    how many layers were dequantized. `evaluate=False` leaves the conversion lazy."""
    dtype = DTYPES.get(dtype, dtype)
    swaps = []
    for path, m in model.named_modules():
        if isinstance(m, nn.QuantizedLinear):
            out_dims, in_dims = m.weight.shape[0], m.scales.shape[-1] * m.group_size
            new = nn.Linear(in_dims, out_dims, bias="bias" in m)
            new.weight = _dequantized(m, dtype)
            if "bias" in m:
                new.bias = m.bias.astype(dtype)
        elif isinstance(m, nn.QuantizedEmbedding):
            new = nn.Embedding(m.num_embeddings, m.dims)
            new.weight = _dequantized(m, dtype)
        else:
            continue
        swaps.append((path, new))
    if swaps:
        model.update_modules(tree_unflatten(swaps))
    floats = tree_map(lambda a: a.astype(dtype) if mx.issubdtype(a.dtype, mx.floating) else a, model.parameters())
    model.update(floats)
    if evaluate:
        mx.eval(model.parameters())
    return len(swaps)


def float_bytes(model: nn.Module, dtype=mx.float32) -> int:
    """Bytes the model's weights would take once dequantized to dtype."""
    size = DTYPES.get(dtype, dtype).size
    total = 0
    for path, m in model.named_modules():
        if isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding)):
            total += m.weight.shape[0] * m.scales.shape[-1] * m.group_size * size
    quantized = {p for p, m in model.named_modules() if isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding))}
    for name, a in tree_flatten(model.parameters()):
        if name.rpartition(".")[0] not in quantized or name.endswith(".bias"):
            total += a.size * size
    return total


def measure_paths(model: nn.Module, memory: int | None = None, reps: int = 1) -> dict[str, float]:
    """Milliseconds the first block's linear layers take over a run of RUN_SHAPE (a prefill
    and a few decode steps; best of `reps` each), for each way the CPU could run this
    quantized model whose weights fit a quarter of memory: 'native' (as stored), 'float32',
    'bfloat16'. Both shapes count: MLX's own kernels can win at 3 rows and lose 6x at 64.
    Empty for a model with nothing quantized."""
    stored = [m for _, m in model.layers[0].named_modules() if isinstance(m, nn.QuantizedLinear)]
    if not stored:
        return {}
    memory = physical_bytes() if memory is None else memory
    prefill, rows, steps = RUN_SHAPE
    paths, weights = {}, []
    for name in ("float32", "bfloat16"):
        if memory and float_bytes(model, DTYPES[name]) <= memory // 4:
            ws = [_dequantized(m, DTYPES[name]) for m in stored]
            weights += ws
            paths[name] = [lambda x, w=w: x.astype(w.dtype) @ w.T for w in ws]
    paths["native"] = [lambda x, m=m: m(x) for m in stored]
    shapes = [[mx.random.normal((n, m.scales.shape[-1] * m.group_size)) for m in stored] for n in (prefill, rows)]
    mx.eval(shapes, weights)  # dequantized before any timing
    times: dict[str, float] = {}
    for name, fns in paths.items():
        total = 0.0
        for xs, weight in zip(shapes, (1, steps)):
            best = float("inf")
            for _ in range(reps + 1):  # the first is a warm-up
                t = time.perf_counter()
                mx.eval([f(x) for f, x in zip(fns, xs)])
                best = min(best, time.perf_counter() - t)
                if times and weight * best > 2 * min(times.values()) / 1e3:
                    break  # far behind already: not worth timing well
            total += weight * best
        times[name] = round(1e3 * total, 3)
    return times


def pick_precision(requested: str | None, backend: str, measured: dict[str, float]) -> str:
    """'native', 'float32', 'bfloat16' or 'float16' for a --precision value.

    auto: on the CPU backend the first of native, float32 (exact), bfloat16 whose measured
    time (see measure_paths) is within MARGIN of the fastest; native elsewhere."""
    requested = requested or "auto"
    if requested not in PRECISIONS:
        raise BadInput(f"--precision '{requested}': expected one of {', '.join(PRECISIONS)}")
    if requested != "auto":
        return requested
    if backend != "cpu" or "native" not in measured:
        return "native"
    fastest = min(measured.values())
    return next(name for name in ("native", "float32", "bfloat16")
                if name in measured and measured[name] <= fastest * MARGIN)


def peak_rss_bytes() -> int:
    """The process's peak resident size in bytes (ru_maxrss: bytes on macOS, KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def physical_bytes() -> int:
    """Physical memory of this machine (0 when the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 0
