"""Where models come from and how they are loaded: named and local sources, the bundled demo
model (`demo/`), GGUF conversion, dequantization to float and the BLAS check. A new model
format is a converter module here (as gguf.py: file in, mlx-lm folder out, cached) and one
branch of `sources.resolve_model`."""

from lenscope.app.models.loading import DEMO_MODEL_DIR, DEMO_MODEL_NAME, LoadedModel, load, resolve

__all__ = ["DEMO_MODEL_DIR", "DEMO_MODEL_NAME", "LoadedModel", "load", "resolve"]
