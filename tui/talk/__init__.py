"""The talk part of the TUI."""
