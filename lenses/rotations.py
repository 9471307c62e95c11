"""Geometric lenses on hidden states: slerp toward a concept, rotations, grouped
transforms, and a playlist of concepts visited in order."""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np

from lenscope.lenses import directions
from lenscope.lenses.base import Ctx, HookPoint, Hooks, Lens
from lenscope.lenses.errors import BadInput
from lenscope.lenses.params import Param
from lenscope.lenses.probe import Probe
from lenscope.lenses.steering import POSITIONS, SOURCE_PARAMS, DirectionLens, position_gate


def slerp_to(h: mx.array, d: mx.array, t: mx.array) -> mx.array:
    """Move each vector of h (.., L, D) along its great circle toward unit d by fraction
    t (L, 1), keeping its norm: t=0 is h, t=1 is |h| d, t=0.5 the midpoint."""
    h32 = h.astype(mx.float32)
    norm = mx.linalg.norm(h32, axis=-1, keepdims=True)
    u = h32 / mx.maximum(norm, 1e-12)
    cos = mx.clip(mx.sum(u * d, axis=-1, keepdims=True), -1.0, 1.0)
    omega = mx.arccos(cos)
    sin = mx.sin(omega)
    small = sin < 1e-6  # (anti)parallel: the great circle is undefined, fall back to lerp
    a = mx.where(small, 1.0 - t, mx.sin((1.0 - t) * omega) / mx.where(small, 1.0, sin))
    b = mx.where(small, t, mx.sin(t * omega) / mx.where(small, 1.0, sin))
    return (a * u + b * d) * norm


def plane_rotation(h: mx.array, u: mx.array, v: mx.array, theta: mx.array) -> mx.array:
    """Rotate h by angle theta (L, 1) in the plane of orthonormal u, v; identity elsewhere."""
    hu = mx.sum(h * u, axis=-1, keepdims=True)
    hv = mx.sum(h * v, axis=-1, keepdims=True)
    c, s = mx.cos(theta), mx.sin(theta)
    return h + (c - 1) * (hu * u + hv * v) + s * (hu * v - hv * u)


class Slerp(DirectionLens):
    kind = "slerp"
    summary = "move hidden states along the great circle toward a concept by fraction t, keeping the norm"
    params = (
        Param("t", "float", 0.3, "fraction of the way to the concept (0 = none, 1 = all the way)", 0, 1,
              keyframes=True),
        Param("points", "int", 0, "expand into this many rows at equidistant t in [0, t]", 0, 16),
        Param("layers", "ints", None, "layers whose output moves (default: the middle layer)"),
        *SOURCE_PARAMS,
        POSITIONS,
    )

    def is_neutral(self) -> bool:
        return self.always("t", 0)

    def residual(self, ctx: Ctx, h: mx.array) -> mx.array:
        t = mx.array(self.value_at("t", ctx.steps), dtype=mx.float32)[:, None] * position_gate(ctx, self.positions)
        return slerp_to(h, self.direction[ctx.layer], t).astype(h.dtype)


class Rotate(Lens):
    kind = "rotate"
    summary = "rotate hidden states by an angle in the plane of two concept directions"
    params = (
        Param("angle", "float", 30.0, "rotation in degrees, from concept a toward concept b", -360, 360,
              keyframes=True),
        Param("a", "str", "", "first concept: a word (its embedding row) or a .npy/.safetensors file"),
        Param("b", "str", "", "second concept: a word or a file"),
        Param("layers", "ints", None, "layers whose output rotates (default: the middle layer)"),
        POSITIONS,
    )

    default_layers = "middle"

    def is_neutral(self) -> bool:
        first = float(self.value_at("angle", 0))  # one angle throughout: 0@0|360@10 passes 180
        return self.always("angle", first) and first % 360 == 0

    def hooks(self, n_layers: int) -> Hooks:
        return {HookPoint("residual", self.layers_in(n_layers)): self.residual}

    def prepare(self, probe: Probe, ids: list[int], marks: list[int]) -> None:
        u = _concept(probe, self.a, "rotate: a")
        v = _concept(probe, self.b, "rotate: b")
        u = directions.unit(u, "rotate: a")
        v = directions.unit(v, "rotate: b")
        if abs(float(v @ u)) > 0.999:  # the plane of a and b is undefined: only noise is left
            raise BadInput(f"rotate: a='{self.a}' and b='{self.b}' point the same way; pick two different concepts")
        v = directions.unit(v - (v @ u) * u, "rotate: b minus its part along a")
        self.u, self.v = mx.array(u), mx.array(v)

    def residual(self, ctx: Ctx, h: mx.array) -> mx.array:
        theta = mx.array(np.radians(self.value_at("angle", ctx.steps)), dtype=mx.float32)[:, None]
        theta = theta * position_gate(ctx, self.positions)
        return plane_rotation(h.astype(mx.float32), self.u, self.v, theta).astype(h.dtype)


def _concept(probe: Probe, text: str, what: str) -> np.ndarray:
    if not text:
        raise BadInput(f"{what}: needs a word or a direction file")
    if text.endswith((".npy", ".safetensors")):
        return directions.load(text, probe.hidden_size)
    return directions.token_row(probe, text, "embedding")


def grouped_matrix(dim: int, group: int, groups: tuple[int, ...] | None, angle_deg: float, scale: float) -> np.ndarray:
    """Block-diagonal transform: each selected group of `group` dims is scaled and its
    consecutive dim pairs rotated by the angle; other dims are untouched."""
    m = np.eye(dim, dtype=np.float32)
    n_groups = dim // group
    theta = math.radians(angle_deg)
    block = np.eye(group, dtype=np.float32) * scale
    for i in range(0, group - 1, 2):
        block[i, i] = block[i + 1, i + 1] = scale * math.cos(theta)
        block[i, i + 1], block[i + 1, i] = -scale * math.sin(theta), scale * math.sin(theta)
    for g in (range(n_groups) if groups is None else groups):
        m[g * group : (g + 1) * group, g * group : (g + 1) * group] = block
    return m


class Grouped(Lens):
    kind = "grouped"
    summary = "scale and rotate hidden states within chosen groups of g dimensions (others untouched)"
    params = (
        Param("group", "int", 8, "group size g (dimensions per group; must divide the hidden size)", 2, 4096),
        Param("groups", "ints", None, "which groups (default: all)"),
        Param("angle", "float", 0.0, "rotation in degrees of each consecutive dim pair in a group", -360, 360),
        Param("scale", "float", 1.0, "scale of the grouped dims", -10, 10),
        Param("layers", "ints", None, "layers whose output is transformed (default: the middle layer)"),
        POSITIONS,
    )

    default_layers = "middle"

    def is_neutral(self) -> bool:
        return self.angle % 360 == 0 and self.scale == 1.0

    def hooks(self, n_layers: int) -> Hooks:
        return {HookPoint("residual", self.layers_in(n_layers)): self.residual}

    def prepare(self, probe: Probe, ids: list[int], marks: list[int]) -> None:
        dim = probe.hidden_size
        if dim % self.group:
            raise BadInput(f"grouped: group={self.group} does not divide the hidden size {dim}")
        bad = [g for g in self.groups or () if not 0 <= g < dim // self.group]
        if bad:
            raise BadInput(f"grouped: group {bad[0]} outside 0..{dim // self.group - 1}")
        self.matrix = mx.array(grouped_matrix(dim, self.group, self.groups, self.angle, self.scale))

    def residual(self, ctx: Ctx, h: mx.array) -> mx.array:
        gate = position_gate(ctx, self.positions)
        h32 = h.astype(mx.float32)
        return (gate * (h32 @ self.matrix.T) + (1 - gate) * h32).astype(h.dtype)


class Path(Lens):
    kind = "path"
    summary = "a playlist of concepts visited in order: slerp toward each in turn over the steps"
    params = (
        Param("concepts", "strs", (), "words visited in order, e.g. happy|sad|happy"),
        Param("steps", "int", 8, "generation steps spent going from one concept to the next", 1, 4096),
        Param("t", "float", 0.3, "how far hidden states move toward the current point", 0, 1, keyframes=True),
        Param("layers", "ints", None, "layers whose output moves (default: the middle layer)"),
    )

    default_layers = "middle"

    def is_neutral(self) -> bool:
        return self.always("t", 0)

    def hooks(self, n_layers: int) -> Hooks:
        return {HookPoint("residual", self.layers_in(n_layers)): self.residual}

    def prepare(self, probe: Probe, ids: list[int], marks: list[int]) -> None:
        if not self.concepts:
            raise BadInput("path: needs concepts, e.g. concepts=happy|sad")
        self.points = np.stack([directions.token_row(probe, c, "embedding") for c in self.concepts])

    def direction_at(self, step: int) -> np.ndarray:
        """Unit direction at a step: slerp between consecutive concepts, then stay on the last."""
        pos = max(step, 0) / self.steps
        i = min(int(pos), len(self.points) - 1)
        if i == len(self.points) - 1:
            return self.points[-1]
        frac = pos - i
        a, b = self.points[i], self.points[i + 1]
        omega = math.acos(float(np.clip(a @ b, -1, 1)))
        if omega < 1e-6:
            return a
        return (math.sin((1 - frac) * omega) * a + math.sin(frac * omega) * b) / math.sin(omega)

    def residual(self, ctx: Ctx, h: mx.array) -> mx.array:
        steps = ctx.steps
        dirs = mx.array(np.stack([self.direction_at(int(s)) for s in steps]).astype(np.float32))  # (L, D)
        t = mx.array(self.value_at("t", steps), dtype=mx.float32)[:, None]
        return slerp_to(h, dirs, t).astype(h.dtype)
