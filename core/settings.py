"""The generation settings every front end takes (CLI flags, experiment keys, TUI fields,
session files), declared once as `Param`s so they are validated one way everywhere."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lenscope.lenses.params import Param

SETTINGS: dict[str, Param] = {p.name: p for p in (
    Param("max_tokens", "int", 32, "tokens to generate per row", min=0, max=4096),
    Param("temperature", "float", 0.0, "sampling temperature; 0 is greedy", min=0.0, max=10.0),
    Param("seed", "int", 0, "seed of the shared sampling noise", min=0, max=2**31 - 1),
    Param("capture_attention", "bool", False, "capture attention after generating"),
    Param("report_heads", "bool", False, "with capture_attention: keep every layer's and head's attention in the "
          "HTML report (quantized to 8 bits) for its layer and head selectors; a larger file"),
)}


def check(name: str, raw: Any, where: str) -> Any:
    """One setting, validated by its Param (type, finiteness, range); BadInput names `where`."""
    return SETTINGS[name].parse(raw, where)


def defaults() -> dict[str, Any]:
    return {name: p.default for name, p in SETTINGS.items()}


def check_all(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Every known setting in `values`, validated, over the defaults."""
    out = defaults()
    for name, raw in values.items():
        if name in SETTINGS:
            out[name] = check(name, raw, where)
    return out

# The tree's own options (`lenscope tree`, the Tree tab): declared here so the command line
# builds them without loading the engine.
TREE_PARAMS = {p.name: p for p in (
    Param("k", "int", 2, "children per branch point (the k most likely tokens)", 2, 20),
    Param("entropy", "float", 1.5, "branch where the next-token entropy (nats) exceeds this", 0, 20),
    Param("every", "int", 0, "branch every N tokens instead (0: by entropy)", 0, 1 << 16),
    Param("beam", "int", 3, "open leaves kept after each round", 1, 256),
    Param("budget", "int", 64, "tokens generated in all, over every branch", 1, 1 << 16),
    Param("segment", "int", 16, "longest stretch a node generates before it is scored", 1, 4096),
)}
