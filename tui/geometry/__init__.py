"""The geometry part of the TUI."""
