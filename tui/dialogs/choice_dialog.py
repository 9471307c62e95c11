"""A question with a few answers, each a button and a key (quit with unsaved work, restore)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from lenscope.tui.dialogs.lens_dialogs import DIALOG_CSS


class Choice(ModalScreen[str | None]):
    """`answers`: (key, label) pairs; the key both names the answer and chooses it. escape: None."""

    CSS = DIALOG_CSS
    BINDINGS = [Binding("escape", "dismiss(None)", "cancel")]

    def __init__(self, question: str, detail: str, answers: list[tuple[str, str]]) -> None:
        super().__init__()
        self.question, self.detail, self.answers = question, detail, answers

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="title", markup=False)
            yield Static(self.detail, classes="help", markup=False)
            with Horizontal(classes="buttons"):
                for key, label in self.answers:
                    yield Button(f"{label} ({key})", id=f"answer-{key}", variant="primary" if key == "s" else "default")

    def on_key(self, event) -> None:
        if any(event.key == key for key, _ in self.answers):
            event.stop()
            self.dismiss(event.key)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id.removeprefix("answer-"))
