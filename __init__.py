"""lenscope: watch a local language model think, and bend it at inference time.

The package is the repository's folders, lowest layer first (docs/developer/architecture.md):
lenses and metal (the lens maths, kernels), errors, models (where models come from), core
(the engine, generation, hooks), chat, views (view maths and renderables), storage (the
user's files, sessions), reports, batch (experiments, searches, trees, fits), lab (measure,
bench, doctor), cli, and tui (the Textual app)."""
