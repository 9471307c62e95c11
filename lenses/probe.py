"""What a lens may read from the model while it prepares: the `Probe` protocol.

The engine implements it (core/engine.py); a lens gets it as the first argument of
`prepare(probe, ids, marks)` and reads nothing else, so lenses depend on this list,
not on the engine. Sizes, the tokenizer, the embedding matrices, the linear layers
weight lenses edit, hidden states and attention of any token ids, and another model
(for patching across models).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import mlx.core as mx
import numpy as np
from mlx import nn


class Probe(Protocol):
    n_layers: int
    tokenizer: Any  # mlx-lm's TokenizerWrapper (a grammar library reads its vocabulary)

    @property
    def n_heads(self) -> int: ...

    @property
    def hidden_size(self) -> int: ...

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def token_text(self, token_id: int) -> str: ...

    def embedding_matrix(self) -> mx.array:
        """(vocab, hidden), dequantized."""
        ...

    def unembedding_matrix(self) -> mx.array:
        """(vocab, hidden), dequantized; the embedding matrix when they are tied."""
        ...

    def linear(self, layer: int, name: str) -> tuple[str, nn.Module] | None:
        """Block `layer`'s linear layer `name` (e.g. "mlp.down_proj") and its module path,
        or None when the block has none by that name."""
        ...

    def hidden_states(self, ids: list[int], layers: Sequence[int]) -> dict[int, mx.array]:
        """The plain model's residual stream (L, D) after each of `layers` (-1: embeddings)."""
        ...

    def capture_attention(self, ids: list[int]) -> np.ndarray:
        """The plain model's attention probabilities (layers, heads, L, L) over `ids`."""
        ...

    def other_model(self, spec: str) -> Probe:
        """Another model (a folder, hub id, .gguf or named model), loaded once."""
        ...
