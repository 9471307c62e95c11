"""Concept directions in the residual stream: from contrast prompts, tokens or files.

Files are read with safetensors (mx.load) or numpy with allow_pickle=False: a lens
file can point at data, never at code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import mlx.core as mx
import numpy as np

from app.errors import BadInput


def unit(v: np.ndarray, what: str) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if not np.isfinite(n) or n < 1e-8:
        raise BadInput(f"{what}: the direction is zero (the two sides give the same hidden states)")
    return (v / n).astype(np.float32)


def text_state(probe: Any, text: str, layer: int) -> np.ndarray:
    """A text's hidden state at a layer: its last token's, which has read all of it (as repeng does)."""
    ids = probe.encode(text)
    if not ids:
        raise BadInput(f"direction: text '{text}' has no tokens")
    return np.array(probe.hidden_states(ids, [layer])[layer][-1].astype(mx.float32))


def contrast(probe: Any, layer: int, positive: Sequence[str], negative: Sequence[str], method: str) -> np.ndarray:
    """Mean of the paired (positive - negative) differences of the texts' states, or their
    first principal component (as repeng does), oriented so that positive scores higher."""
    if not positive or not negative:
        raise BadInput("steer: needs 'positive' and 'negative' texts (or another source)")
    pos = np.stack([text_state(probe, t, layer) for t in positive])
    neg = np.stack([text_state(probe, t, layer) for t in negative])
    n = min(len(pos), len(neg))
    diffs = pos[:n] - neg[:n]
    mean = diffs.mean(axis=0)
    if method == "mean" or n < 2:
        return unit(mean, "steer")
    centered = np.concatenate([diffs, -diffs])  # repeng: symmetric, so PC1 is the contrast axis
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    pc = vt[0]
    return unit(pc if pc @ mean >= 0 else -pc, "steer")


def token_row(probe: Any, word: str, which: str) -> np.ndarray:
    ids = probe.encode(word)
    if not ids:
        raise BadInput(f"direction: '{word}' has no tokens")
    matrix = probe.embedding_matrix() if which == "embedding" else probe.unembedding_matrix()
    return unit(np.array(matrix[mx.array(ids)].astype(mx.float32)).mean(axis=0), f"{which} of '{word}'")


def load(path: str, hidden_size: int) -> np.ndarray:
    p = Path(path).expanduser()
    if not p.is_file():
        raise BadInput(f"direction file '{path}': not found")
    try:
        if p.suffix == ".npy":
            v = np.load(p, allow_pickle=False)
        elif p.suffix == ".safetensors":
            tensors = mx.load(str(p))
            if len(tensors) != 1 and "direction" not in tensors:
                raise BadInput(f"direction file '{path}': expected one tensor or one named 'direction'")
            v = np.array(tensors.get("direction", next(iter(tensors.values()))).astype(mx.float32))
        else:
            raise BadInput(f"direction file '{path}': use .npy or .safetensors")
    except BadInput:
        raise
    except Exception as exc:
        raise BadInput(f"direction file '{path}': unreadable ({exc})") from None
    v = np.asarray(v, dtype=np.float32).reshape(-1)
    if v.shape[0] != hidden_size:
        raise BadInput(f"direction file '{path}': has {v.shape[0]} values, the model's hidden size is {hidden_size}")
    return unit(v, f"direction file '{path}'")


def save(path: str | Path, direction: np.ndarray) -> Path:
    p = Path(path)
    if p.suffix == ".npy":
        np.save(p, direction.astype(np.float32), allow_pickle=False)
    else:
        mx.save_safetensors(str(p), {"direction": mx.array(direction.astype(np.float32))})
    return p
