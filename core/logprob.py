"""`lenscope score`: the log-probability of a fixed continuation after a prompt, per row.

One teacher-forced forward over prompt + continuation for every row at once (row 0 the
plain model, rows 1..K one lens stack each), so lenses are compared on the same answer
rather than on whatever each row happens to generate. Positions after the prompt count
as generation steps, so keyframed lenses act as they would while generating. Logit
lenses (`bias`, `explore`) apply at each scored step; temperature does not: the score is
of the row's distribution, not of how it would be sampled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import mlx.core as mx
import numpy as np

from lenscope.core import budget
from lenscope.core.comparison import head_on
from lenscope.core.hooks import HookState, hooked
from lenscope.core.numerics import log_softmax
from lenscope.errors import BadInput
from lenscope.lenses import words
from lenscope.lenses.base import Variant

if TYPE_CHECKING:
    from lenscope.core.engine import Engine


@dataclass
class RowScore:
    name: str
    lens: dict[str, Any] | None
    token_logprobs: list[float] = field(default_factory=list)

    @property
    def logprob(self) -> float:
        return float(sum(self.token_logprobs))

    def to_json(self, token_ids: list[int], tokens: list[str]) -> dict[str, Any]:
        """JSON has no -inf: a token a lens banned outright scores null."""
        num = lambda x: round(x, 6) if np.isfinite(x) else None
        return {"name": self.name, "lens": self.lens, "logprob": num(self.logprob), "token_ids": token_ids,
                "tokens": tokens,
                "token_logprobs": [num(x) for x in self.token_logprobs],
                "mean_logprob": num(self.logprob / max(len(self.token_logprobs), 1))}


def split_ids(engine: Engine, prompt: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of the prompt and of the continuation as they read after it: the whole
    text is tokenized once when that keeps the prompt's own tokens (BPE merges across the
    seam otherwise), else the two parts are tokenized apart."""
    p_ids = engine.encode(prompt)
    whole = engine.encode(prompt + continuation)
    tail = [i for i in whole[len(p_ids):] if i not in words.special_ids(engine.tokenizer)]
    if whole[: len(p_ids)] == p_ids and tail:
        return p_ids, tail
    return p_ids, words.continuation_ids(engine.tokenizer, continuation, "--continuation")


def score(engine: Engine, prompt: str, continuation: str, variants: Sequence[Variant] = (),
          marks: Sequence[int] = ()) -> tuple[list[int], list[int], list[RowScore]]:
    if not prompt.strip():
        raise BadInput("--prompt: empty")
    if not continuation:
        raise BadInput("--continuation: empty")
    p_ids, c_ids = split_ids(engine, prompt, continuation)
    if not c_ids:
        raise BadInput(f"--continuation '{continuation}': has no tokens")
    marks = engine.tokens.check_marks(marks, len(p_ids))
    rows = [Variant("baseline")] + list(variants)
    ids = p_ids + c_ids
    # one forward over all of it: its logits and attention are held whole (a 100 kB
    # continuation would need hundreds of GB), so the size is checked as a comparison's is
    budget.check_comparison(engine.model, len(rows), len(ids), 0, len(ids))
    with engine.lock:  # hooks swap the shared model's classes: one run at a time
        engine.prepare(rows[1:], p_ids, marks)
        state = HookState([list(v.lenses) for v in rows], engine.n_layers, len(p_ids), tuple(marks))
        state.track_marks = False
        # logits at position i predict token i + 1: the continuation's are P-1 .. P+C-2
        with hooked(engine.model, state), head_on(engine.model, slice(len(p_ids) - 1, len(ids) - 1)) as pick:
            state.begin(mx.arange(len(ids)))
            logits = pick(engine.model(mx.array([ids] * len(rows))))
            mx.eval(logits)
    logits = logits.astype(mx.float32)
    target = mx.array(c_ids)
    out = []
    for r, v in enumerate(rows):
        lg = _logit_hooks(state, r, logits[r], c_ids)
        lp = log_softmax(lg)
        picked = np.array(mx.take_along_axis(lp, target[:, None], axis=-1)[:, 0])
        out.append(RowScore(v.name, v.normalized(), [float(x) if np.isfinite(x) else float("-inf") for x in picked]))
    return p_ids, c_ids, out


def _logit_hooks(state: HookState, row: int, logits: mx.array, target: list[int]) -> mx.array:
    """Each scored step's logits through the row's logit hooks, with that step's context
    (the continuation's tokens before it count as generated)."""
    chain = state.step_hooks("logits", row)
    if not chain:
        return logits
    steps = []
    for t in range(logits.shape[0]):
        state.begin(mx.array([state.prompt_len - 1 + t]))
        lg = logits[t : t + 1]
        for fn in chain:
            lg = fn(replace(state.ctx(state.n_layers), generated=tuple(target[:t])), lg)
        steps.append(lg)
    return mx.concatenate(steps, axis=0)
