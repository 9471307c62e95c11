"""`scale`: multiply the residual stream at chosen layers by a factor.

Below 1 it quiets what the earlier blocks wrote, above 1 it makes it louder next to what
later blocks add (their updates stay the same size). 1 is the identity.
"""

from __future__ import annotations

import mlx.core as mx

from lenscope.lenses.base import Ctx, HookPoint, Hooks, Lens
from lenscope.lenses.params import Param
from lenscope.lenses.steering import POSITIONS, position_gate


class Scale(Lens):
    kind = "scale"
    summary = "multiply the hidden states at chosen layers by a factor (1 = identity)"
    params = (
        Param("factor", "float", 1.5, "multiplier of the hidden states (1 = identity)", -10, 10, keyframes=True),
        Param("layers", "ints", None, "layers whose output is scaled (default: the middle layer)"),
        POSITIONS,
    )
    default_layers = "middle"

    def is_neutral(self) -> bool:
        return self.always("factor", 1)

    def hooks(self, n_layers: int) -> Hooks:
        return {HookPoint("residual", self.layers_in(n_layers)): self.residual}

    def residual(self, ctx: Ctx, h: mx.array) -> mx.array:
        f = mx.array(self.value_at("factor", ctx.steps), dtype=mx.float32)[:, None]  # (L, 1)
        f = 1 + (f - 1) * position_gate(ctx, self.positions)
        return (h.astype(mx.float32) * f[None]).astype(h.dtype)
