"""The widgets part of the TUI."""
