"""Concept directions in the residual stream: from contrast prompts, tokens or files.

Files are read with safetensors (mx.load) or numpy with allow_pickle=False: a lens
file can point at data, never at code. Writing one is storage's (`storage.files.save_direction`,
atomic); `to_bytes` gives its contents.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Sequence

import mlx.core as mx
import numpy as np

from lenscope.lenses import words
from lenscope.lenses.errors import BadInput
from lenscope.lenses.files import user_path
from lenscope.lenses.probe import Probe


def unit(v: np.ndarray, what: str) -> np.ndarray:
    n = float(np.linalg.norm(v.astype(np.float64)))  # float64: a float32 norm overflows at 1e19
    if not np.isfinite(n) or n < 1e-8:
        raise BadInput(f"{what}: the direction is zero (the two sides give the same hidden states)")
    return (v / n).astype(np.float32)


def text_state(probe: Probe, text: str, layer: int) -> np.ndarray:
    """A text's hidden state at a layer: its last token's, which has read all of it (as repeng does)."""
    ids = probe.encode(text)
    if not ids:
        raise BadInput(f"direction: text '{text}' has no tokens")
    return np.array(probe.hidden_states(ids, [layer])[layer][-1].astype(mx.float32))


def contrast(probe: Probe, layer: int, positive: Sequence[str], negative: Sequence[str], method: str) -> np.ndarray:
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


def token_row(probe: Probe, word: str, which: str) -> np.ndarray:
    """The unit mean of the rows of the word's mid-sentence tokens (lenses/words.py)."""
    ids = words.word_ids(probe.tokenizer, word, f"{which} of '{word}'")
    matrix = probe.embedding_matrix() if which == "embedding" else probe.unembedding_matrix()
    return unit(np.array(matrix[mx.array(ids)].astype(mx.float32)).mean(axis=0), f"{which} of '{word}'")


def load(path: str, hidden_size: int) -> np.ndarray:
    """A direction file as a unit vector of the model's hidden size (known only here)."""
    v = read(path)
    if v.shape[0] != hidden_size:
        raise BadInput(f"direction file '{path}': has {v.shape[0]} values, the model's hidden size is {hidden_size}")
    return unit(v, f"direction file '{path}'")


def read(path: str) -> np.ndarray:
    """A direction file: a 1-D vector of finite floats (.npy or one safetensors tensor)."""
    where = f"direction file '{path}'"
    p = user_path(path, where)
    if p.suffix not in (".npy", ".safetensors"):
        raise BadInput(f"{where}: use .npy or .safetensors")
    try:
        if p.is_dir():
            raise BadInput(f"{where}: is a folder, not a file")
        if not p.is_file():
            raise BadInput(f"{where}: not found")
        if p.suffix == ".npy":
            arr = np.load(p, mmap_mode="r", allow_pickle=False)  # mmap: check the header before reading
            if not isinstance(arr, np.ndarray):
                raise BadInput(f"{where}: not a .npy array")
            kind, shape = ("float" if arr.dtype.kind == "f" else str(arr.dtype)), arr.shape
        else:
            tensors = mx.load(str(p))
            if len(tensors) != 1 and "direction" not in tensors:
                raise BadInput(f"{where}: expected one tensor or one named 'direction'")
            arr = tensors.get("direction", next(iter(tensors.values()), None))
            if arr is None:
                raise BadInput(f"{where}: holds no tensor")
            kind, shape = ("float" if mx.issubdtype(arr.dtype, mx.floating) else str(arr.dtype)), arr.shape
        if kind != "float" or len(shape) != 1:
            raise BadInput(f"{where}: must be a 1-D vector of floats, holds {kind} of shape {tuple(shape)}")
        with np.errstate(over="ignore"):  # too large for float32 becomes inf, refused below
            v = np.array(arr.astype(mx.float32) if isinstance(arr, mx.array) else arr, dtype=np.float32)
    except BadInput:
        raise
    except Exception as exc:  # numpy/MLX parse errors of a corrupt or foreign file
        raise BadInput(f"{where}: unreadable ({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})") \
            from None
    if not np.isfinite(v).all():
        raise BadInput(f"{where}: holds NaN or infinite values (or values too large for float32)")
    return v


def to_bytes(direction: np.ndarray, suffix: str) -> bytes:
    """A direction file's contents, as `read` reads them back: .npy or .safetensors."""
    v = np.ascontiguousarray(direction, dtype=np.float32)
    if suffix == ".npy":
        buf = io.BytesIO()
        np.save(buf, v, allow_pickle=False)
        return buf.getvalue()
    # safetensors: 8-byte header length, JSON header (padded to 8 bytes), raw little-endian data
    header = json.dumps({"direction": {"dtype": "F32", "shape": [int(v.shape[0])],
                                       "data_offsets": [0, v.nbytes]}}).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + v.astype("<f4").tobytes()
