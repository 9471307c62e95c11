"""The heads part of the TUI."""
