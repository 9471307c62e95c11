"""GGUF tensors -> MLX arrays, one tensor at a time and in row chunks (vectorized numpy).

Types whose blocks are an affine grid per 32 weights (w = scale * q + bias) are repacked
into MLX's affine quantized layout bit for bit: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K.
The rest (Q2_K, Q3_K and Q6_K scale every 16 weights; IQ4_NL/IQ4_XS use a non-linear
codebook) have no exact MLX layout: llama.cpp's own dequantizer (gguf.quants) turns them
into float32, and they are requantized to MLX affine 8-bit, group 32, with the error
against the dequantized weights measured and returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mlx.core as mx
import numpy as np

from lenscope.errors import BadInput

GROUP = 32
FLOAT_TYPES = ("F32", "F16", "BF16")
EXACT_TYPES = {"Q4_0": 4, "Q4_1": 4, "Q5_0": 5, "Q5_1": 5, "Q8_0": 8, "Q4_K": 4, "Q5_K": 5}
REQUANTIZED_TYPES = ("Q2_K", "Q3_K", "Q6_K", "IQ4_NL", "IQ4_XS")
REQUANT_BITS = 8
SUPPORTED_TYPES = FLOAT_TYPES + tuple(EXACT_TYPES) + REQUANTIZED_TYPES
CHUNK_WEIGHTS = 1 << 23  # weights per step: bounds the temporaries of one big tensor


@dataclass
class Converted:
    """One tensor in MLX form: `weight` alone (float), or weight/scales/biases (quantized)."""

    arrays: dict[str, mx.array]
    bits: int | None = None
    # requantized types only: max |w' - w| and rms(w' - w) / rms(w) against the dequantized w
    error: dict[str, float] = field(default_factory=dict)


def _f16(blocks: np.ndarray, start: int) -> np.ndarray:
    return blocks[:, start:start + 2].copy().view(np.float16).astype(np.float32)


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """(n, 16) bytes -> (n, 32): low nibbles are weights 0-15, high nibbles 16-31."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)


def _high_bits(qh: np.ndarray) -> np.ndarray:
    """(n, 4) bytes -> (n, 32) fifth bits, weight j from bit j (Q5_0/Q5_1)."""
    return np.unpackbits(qh, axis=-1, bitorder="little") << 4


def _kquant_scales(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K/Q5_K: per 32-weight group, scale d*sc and bias -dmin*m (float32, as llama.cpp)."""
    from gguf.quants import Q4_K  # lazy: startup

    d, dmin = _f16(blocks, 0), _f16(blocks, 2)
    sc, m = Q4_K.get_scale_min(blocks[:, 4:16].copy())
    return d * sc.astype(np.float32), -(dmin * m.astype(np.float32))


def _affine(kind: str, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(q (n, block), scale (n, groups), bias (n, groups)) of n blocks of one type."""
    n = blocks.shape[0]
    if kind == "Q4_0":
        d = _f16(blocks, 0)
        return _nibbles(blocks[:, 2:]), d, -8 * d
    if kind == "Q4_1":
        return _nibbles(blocks[:, 4:]), _f16(blocks, 0), _f16(blocks, 2)
    if kind == "Q5_0":
        d = _f16(blocks, 0)
        return _nibbles(blocks[:, 6:]) | _high_bits(blocks[:, 2:6]), d, -16 * d
    if kind == "Q5_1":
        return _nibbles(blocks[:, 8:]) | _high_bits(blocks[:, 4:8]), _f16(blocks, 0), _f16(blocks, 2)
    if kind == "Q8_0":
        d = _f16(blocks, 0)
        return (blocks[:, 2:].view(np.int8).astype(np.int16) + 128).astype(np.uint8), d, -128 * d
    scale, bias = _kquant_scales(blocks)
    # four chunks of 32 bytes: low nibbles are group 2i, high nibbles group 2i+1
    qs = blocks[:, -128:].reshape(n, 4, 1, 32) >> np.array([0, 4], np.uint8).reshape(1, 1, 2, 1)
    q = (qs & 0x0F).reshape(n, 8, 32)
    if kind == "Q5_K":  # 32 bytes of fifth bits: group j takes bit j of each byte
        qh = blocks[:, 16:48].reshape(n, 1, 32) >> np.arange(8, dtype=np.uint8).reshape(1, 8, 1)
        q = q | ((qh & 1) << 4)
    return q.reshape(n, 256), scale, bias


def pack(q: np.ndarray, bits: int) -> np.ndarray:
    """(rows, cols) integers < 2**bits -> MLX's packed uint32 words: a little-endian bit
    stream, weight i at bits [i*bits, (i+1)*bits)."""
    rows, cols = q.shape
    if bits == 8:
        return np.ascontiguousarray(q, dtype=np.uint8).view(np.uint32)
    if bits == 4:
        return np.ascontiguousarray(q[:, 0::2] | (q[:, 1::2] << 4), dtype=np.uint8).view(np.uint32)
    stream = (q[..., None] >> np.arange(bits, dtype=np.uint8)) & 1
    return np.packbits(stream.reshape(rows, cols * bits), axis=-1, bitorder="little").view(np.uint32)


def _narrow(a: np.ndarray) -> np.ndarray:
    """float16 when that holds every value exactly (legacy types), else float32 (K-types'
    d*sc products need more than float16's 11 bits)."""
    half = a.astype(np.float16)
    return half if np.array_equal(half.astype(np.float32), a) else a


def _row_chunks(rows: int, cols: int):
    step = max(1, CHUNK_WEIGHTS // max(cols, 1))
    return (slice(i, min(i + step, rows)) for i in range(0, rows, step))


def convert_tensor(tensor) -> Converted:
    """A `gguf.ReaderTensor` (memory-mapped) in MLX form; the caller checked its type."""
    from gguf import GGML_QUANT_SIZES  # lazy: startup
    from gguf.quants import dequantize  # lazy: startup

    kind = tensor.tensor_type.name
    shape = tuple(int(d) for d in reversed(tensor.shape.tolist()))  # GGML lists dims fastest first
    cols = shape[-1]
    rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    data = np.asarray(tensor.data)
    block, size = GGML_QUANT_SIZES[tensor.tensor_type]
    if cols % block or data.nbytes != rows * cols // block * size:  # a cut file, or a shape that lies
        raise BadInput(f"GGUF tensor '{tensor.name}' ({kind}, shape {shape}) holds {data.nbytes} bytes, "
                       f"not the {rows * cols // block * size} its shape needs")
    if kind in FLOAT_TYPES:
        if kind == "BF16":  # as raw bits: numpy has no bfloat16
            bits = data.view(np.uint16).reshape(shape)
            return Converted({"weight": mx.array(bits).view(mx.bfloat16)})
        return Converted({"weight": mx.array(data.reshape(shape))})
    if len(shape) == 1:  # a quantized vector (no model has one; norms are F32): plain float32
        return Converted({"weight": mx.array(dequantize(data.reshape(1, -1), tensor.tensor_type).reshape(shape))})
    blocks = data.reshape(rows, cols // block, size)
    weights, scales, biases = [], [], []
    if kind in EXACT_TYPES:
        bits = EXACT_TYPES[kind]
        for part in _row_chunks(rows, cols):
            b = blocks[part].reshape(-1, size)
            q, scale, bias = _affine(kind, b)
            n = part.stop - part.start
            weights.append(pack(q.reshape(n, cols), bits))
            scales.append(scale.reshape(n, cols // GROUP))
            biases.append(bias.reshape(n, cols // GROUP))
        scale, bias = np.concatenate(scales), np.concatenate(biases)
        arrays = {"weight": mx.array(np.concatenate(weights)), "scales": mx.array(_narrow(scale)),
                  "biases": mx.array(_narrow(bias))}
        return Converted(_reshaped(arrays, shape), bits)
    worst, err2, ref2 = 0.0, 0.0, 0.0
    for part in _row_chunks(rows, cols):
        w = dequantize(blocks[part].reshape(part.stop - part.start, -1), tensor.tensor_type).astype(np.float32)
        wq, s, b = mx.quantize(mx.array(w), group_size=GROUP, bits=REQUANT_BITS)
        back = np.array(mx.dequantize(wq, s, b, group_size=GROUP, bits=REQUANT_BITS))
        worst = max(worst, float(np.abs(back - w).max()))
        err2 += float(((back - w).astype(np.float64) ** 2).sum())
        ref2 += float((w.astype(np.float64) ** 2).sum())
        weights.append(np.array(wq))
        scales.append(np.array(s))
        biases.append(np.array(b))
    arrays = {"weight": mx.array(np.concatenate(weights)), "scales": mx.array(np.concatenate(scales)),
              "biases": mx.array(np.concatenate(biases))}
    error = {"max_abs": worst, "rel_rms": (err2 / ref2) ** 0.5 if ref2 else 0.0}
    return Converted(_reshaped(arrays, shape), REQUANT_BITS, error)


def _reshaped(arrays: dict[str, mx.array], shape: tuple[int, ...]) -> dict[str, mx.array]:
    """A 3-D or 4-D tensor keeps its leading dims (rows were flattened to convert)."""
    if len(shape) <= 2:
        return arrays
    return {k: v.reshape(*shape[:-1], v.shape[-1]) for k, v in arrays.items()}
