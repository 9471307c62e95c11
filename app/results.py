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


def from_json(data: dict[str, Any]) -> RunResult:
    """A saved result back into objects (sessions replay their outputs)."""
    rows = []
    for r in data.get("rows", []):
        row = RowResult(name=str(r.get("name", "?")), lens=r.get("lens"))
        row.token_ids = [int(t) for t in r.get("token_ids", [])]
        row.tokens = [str(t) for t in r.get("tokens", [])]
        row.text = str(r.get("text", ""))
        row.finite = bool(r.get("finite", True))
        row.finished = bool(r.get("finished", False))
        row.attention_to_marks = [float(x) for x in r.get("attention_to_marks", []) if x is not None]
        row.kl_from_baseline = list(r.get("kl_from_baseline", []))
        row.first_divergence = r.get("first_divergence")
        row.top = [[Alternative(int(a["token_id"]), str(a["token"]), float(a["prob"])) for a in step]
                   for step in r.get("top_alternatives", [])]
        rows.append(row)
    return RunResult(
        model=str(data.get("model", "")), backend=str(data.get("backend", "")), seed=int(data.get("seed", 0)),
        temperature=float(data.get("temperature", 0.0)), prompt=str(data.get("prompt", "")),
        prompt_token_ids=[int(t) for t in data.get("prompt_token_ids", [])],
        prompt_tokens=[str(t) for t in data.get("prompt_tokens", [])],
        marked_token_indices=[int(t) for t in data.get("marked_token_indices", [])],
        rows=rows, timing=dict(data.get("timing", {})), cancelled=bool(data.get("cancelled", False)),
    )
