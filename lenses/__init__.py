"""Lenses: reversible inference-time transformations, as data.

Pure functions of MLX arrays behind the small protocol in `lenses.base`; no Textual,
no file I/O beyond reading a spec or a direction file.
"""
