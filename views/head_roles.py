"""Head roles measured on the loaded model, as circuit tools do: feed a random token
sequence twice and read each head's attention (Olsson et al. 2022, "In-context learning
and induction heads").

- previous-token heads attend from each token to the one just before it;
- induction heads attend, in the second copy, to the token *after* the previous
  occurrence of the current token (where copying the continuation would look);
- attention-sink heads put most of their attention on the first token.

Each score is a mean attention probability in [0, 1]; a head has a role when its score
passes `THRESHOLD`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lenscope.core.engine import Engine

THRESHOLD = 0.4
ROLES = ("previous", "induction", "sink")


@dataclass
class HeadRoles:
    scores: dict[str, np.ndarray]  # role -> (layers, heads)
    seq_len: int
    seed: int

    def heads(self, role: str, threshold: float = THRESHOLD) -> list[tuple[int, int]]:
        """(layer, head) pairs with this role, strongest first."""
        s = self.scores[role]
        picked = np.argwhere(s >= threshold)
        return sorted(((int(layer), int(head)) for layer, head in picked), key=lambda lh: -s[lh])

    def to_json(self) -> dict:
        return {"seq_len": self.seq_len, "seed": self.seed, "threshold": THRESHOLD,
                "scores": {r: np.round(v, 4).tolist() for r, v in self.scores.items()},
                "heads": {r: [list(lh) for lh in self.heads(r)] for r in ROLES}}


def scores(attention: np.ndarray, n: int, offset: int = 1) -> dict[str, np.ndarray]:
    """Role scores from attention (layers, heads, T, T) over [prefix of `offset` tokens,
    a random sequence of `n` tokens, the same `n` tokens again]."""
    t = attention.shape[-1]
    q = np.arange(offset + 1, t)  # every query with a token before it (not the prefix)
    second = np.arange(offset + n + 1, t)  # queries in the second copy whose earlier copy has a next token
    return {
        "previous": attention[:, :, q, q - 1].mean(axis=-1),
        "induction": attention[:, :, second, second - n + 1].mean(axis=-1),
        "sink": attention[:, :, q, 0].mean(axis=-1),
    }


def measure(engine: Engine, n: int = 32, seed: int = 0) -> HeadRoles:
    """Capture the plain model's attention on a repeated random sequence of ordinary tokens."""
    rng = np.random.default_rng(seed)
    special = set(getattr(engine.tokenizer, "all_special_ids", None) or []) | engine.eos_ids
    pool = [i for i in range(min(engine.vocab_size, 32000)) if i not in special]
    seq = rng.choice(pool[len(pool) // 10:], size=n, replace=False).tolist()  # skip the rarest-looking low ids
    bos = getattr(engine.tokenizer, "bos_token_id", None)
    prefix = [int(bos)] if bos is not None else [seq[0]]
    attention = engine.capture_attention(prefix + seq + seq)
    return HeadRoles(scores(attention, n, offset=len(prefix)), n, seed)
