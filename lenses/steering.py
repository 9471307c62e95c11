"""Residual-stream steering: add a concept direction, or remove its component."""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from lenscope.lenses import directions
from lenscope.lenses.base import Ctx, HookPoint, Hooks, Lens
from lenscope.lenses.params import Param
from lenscope.lenses.probe import Probe

SOURCE_PARAMS = (
    Param("positive", "strs", (), "texts for the + side of a contrast, separated by |"),
    Param("negative", "strs", (), "texts for the - side of a contrast, separated by |"),
    Param("method", "choice", "mean", "how contrast differences become one direction",
          choices=("mean", "pca")),
    Param("token", "str", "", "use this word's embedding (or unembedding) row as the direction"),
    Param("row", "choice", "embedding", "which matrix `token` reads", choices=("embedding", "unembedding")),
    Param("file", "str", "", "direction from a .npy or .safetensors file"),
)
POSITIONS = Param("positions", "choice", "all", "which positions to act on (generated: every position that "
                  "predicts an output token, the last prompt position included)",
                  choices=("all", "prompt", "generated", "marked"))


def resolve_direction(lens: Lens, probe: Probe, layer: int) -> np.ndarray:
    """The unit direction a steering-like lens names, computed at `layer`."""
    if lens.file:
        return directions.load(lens.file, probe.hidden_size)
    if lens.token:
        return directions.token_row(probe, lens.token, lens.row)
    return directions.contrast(probe, layer, lens.positive, lens.negative, lens.method)


def position_gate(ctx: Ctx, mode: str) -> mx.array:
    """(L, 1) 1.0 where the lens acts, 0.0 elsewhere."""
    pos = np.array(ctx.positions)
    if mode == "prompt":
        gate = pos < ctx.prompt_len
    elif mode == "generated":
        gate = pos >= ctx.prompt_len - 1  # the last prompt position already predicts output
    elif mode == "marked":
        gate = np.isin(pos, ctx.marks)
    else:
        gate = np.ones_like(pos, dtype=bool)
    return mx.array(gate.astype(np.float32))[:, None]


class DirectionLens(Lens):
    """A lens that moves hidden states relative to one concept direction per layer
    (the SOURCE_PARAMS name it) with its `residual`; acts on the middle layer unless
    `layers` is given."""

    default_layers = "middle"

    def prepare(self, probe: Probe, ids: list[int], marks: list[int]) -> None:
        self.direction = {layer: mx.array(resolve_direction(self, probe, layer))
                          for layer in sorted(self.layers_in(probe.n_layers))}

    def hooks(self, n_layers: int) -> Hooks:
        return {HookPoint("residual", self.layers_in(n_layers)): self.residual}

    def residual(self, ctx: Ctx, h: mx.array) -> mx.array:
        raise NotImplementedError


class Steer(DirectionLens):
    kind = "steer"
    summary = "add strength x a unit concept direction to the hidden states at chosen layers"
    params = (
        Param("layers", "ints", None, "layers whose output is steered (default: the middle layer)"),
        Param("strength", "float", 4.0, "how far to move along the direction", -10000, 10000, keyframes=True),
        Param("unit", "choice", "absolute", "strength in hidden-state units, or as a fraction of each "
              "token's own hidden-state norm", choices=("absolute", "norm")),
        *SOURCE_PARAMS,
        POSITIONS,
    )

    def is_neutral(self) -> bool:
        return self.always("strength", 0)

    def residual(self, ctx: Ctx, h: mx.array) -> mx.array:
        d = self.direction[ctx.layer]
        s = mx.array(self.value_at("strength", ctx.steps), dtype=mx.float32)[:, None]
        step = position_gate(ctx, self.positions) * s * d[None, :]  # (L, D)
        if self.unit == "norm":
            step = step * mx.linalg.norm(h.astype(mx.float32), axis=-1, keepdims=True)[0]
        return (h + step[None]).astype(h.dtype)


class Ablate(DirectionLens):
    kind = "ablate"
    summary = "remove the component of the hidden states along a concept direction"
    params = (
        Param("layers", "ints", None, "layers whose output is projected (default: all)"),
        Param("fraction", "float", 1.0, "share of the component removed (1 = all of it)", -4, 4, keyframes=True),
        *SOURCE_PARAMS,
        POSITIONS,
    )

    default_layers = "all"

    def is_neutral(self) -> bool:
        return self.always("fraction", 0)

    def residual(self, ctx: Ctx, h: mx.array) -> mx.array:
        d = self.direction[ctx.layer]
        f = mx.array(self.value_at("fraction", ctx.steps), dtype=mx.float32)[:, None]
        coef = (h.astype(mx.float32) @ d)[..., None]  # (1, L, 1)
        return h - (position_gate(ctx, self.positions) * f)[None] * coef * d
