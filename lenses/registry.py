"""Every lens kind by name."""

from __future__ import annotations

from lenses.attention import Decay, Emphasis, TopKAttention
from lenses.base import Lens
from lenses.geometry import Grouped, Path, Rotate, Slerp
from lenses.identity import Identity
from lenses.patching import Patch
from lenses.sampling import Bias, Explore, Temperature
from lenses.steering import Ablate, Steer
from lenses.weights import Blur, HeadScale, Noise, SvdRemove

KINDS: dict[str, type[Lens]] = {cls.kind: cls for cls in (
    Identity, Emphasis, Decay, TopKAttention,
    Steer, Ablate, Slerp, Rotate, Grouped, Path,
    Patch,
    Blur, Noise, HeadScale, SvdRemove,
    Temperature, Explore, Bias,
)}


def describe() -> list[dict]:
    """What `lenscope lenses --json` prints: kinds, parameters, defaults and ranges."""
    return [{"kind": k, "summary": cls.summary, "params": [p.describe() for p in cls.params]}
            for k, cls in KINDS.items()]
