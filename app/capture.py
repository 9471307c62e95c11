"""Attention capture for whole comparisons: one forward per row over prompt + output."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from lenscope.app.results import RunResult
from lenscope.lenses.base import Variant


def row_attention(engine, result: RunResult, variants: Sequence[Variant], row: int) -> np.ndarray:
    """(layers, heads, T, T) for one row, its lenses applied, T = prompt + its output."""
    ids = result.prompt_token_ids + result.rows[row].token_ids
    return engine.capture_attention(ids, variants[row].lenses, prompt_len=len(result.prompt_token_ids),
                                    marks=result.marked_token_indices)


def attention_summary(engine, result: RunResult, variants: Sequence[Variant]) -> dict[str, Any]:
    """What `generate --capture-attention --json` adds: per row, the mean over layers
    and heads, and each layer's share of attention on the marks (mean over heads)."""
    rows = []
    marks = result.marked_token_indices
    for r, row in enumerate(result.rows):
        probs = row_attention(engine, result, variants, r)
        entry: dict[str, Any] = {
            "name": row.name,
            "tokens": result.prompt_tokens + row.tokens,
            "mean": np.round(probs.mean(axis=(0, 1)), 5).tolist(),
        }
        if marks:
            entry["marks_share_by_layer"] = np.round(probs[:, :, :, marks].sum(-1).mean(axis=(1, 2)), 5).tolist()
        rows.append(entry)
    return {"layers": engine.n_layers, "heads": int(probs.shape[1]), "rows": rows}
