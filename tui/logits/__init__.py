"""The logits part of the TUI."""
