"""The dialogs part of the TUI."""
