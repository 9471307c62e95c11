"""Measurements about lenscope itself, run from the command line: lens effects (`measure`),
the prompt sets and synthetic episodes they use, `bench` and `doctor`. Nothing outside
cli/ imports this package."""
