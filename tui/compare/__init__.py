"""The compare part of the TUI."""
