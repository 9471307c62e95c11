"""What a comparison produces: plain data, turned into the JSON of CONTRACT.md."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


def _num(x: float | None) -> float | None:
    """JSON has no inf/nan: an infinite KL (a lens banned a likely token) becomes null."""
    return None if x is None or not math.isfinite(x) else round(x, 6)


@dataclass
class Alternative:
    token_id: int
    token: str
    prob: float


@dataclass
class RowResult:
    name: str
    lens: dict[str, Any] | None
    token_ids: list[int] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    text: str = ""
    finite: bool = True
    finished: bool = False  # reached end-of-sequence
    attention_to_marks: list[float] = field(default_factory=list)
    kl_from_baseline: list[float | None] = field(default_factory=list)
    top: list[list[Alternative]] = field(default_factory=list)  # per step, best first
    first_divergence: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "lens": self.lens,
            "token_ids": self.token_ids, "tokens": self.tokens, "text": self.text,
            "finite": self.finite, "finished": self.finished,
            "attention_to_marks": [_num(x) for x in self.attention_to_marks],
            "first_divergence": self.first_divergence,
            "kl_from_baseline": [_num(x) for x in self.kl_from_baseline],
            "top_alternatives": [[{"token_id": a.token_id, "token": a.token, "prob": round(a.prob, 6)}
                                  for a in step] for step in self.top],
        }


@dataclass
class Step:
    """One generation step for every row, as streamed to the UI."""

    index: int
    token_ids: list[int | None]  # None for rows that already stopped
    tokens: list[str | None]


@dataclass
class RunResult:
    model: str
    backend: str
    seed: int
    temperature: float
    prompt: str
    prompt_token_ids: list[int]
    prompt_tokens: list[str]
    marked_token_indices: list[int]
    rows: list[RowResult]
    timing: dict[str, float] = field(default_factory=dict)
    cancelled: bool = False
    attention: dict[str, Any] | None = None  # filled by --capture-attention

    def to_json(self) -> dict[str, Any]:
        out = {
            "model": self.model, "backend": self.backend, "seed": self.seed,
            "temperature": self.temperature, "prompt": self.prompt,
            "prompt_token_ids": self.prompt_token_ids, "prompt_tokens": self.prompt_tokens,
            "marked_token_indices": self.marked_token_indices,
            "rows": [r.to_json() for r in self.rows],
            "timing": {k: round(v, 4) for k, v in self.timing.items()},
            "cancelled": self.cancelled,
        }
        if self.attention is not None:
            out["attention"] = self.attention
        return out
