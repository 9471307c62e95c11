"""Captures of a finished comparison, one forward per row over prompt + its output with its
lenses applied: attention (layers, heads, T, T), and with `hidden` the residual stream
(layers + 1, T, D). The TUI's views, `generate --capture-attention`, `logit-lens`,
`geometry` and `lenscope run`'s heatmaps all read a row through `capture_row`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from lenscope.app.core.results import RunResult
from lenscope.lenses.base import Variant

if TYPE_CHECKING:
    from lenscope.app.core.engine import Engine


@dataclass
class RowCapture:
    name: str
    ids: list[int]  # prompt + this row's output
    tokens: list[str]
    prompt_len: int
    attention: np.ndarray  # (layers, heads, T, T)
    hidden: np.ndarray | None  # (layers + 1, T, D): embeddings, then each block's output


def capture_row(engine: Engine, result: RunResult, variants: Sequence[Variant], row: int,
                hidden: bool = True) -> RowCapture:
    ids = result.prompt_token_ids + result.rows[row].token_ids
    attention, states = engine.inspect(ids, variants[row].lenses, prompt_len=len(result.prompt_token_ids),
                                       marks=result.marked_token_indices, hidden=hidden, name=variants[row].name)
    return RowCapture(result.rows[row].name, ids, result.prompt_tokens + result.rows[row].tokens,
                      len(result.prompt_token_ids), attention, states)


def hidden_label(index: int) -> str:
    """Hidden-state index 0 is the embeddings, index l + 1 the output of block l."""
    return "emb" if index == 0 else f"L{index - 1}"


def attention_summary(engine: Engine, result: RunResult, variants: Sequence[Variant]) -> dict[str, Any]:
    """What `generate --capture-attention --json` adds: per row, the mean over layers
    and heads, and each layer's share of attention on the marks (mean over heads)."""
    rows = []
    marks = result.marked_token_indices
    for r in range(len(result.rows)):
        cap = capture_row(engine, result, variants, r, hidden=False)
        probs = cap.attention
        entry: dict[str, Any] = {"name": cap.name, "tokens": cap.tokens,
                                 "mean": np.round(probs.mean(axis=(0, 1)), 5).tolist()}
        if marks:
            entry["marks_share_by_layer"] = np.round(probs[:, :, :, marks].sum(-1).mean(axis=(1, 2)), 5).tolist()
        rows.append(entry)
    return {"layers": engine.n_layers, "heads": int(probs.shape[1]), "rows": rows}
