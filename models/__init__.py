"""Where models come from and how they are loaded: named and local sources, the bundled demo
model (`demo/`), GGUF conversion, dequantization to float and the BLAS check. A new model
format is a converter module here (as gguf.py: file in, mlx-lm folder out, cached) and one
branch of `sources.resolve_model`.

`models.load`, `models.resolve` and `models.LoadedModel` are loading.py's, looked up when
first used: importing this package (`models.blas` before the BLAS re-exec) loads no MLX."""

from typing import Any

_LOADING = {"DEMO_MODEL_DIR", "DEMO_MODEL_NAME", "LoadedModel", "load", "resolve"}


def __getattr__(name: str) -> Any:
    if name in _LOADING:
        from lenscope.models import loading  # lazy: blas

        return getattr(loading, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
