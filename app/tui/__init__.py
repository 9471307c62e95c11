"""The terminal app's state without Textual (`workspace`), and its launcher (`launch`, the
one module in app/ that imports Textual and screens/)."""
