"""Attention lenses: additive biases on a row's attention logits.

`emphasis` follows PASTA (Zhang et al. 2023): raising the logits of the marked key
tokens by `strength` is the same, after softmax, as scaling every other token's
attention by exp(-strength) and renormalising.
"""

from __future__ import annotations

import mlx.core as mx

from app.errors import BadInput
from lenses.base import Ctx, Lens, Param, layers_or_all

LAYERS = Param("layers", "ints", None, "decoder layers to act on, e.g. 1|2 (default: all)")
HEADS = Param("heads", "ints", None, "attention heads to act on, e.g. 0|3 (default: all)")


class Emphasis(Lens):
    kind = "emphasis"
    summary = "attend more to the marked tokens: add `strength` to their attention logits (PASTA)"
    params = (
        Param("strength", "float", 3.0, "log-space boost of attention to marked keys", -20, 20, keyframes=True),
        LAYERS,
        HEADS,
    )

    def is_neutral(self) -> bool:
        return not any(self.value_at("strength", [0, 1 << 20]))

    def attention_layers(self, n_layers: int) -> set[int]:
        return layers_or_all(self.layers, n_layers, "emphasis")

    def attention_bias(self, ctx: Ctx, n_heads: int, n_keys: int) -> mx.array | None:
        marks = [m for m in ctx.marks if m < n_keys]
        if not marks:
            return None
        key_mask = mx.zeros((n_keys,)).at[mx.array(marks)].add(1.0)
        strength = mx.array(self.value_at("strength", ctx.steps), dtype=mx.float32)  # (L,)
        bias = strength[:, None] * key_mask[None, :]  # (L, S)
        if self.heads is None:
            return bias[None]
        if any(not 0 <= h < n_heads for h in self.heads):
            raise BadInput(f"emphasis: heads {list(self.heads)} outside 0..{n_heads - 1}")
        head_mask = mx.zeros((n_heads,)).at[mx.array(list(self.heads))].add(1.0)
        return head_mask[:, None, None] * bias[None]
