"""The compose part of the TUI."""
