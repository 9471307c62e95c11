"""Running a quantized model in float: dequantize its layers once, and choose when to.

On the CPU backend with a fast BLAS (OpenBLAS preloaded), a float32 matmul beats MLX's
quantized CPU kernels, and float32 is also the exact reference for tests; on a GPU
the quantized kernels are the fast path, so the model stays as it was stored.
"""

from __future__ import annotations

import os

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_map, tree_unflatten

from lenscope.app.errors import BadInput

PRECISIONS = ("auto", "native", "float32", "float16")
DTYPES = {"float32": mx.float32, "float16": mx.float16}


def _dequantized(m, dtype) -> mx.array:
    # scales/biases first: dequantizing in their float16 would round the weights
    biases = None if m.biases is None else m.biases.astype(dtype)
    return mx.dequantize(m.weight, m.scales.astype(dtype), biases, group_size=m.group_size, bits=m.bits,
                         mode=getattr(m, "mode", "affine")).astype(dtype)


def to_float(model: nn.Module, dtype=mx.float32) -> int:
    """Replace every QuantizedLinear/QuantizedEmbedding with a plain Linear/Embedding holding
    its dequantized weights, and cast every other float parameter to dtype. In place; returns
    how many layers were dequantized."""
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


def pick_precision(requested: str | None, backend: str, blas_is_fast: bool, model_bytes: int,
                   memory: int | None = None) -> str:
    """'native', 'float32' or 'float16' for a --precision value.

    auto: float32 on the CPU backend when the BLAS is fast and the float32 weights
    (model_bytes, see float_bytes) take at most a quarter of memory; native otherwise.
    """
    requested = requested or "auto"
    if requested not in PRECISIONS:
        raise BadInput(f"--precision '{requested}': expected one of {', '.join(PRECISIONS)}")
    if requested != "auto":
        return requested
    memory = physical_bytes() if memory is None else memory
    if backend == "cpu" and blas_is_fast and memory and model_bytes <= memory // 4:
        return "float32"
    return "native"


def physical_bytes() -> int:
    """Physical memory of this machine (0 when the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 0
