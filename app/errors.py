"""The one exception type for bad user input.

The CLI prints its message as one line on stderr and exits 2; the TUI shows it as a
notification and keeps running. The message names the input and what is wrong.
"""


class BadInput(Exception):
    pass
