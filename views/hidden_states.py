"""How far a lens moved the hidden states: per layer and position, the cosine and the norm
ratio between a row's residual stream and the baseline's, and a 2-D PCA of the rows'
last-token states over the steps. Pure numpy on captured hidden states (layers + 1, T, D)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lenscope.core.capture import RowCapture, hidden_label


def compare(row: np.ndarray, baseline: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(layers + 1, T) cosine similarity and norm ratio |row| / |baseline| at each position
    both have (the shorter length): 1 and 1 where the lens changed nothing."""
    t = min(row.shape[1], baseline.shape[1])
    a, b = row[:, :t].astype(np.float64), baseline[:, :t].astype(np.float64)
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    cos = (a * b).sum(-1) / np.maximum(na * nb, 1e-12)
    return cos, na / np.maximum(nb, 1e-12)


def pca_2d(groups: Sequence[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Project each group's points (n_i, D) onto the two main axes of all points together.
    Returns the projected groups (n_i, 2) and the share of variance each axis explains."""
    points = np.concatenate([g.astype(np.float64) for g in groups])
    centred = points - points.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    axes = np.zeros((2, points.shape[1]))  # fewer than 2 distinct points: the missing axis is 0
    axes[: min(2, len(vt))] = vt[:2]
    var = np.zeros(2)
    var[: min(2, len(s))] = (s ** 2)[:2]
    explained = var / max(float((s ** 2).sum()), 1e-12)
    out, start = [], 0
    for g in groups:
        out.append(centred[start : start + len(g)] @ axes.T)
        start += len(g)
    return out, explained


def geometry_json(rows: Sequence[RowCapture], layer: int = -1) -> dict[str, Any]:
    """Per row: cosine and norm ratio to the baseline per hidden state and position; and a
    2-D PCA of each row's states at `layer` over its generated steps (the state that
    predicted each output token)."""
    base = rows[0]
    steps = [c.hidden[layer, c.prompt_len - 1 : len(c.ids) - 1] for c in rows]
    steps = [s if len(s) else c.hidden[layer, -1:] for s, c in zip(steps, rows)]
    points, explained = pca_2d(steps)
    out = []
    for c, pts in zip(rows, points):
        cos, ratio = compare(c.hidden, base.hidden)
        out.append({"name": c.name, "tokens": c.tokens, "token_ids": c.ids, "cosine": np.round(cos, 5).tolist(),
                    "norm_ratio": np.round(ratio, 5).tolist(), "pca": np.round(pts, 4).tolist()})
    return {"layers": [hidden_label(i) for i in range(base.hidden.shape[0])], "pca_layer": hidden_label(
        layer % base.hidden.shape[0]), "pca_explained": np.round(explained, 4).tolist(), "rows": out}
