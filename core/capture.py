"""Captures of a finished comparison, one forward per row over prompt + its output with its
lenses applied: attention (layers, heads, T, T), and with `hidden` the residual stream
(layers + 1, T, D). The TUI's views, `generate --capture-attention`, `logit-lens`,
`geometry` and `lenscope run`'s heatmaps all read rows through `capture_rows`, which
batches them in one forward."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lenscope.core.results import RunResult
from lenscope.lenses.base import Variant

if TYPE_CHECKING:
    from lenscope.core.engine import Engine


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
    return capture_rows(engine, result, variants, [row], hidden)[0]


def capture_rows(engine: Engine, result: RunResult, variants: Sequence[Variant], rows: Sequence[int] | None = None,
                 hidden: bool = True) -> list[RowCapture]:
    """Several rows' captures from one batched forward (a batch of 3 costs ~2 of 1 on a CPU BLAS)."""
    rows = range(len(result.rows)) if rows is None else rows
    P = len(result.prompt_token_ids)
    inputs = [(result.prompt_token_ids + result.rows[r].token_ids, variants[r]) for r in rows]
    outs = engine.inspect_rows(inputs, prompt_len=P, marks=result.marked_token_indices, hidden=hidden)
    return [RowCapture(result.rows[r].name, ids, result.prompt_tokens + result.rows[r].tokens, P, attention, states)
            for r, (ids, _), (attention, states) in zip(rows, inputs, outs)]


def hidden_label(index: int) -> str:
    """Hidden-state index 0 is the embeddings, index l + 1 the output of block l."""
    return "emb" if index == 0 else f"L{index - 1}"


def attention_summary(engine: Engine, result: RunResult, variants: Sequence[Variant]) -> dict[str, Any]:
    """What `generate --capture-attention --json` adds: per row, the mean over layers
    and heads, and each layer's share of attention on the marks (mean over heads)."""
    rows = []
    marks = result.marked_token_indices
    for cap in capture_rows(engine, result, variants, hidden=False):
        probs = cap.attention
        entry: dict[str, Any] = {"name": cap.name, "tokens": cap.tokens,
                                 "mean": np.round(probs.mean(axis=(0, 1)), 5).tolist()}
        if marks:
            entry["marks_share_by_layer"] = np.round(probs[:, :, :, marks].sum(-1).mean(axis=(1, 2)), 5).tolist()
        rows.append(entry)
    return {"layers": engine.n_layers, "heads": int(probs.shape[1]), "rows": rows}
