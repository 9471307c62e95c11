"""Whether a lens fits a model: the layers and heads it names exist. Checked before a run
(CLI, TUI and experiments alike), so a bad head is one line, not an error mid-forward."""

from __future__ import annotations

from lenscope.lenses.base import Lens, Variant, layers_or_all
from lenscope.lenses.errors import BadInput

ModelShape = tuple[int, int]  # (layers, heads) of the loaded model


def fit_problems(lens: Lens, shape: ModelShape | None) -> dict[str, str]:
    """Parameter -> why it does not fit the loaded model (layers and heads it does not have)."""
    if shape is None:
        return {}
    n_layers, n_heads = shape
    problems = {}
    layers = getattr(lens, "layers", None)
    if layers is not None:
        try:
            layers_or_all(layers, n_layers, lens.kind)
        except BadInput as exc:
            problems["layers"] = str(exc)
    bad = [h for h in getattr(lens, "heads", None) or () if not 0 <= h < n_heads]
    if bad:
        problems["heads"] = f"{lens.kind}: head {bad[0]} does not exist (heads are 0..{n_heads - 1})"
    if getattr(lens, "auto_heads", 0) > n_heads:
        problems["auto_heads"] = f"{lens.kind}: auto_heads={lens.auto_heads}, the model has {n_heads} heads"
    return problems


def variant_problem(variant: Variant, shape: ModelShape | None) -> str | None:
    """The first reason a variant cannot run on the loaded model, naming it; None if it fits."""
    for lens in variant.lenses:
        for problem in fit_problems(lens, shape).values():
            return f"variant '{variant.name}': {problem}"
    return None
