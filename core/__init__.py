"""The engine: one loaded model, the hooks that run lenses inside its forward, comparisons
(baseline + lensed rows batched in one generation), their results, captures and the
settings and limits every entry point checks. No Textual, no files, no reports."""
