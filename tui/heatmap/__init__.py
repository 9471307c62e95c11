"""The heatmap part of the TUI."""
