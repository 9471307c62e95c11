"""The tree part of the TUI."""
