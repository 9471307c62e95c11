"""Attention probabilities softmax(Q K^T * scale + bias): an MLX-ops reference and a
Metal kernel that computes one query row per thread without materialising the
scores in a separate buffer (capture for heatmaps is memory-bound on long prompts)."""

from __future__ import annotations

import mlx.core as mx


def repeat_kv(x: mx.array, n_heads: int) -> mx.array:
    n_kv = x.shape[1]
    return x if n_kv == n_heads else mx.repeat(x, n_heads // n_kv, axis=1)


def reference(queries: mx.array, keys: mx.array, scale: float, bias: mx.array | None = None) -> mx.array:
    """(B, H, L, S) float32; keys may have fewer (grouped) heads than queries."""
    keys = repeat_kv(keys, queries.shape[1])
    scores = (queries.astype(mx.float32) * scale) @ keys.astype(mx.float32).swapaxes(-1, -2)
    if bias is not None:
        scores = scores + bias.astype(mx.float32)
    return mx.softmax(scores, axis=-1, precise=True)


SOURCE = """
    uint row = thread_position_in_grid.x;
    uint L = q_shape[2];
    uint D = q_shape[3];
    uint S = k_shape[2];
    if (row >= q_shape[0] * q_shape[1] * L) return;
    uint bh = row / L;
    const device float* qr = q + row * D;
    const device float* kb = k + bh * S * D;
    const device float* br = bias + row * S;
    device float* o = out + row * S;
    float m = -INFINITY;
    for (uint s = 0; s < S; s++) {
        float acc = 0.0f;
        for (uint d = 0; d < D; d++) acc += qr[d] * kb[s * D + d];
        acc = acc * scale[0] + br[s];
        o[s] = acc;
        m = metal::max(m, acc);
    }
    float total = 0.0f;
    for (uint s = 0; s < S; s++) {
        float e = (o[s] == -INFINITY) ? 0.0f : metal::exp(o[s] - m);
        o[s] = e;
        total += e;
    }
    for (uint s = 0; s < S; s++) o[s] = o[s] / total;
"""

_kernel = None


def kernel(queries: mx.array, keys: mx.array, scale: float, bias: mx.array | None = None) -> mx.array:
    global _kernel
    if _kernel is None:
        _kernel = mx.fast.metal_kernel(name="lenscope_attention_probs", input_names=["q", "k", "bias", "scale"],
                                       output_names=["out"], source=SOURCE)
    B, H, L, _D = queries.shape
    S = keys.shape[2]
    k = mx.contiguous(repeat_kv(keys, H).astype(mx.float32))
    b = mx.zeros((B, H, L, S)) if bias is None else mx.broadcast_to(bias.astype(mx.float32), (B, H, L, S))
    rows = B * H * L
    (out,) = _kernel(
        inputs=[mx.contiguous(queries.astype(mx.float32)), k, mx.contiguous(b), mx.array([scale], mx.float32)],
        grid=(rows, 1, 1), threadgroup=(min(256, rows), 1, 1),
        output_shapes=[(B, H, L, S)], output_dtypes=[mx.float32],
    )
    return out


def sample_inputs() -> tuple:
    """Small inputs for the self-test: grouped heads, a causal bias with -inf."""
    key = mx.random.key(7)
    k1, k2 = mx.random.split(key)
    q = mx.random.normal((2, 4, 5, 8), key=k1)
    k = mx.random.normal((2, 2, 7, 8), key=k2)
    causal = mx.arange(7)[None] <= mx.arange(2, 7)[:, None]
    bias = mx.where(causal, 0.0, -mx.inf)[None, None]
    return q, k, 8**-0.5, bias
