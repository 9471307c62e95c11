"""The help screen: every key, grouped by where it works."""

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

from lenscope.tui.keys import Key, help_markdown

NOTES = """
Marked ("important") tokens are what `emphasis` attends to more.
In chat mode the tokens show the whole templated prompt: the template's own tokens are
dimmed and cannot be marked; marks stay on the same words when chat mode is toggled.
Tokens that differ from the baseline at the same step are highlighted in magenta.
Results turn *stale* when the prompt, marks, variants or settings change after a run.
`ctrl+p` opens the command palette (every action); `ctrl+q` quits.
"""


class HelpScreen(ModalScreen[None]):
    """Every key, from the `Key`s the app and its widgets declare (tui/keys.py)."""

    BINDINGS = [Binding("escape,f1,q", "dismiss(None)", "close")]
    CSS = "HelpScreen { align: center middle; } HelpScreen VerticalScroll { width: 90%; max-width: 96; " \
          "height: 90%; border: thick $accent; background: $surface; }"

    def __init__(self, groups: Sequence[tuple[str, Sequence[Key]]]) -> None:
        super().__init__()
        self.text = "# lenscope keys\n\n" + help_markdown(groups) + "\n" + NOTES

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(self.text)
