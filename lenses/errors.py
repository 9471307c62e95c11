"""The one exception type for bad user input.

It lives at the bottom layer so lenses can raise it without importing the layers above; errors.py
re-exports it, so `from lenscope.errors import BadInput` and `except BadInput` mean the same
class everywhere. The CLI prints its message as one line and exits 2; the TUI shows it
and keeps running.
"""


class BadInput(Exception):
    pass
