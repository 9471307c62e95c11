"""What the views read about a finished comparison: per row, one forward over prompt + its
output with its lenses applied, capturing attention and the residual stream together
(`Engine.inspect`), and the JSON the `logit-lens` and `geometry` commands print."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from lenscope.app import geometry
from lenscope.app.logit_lens import logit_lens
from lenscope.app.results import RunResult
from lenscope.lenses.base import Variant


@dataclass
class RowCapture:
    name: str
    ids: list[int]  # prompt + this row's output
    tokens: list[str]
    prompt_len: int
    attention: np.ndarray  # (layers, heads, T, T)
    hidden: np.ndarray | None  # (layers + 1, T, D): embeddings, then each block's output


def capture_row(engine, result: RunResult, variants: Sequence[Variant], row: int, hidden: bool = True) -> RowCapture:
    ids = result.prompt_token_ids + result.rows[row].token_ids
    attention, states = engine.inspect(ids, variants[row].lenses, prompt_len=len(result.prompt_token_ids),
                                       marks=result.marked_token_indices, hidden=hidden)
    return RowCapture(result.rows[row].name, ids, result.prompt_tokens + result.rows[row].tokens,
                      len(result.prompt_token_ids), attention, states)


def hidden_label(index: int) -> str:
    """Hidden-state index 0 is the embeddings, index l + 1 the output of block l."""
    return "emb" if index == 0 else f"L{index - 1}"


def logit_lens_json(engine, cap: RowCapture, positions: Sequence[int], top_k: int,
                    pinned: Sequence[int]) -> dict[str, Any]:
    lens = logit_lens(engine, cap.hidden, positions, top_k, pinned)
    out = []
    for p, pos in enumerate(lens.positions):
        final = int(lens.top_ids[-1, p, 0])
        out.append({
            "position": pos,
            "input": cap.tokens[pos],
            "next": cap.tokens[pos + 1] if pos + 1 < len(cap.tokens) else None,
            "prediction": engine.token_text(final),
            "first_top1_layer": _label_or_none(lens.first_top1_layer(p, final)),
            "layers": [{"layer": hidden_label(li),
                        "top": [[engine.token_text(int(t)), round(float(q), 5)]
                                for t, q in zip(lens.top_ids[li, p], lens.top_probs[li, p])]}
                       for li in range(lens.top_ids.shape[0])],
            "pinned": {engine.token_text(t): np.round(lens.pinned_probs[:, p, k], 5).tolist()
                       for k, t in enumerate(lens.pinned_ids)},
        })
    return {"name": cap.name, "positions": out}


def _label_or_none(index: int | None) -> str | None:
    return None if index is None else hidden_label(index)


def geometry_json(rows: Sequence[RowCapture], layer: int = -1) -> dict[str, Any]:
    """Per row: cosine and norm ratio to the baseline per hidden state and position; and a
    2-D PCA of each row's states at `layer` over its generated steps (the state that
    predicted each output token)."""
    base = rows[0]
    steps = [c.hidden[layer, c.prompt_len - 1 : len(c.ids) - 1] for c in rows]
    steps = [s if len(s) else c.hidden[layer, -1:] for s, c in zip(steps, rows)]
    points, explained = geometry.pca_2d(steps)
    out = []
    for c, pts in zip(rows, points):
        cos, ratio = geometry.compare(c.hidden, base.hidden)
        out.append({"name": c.name, "tokens": c.tokens, "cosine": np.round(cos, 5).tolist(),
                    "norm_ratio": np.round(ratio, 5).tolist(), "pca": np.round(pts, 4).tolist()})
    return {"layers": [hidden_label(i) for i in range(base.hidden.shape[0])], "pca_layer": hidden_label(
        layer % base.hidden.shape[0]), "pca_explained": np.round(explained, 4).tolist(), "rows": out}
