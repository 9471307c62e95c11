"""The logit lens: at every layer and position, the token the model would predict if
decoding stopped there (its final norm and unembedding on that layer's residual stream).

Reads the hidden states a capture recorded (layers + 1, T, D): index 0 is the embeddings,
index l + 1 the output of block l, so the last index decodes to the model's own logits.
Decoding costs a (D x vocab) product per layer and position, so callers pass the
positions they show, not the whole sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mlx.core as mx
import numpy as np

from lenscope.core.capture import RowCapture, hidden_label
from lenscope.core.numerics import log_softmax

if TYPE_CHECKING:
    from lenscope.core.engine import Engine


@dataclass
class LogitLens:
    positions: list[int]
    top_ids: np.ndarray  # (layers + 1, P, k): best tokens at each layer and position
    top_probs: np.ndarray  # (layers + 1, P, k)
    pinned_ids: list[int]
    pinned_probs: np.ndarray  # (layers + 1, P, n pinned): probability of each pinned token

    def first_top1_layer(self, p: int, token_id: int) -> int | None:
        """The first hidden-state index (0 = embeddings) where `token_id` is top-1 at the
        p-th position, or None when it never is."""
        hits = np.nonzero(self.top_ids[:, p, 0] == token_id)[0]
        return int(hits[0]) if len(hits) else None


def logit_lens(engine: Engine, hidden: np.ndarray, positions: Sequence[int], top_k: int = 5,
               pinned: Sequence[int] = (), chunk: int = 8) -> LogitLens:
    """Decode `hidden` (layers + 1, T, D) at `positions` with `engine.decode_hidden`."""
    positions = [int(p) for p in positions]
    tops, probs, pins = [], [], []
    for start in range(0, len(positions), chunk):  # bounds the (layers, chunk, vocab) logits
        h = mx.array(hidden[:, positions[start : start + chunk]])
        logits = engine.decode_hidden(h).astype(mx.float32)
        logp = log_softmax(logits)
        part = mx.argpartition(-logp, kth=top_k - 1, axis=-1)[..., :top_k]  # a full sort is 10x slower
        part_logp = mx.take_along_axis(logp, part, axis=-1)
        order = mx.argsort(-part_logp, axis=-1)
        tops.append(np.array(mx.take_along_axis(part, order, axis=-1)))
        probs.append(np.exp(np.array(mx.take_along_axis(part_logp, order, axis=-1))))
        pins.append(np.exp(np.array(logp[..., list(pinned)])) if pinned else
                    np.zeros(logp.shape[:2] + (0,), np.float32))
    return LogitLens(positions, np.concatenate(tops, 1), np.concatenate(probs, 1), [int(i) for i in pinned],
                     np.concatenate(pins, 1))


def logit_lens_json(engine: Engine, cap: RowCapture, positions: Sequence[int], top_k: int,
                    pinned: Sequence[int]) -> dict[str, Any]:
    """One row of `logit-lens --json` (docs/json/logit-lens.schema.json): every token as its
    text and its id."""
    lens = logit_lens(engine, cap.hidden, positions, top_k, pinned)
    out = []
    for p, pos in enumerate(lens.positions):
        final = int(lens.top_ids[-1, p, 0])
        after = pos + 1 < len(cap.tokens)
        out.append({
            "position": pos,
            "input": cap.tokens[pos], "input_id": cap.ids[pos],
            "next": cap.tokens[pos + 1] if after else None, "next_id": cap.ids[pos + 1] if after else None,
            "prediction": engine.token_text(final), "prediction_id": final,
            "first_top1_layer": _label_or_none(lens.first_top1_layer(p, final)),
            "layers": [{"layer": hidden_label(li),
                        "top": [{"token": engine.token_text(int(t)), "id": int(t), "prob": round(float(q), 5)}
                                for t, q in zip(lens.top_ids[li, p], lens.top_probs[li, p])]}
                       for li in range(lens.top_ids.shape[0])],
            "pinned": [{"token": engine.token_text(t), "id": t, "probs": np.round(lens.pinned_probs[:, p, k], 5).tolist()}
                       for k, t in enumerate(lens.pinned_ids)],
        })
    return {"name": cap.name, "positions": out}


def _label_or_none(index: int | None) -> str | None:
    return None if index is None else hidden_label(index)
