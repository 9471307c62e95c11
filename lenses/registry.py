"""Every lens kind by name."""

from __future__ import annotations

from lenses.attention import Emphasis
from lenses.base import Lens
from lenses.identity import Identity
from lenses.steering import Ablate, Steer

KINDS: dict[str, type[Lens]] = {cls.kind: cls for cls in (Identity, Emphasis, Steer, Ablate)}


def describe() -> list[dict]:
    """What `lenscope lenses --json` prints: kinds, parameters, defaults and ranges."""
    return [{"kind": k, "summary": cls.summary, "params": [p.describe() for p in cls.params]}
            for k, cls in KINDS.items()]
