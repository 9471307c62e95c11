"""Sums over a vocabulary that keep float32's precision.

MLX's CPU `sum` (and so `logsumexp`) adds a 49k-262k vector with a relative error near
1e-4 to 4e-4 (SmolLM2's and gemma's vocabularies), which every probability, KL and
score inherits; numpy's pairwise float32 sum is within 1e-6. Summing blocks of
`BLOCK` first and then the block sums keeps each partial sum small.
"""

from __future__ import annotations

import mlx.core as mx

BLOCK = 256


def vocab_sum(x: mx.array) -> mx.array:
    """Sum over the last axis in two stages (the axis is kept, as keepdims=True)."""
    n = x.shape[-1]
    if n <= BLOCK:
        return mx.sum(x, axis=-1, keepdims=True)
    pad = (-n) % BLOCK
    if pad:
        x = mx.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)])
    blocks = x.reshape(*x.shape[:-1], -1, BLOCK).sum(axis=-1)
    return mx.sum(blocks, axis=-1, keepdims=True)


def logsumexp(x: mx.array) -> mx.array:
    """log(sum(exp(x))) over the last axis, kept; -inf where every entry is -inf."""
    m = mx.max(x, axis=-1, keepdims=True)
    m = mx.where(mx.isfinite(m), m, mx.zeros_like(m))  # all -inf: exp gives 0s, log gives -inf
    return mx.log(vocab_sum(mx.exp(x - m))) + m


def log_softmax(x: mx.array) -> mx.array:
    return x - logsumexp(x)
