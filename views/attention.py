"""What the attention views compute from one row's captured attention (layers, heads, T, T).

Pure numpy, no model: the TUI, the CLI, the reports and the tests read the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def rollout(attention: np.ndarray, residual: float = 0.5) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020): (T, T), how much each query token depends on
    each key token through all layers. Per layer: the mean over heads, with the residual
    identity mixed in (`residual` I + (1 - `residual`) A), rows renormalised; then the
    product of the layers, the first layer applied first."""
    n_layers, _, t, _ = attention.shape
    out = np.eye(t)
    for layer in range(n_layers):
        a = (1 - residual) * attention[layer].astype(np.float64).mean(axis=0) + residual * np.eye(t)
        a /= a.sum(axis=-1, keepdims=True)
        out = a @ out
    return out


def head_means(attention: np.ndarray) -> np.ndarray:
    """(layers, T, T) the mean over heads: what rollout reads; worth keeping per row."""
    return attention.astype(np.float64).mean(axis=1)


def rollout_row(attention: np.ndarray, query: int, residual: float = 0.5, means: np.ndarray | None = None) -> np.ndarray:
    """(T,) row `query` of `rollout`, as a vector times the layers' matrices (last layer
    first): O(layers x T^2) instead of the full product's O(layers x T^3). `means`: the
    row's `head_means`, when the caller keeps them."""
    means = head_means(attention) if means is None else means
    n_layers, t, _ = means.shape
    v = np.zeros(t)
    v[query] = 1.0
    for layer in reversed(range(n_layers)):
        a = (1 - residual) * means[layer] + residual * np.eye(t)
        v = (v / a.sum(axis=-1)) @ a  # rows renormalised, as in `rollout`
    return v


def token_weights(attention: np.ndarray, query: int, layer: int | None = None, head: int | None = None,
                  use_rollout: bool = False, means: np.ndarray | None = None) -> np.ndarray:
    """(T,) how much token `query` attends to each token: the mean over layers and heads,
    one layer (mean over heads), one layer's head, or its rollout row."""
    if use_rollout:
        return rollout_row(attention, query, means=means)
    picked = attention if layer is None else attention[layer : layer + 1]
    picked = picked if head is None else picked[:, head : head + 1]
    return picked[:, :, query].astype(np.float64).mean(axis=(0, 1))


def head_shares(attention: np.ndarray, marks: Sequence[int], query: int) -> np.ndarray:
    """(layers, heads): each head's share of attention on the marked keys, from token `query`."""
    marks = [m for m in marks if m <= query]
    return attention[:, :, query, marks].astype(np.float64).sum(axis=-1)


def head_entropy(attention: np.ndarray, query: int) -> np.ndarray:
    """(layers, heads): entropy (nats) of each head's attention from token `query`."""
    p = attention[:, :, query, : query + 1].astype(np.float64)
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=-1)
