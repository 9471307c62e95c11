"""Every lens kind by name: a new kind is one line here (and its module in the import)."""

from __future__ import annotations

from lenscope.lenses import (
    adapter,
    attention,
    constrain,
    fitted,
    identity,
    patching,
    rotations,
    sampling,
    scale,
    steering,
    weights,
)
from lenscope.lenses.base import Lens

KINDS: dict[str, type[Lens]] = {cls.kind: cls for cls in (
    identity.Identity,
    attention.Emphasis, attention.Hold, attention.Decay, attention.TopKAttention,
    steering.Steer, steering.Ablate,
    rotations.Slerp, rotations.Rotate, rotations.Grouped, rotations.Path,
    patching.Patch,
    weights.Blur, weights.Noise, weights.HeadScale, weights.SvdRemove,
    sampling.Temperature, sampling.Explore, sampling.Bias,
    constrain.Constrain, constrain.Force,
    scale.Scale,
    fitted.Fitted, adapter.Adapter,
)}


def describe() -> list[dict]:
    """What `lenscope lenses --json` prints: kinds, parameters, defaults and ranges."""
    return [{"kind": k, "summary": cls.summary, "params": [p.describe() for p in cls.params]}
            for k, cls in KINDS.items()]
