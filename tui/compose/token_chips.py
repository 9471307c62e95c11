"""The prompt's tokens as chips: move with the arrows, toggle "important" with space or a click.

In chat mode the chips show the whole templated prompt; the template's own tokens are
dimmed and cannot be marked (`fixed`). In a conversation, tokens of a tracked concept are
underlined (`tracked`): they are emphasised with the marks but follow the concept, not a click."""

from __future__ import annotations

import re

from rich.style import Style
from rich.text import Text
from textual import events
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from lenscope.tui.keys import Key, bindings

CHIP_STYLES = (Style(bgcolor="grey23"), Style(bgcolor="grey35"))  # alternate: boundaries stay visible
MARK_STYLE = Style(bgcolor="dark_goldenrod", color="black", bold=True)
CURSOR_STYLE = Style(reverse=True, underline=True)
MAX_LINES = 5  # the chips show this many lines at most, scrolled to the cursor
TRACKED_STYLE = Style(color="yellow", underline=True, bold=True)
FIXED_STYLES = (Style(color="grey54", bgcolor="grey11"), Style(color="grey54", bgcolor="grey19"))  # chat template


def _byte_decoder() -> dict[str, int]:
    """GPT-2 byte-level BPE spells each byte as one printable character: undo that."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return {**{chr(b): b for b in printable}, **{chr(256 + i): b for i, b in enumerate(others)}}


BYTE_DECODER = _byte_decoder()


def byte_text(raw: str) -> str:
    """A raw vocabulary entry as its bytes: '<0xE2>' stays, byte-level 'â' becomes '<0xE2>'."""
    if re.fullmatch(r"(<0x[0-9A-Fa-f]{2}>)+", raw) or not all(ch in BYTE_DECODER for ch in raw):
        return raw
    return "".join(chip_text(chr(b)) if 0x20 <= b < 0x7F else f"<0x{b:02X}>"
                   for b in map(BYTE_DECODER.get, raw))


def chip_text(token: str, raw: str | None = None) -> str:
    """How a token shows on screen: whitespace made visible (spaces '·', newlines '⏎', tabs '→');
    a token that is only part of a character (it decodes to U+FFFD) by its bytes, from `raw`,
    the tokenizer's own entry for it (e.g. '<0xE2>')."""
    if raw and "\ufffd" in token:
        return byte_text(raw)
    return token.replace(" ", "·").replace("\n", "⏎").replace("\t", "→") or "∅"


class TokenChips(Widget, can_focus=True):
    KEYS = [
        Key("left", "move(-1)", "move between tokens"),
        Key("right", "move(1)", "move between tokens"),
        Key("home", "move_to(0)", "first / last token"),
        Key("end", "move_to(-1)", "first / last token"),
        Key("space", "toggle", "mark / unmark the token (click works too)", "mark/unmark"),
        Key("c", "clear", "clear every mark", "clear marks"),
    ]
    BINDINGS = bindings(KEYS)

    class MarksChanged(Message):
        def __init__(self, marks: set[int]) -> None:
            super().__init__()
            self.marks = marks

    tokens: reactive[list[str]] = reactive(list, always_update=True, layout=True)  # as shown: chip_text()
    marks: reactive[set[int]] = reactive(set, always_update=True)
    fixed: reactive[set[int]] = reactive(set, always_update=True)  # the chat template's tokens: not markable
    tracked: reactive[set[int]] = reactive(set, always_update=True)  # a tracked concept's tokens (conversations)
    cursor: reactive[int] = reactive(0)
    _top = 0  # first wrapped line shown when there are more than MAX_LINES

    def render(self) -> Text:
        if not self.tokens:
            return Text("(no tokens yet: type a prompt above)", style="dim italic")
        text = Text()
        for i, tok in enumerate(self.tokens):
            if i in self.fixed:
                style = FIXED_STYLES[i % 2]
            else:
                style = MARK_STYLE if i in self.marks else CHIP_STYLES[i % 2]
                if i in self.tracked:
                    style = style + TRACKED_STYLE
            if i == self.cursor and self.has_focus:
                style = style + CURSOR_STYLE
            # plain meta, not "@click": a link's colours would override the chip's (template chips dimmed)
            text.append(tok, style + Style(meta={"chip": i}))
        return self._window(text)

    def _window(self, text: Text) -> Text:
        """At most MAX_LINES wrapped lines, moved to keep the cursor's line in view (a chat
        template puts lines of its own before the user's tokens)."""
        width = self.content_size.width
        if width <= 0:
            return text
        lines = text.wrap(self.app.console, width)
        if len(lines) <= MAX_LINES:
            self._top = 0
            return text
        offset = sum(len(t) for t in self.tokens[: self.cursor])
        line, start = len(lines) - 1, 0
        for n, piece in enumerate(lines):
            if start + len(piece) > offset:
                line = n
                break
            start += len(piece)
        self._top = max(0, min(max(self._top, line - MAX_LINES + 1), line, len(lines) - MAX_LINES))
        return Text("\n").join(lines[self._top : self._top + MAX_LINES])

    def watch_tokens(self) -> None:
        self.cursor = min(self.cursor, max(0, len(self.tokens) - 1))

    def set_marks(self, marks: set[int]) -> None:
        self.marks = set(marks)
        self.post_message(self.MarksChanged(set(self.marks)))

    def action_move(self, delta: int) -> None:
        if self.tokens:
            self.cursor = (self.cursor + delta) % len(self.tokens)

    def action_move_to(self, index: int) -> None:
        if self.tokens:
            self.cursor = index % len(self.tokens)

    def toggle(self, index: int) -> None:
        if index in self.fixed:
            self.app.notify("that token is the chat template's, not your text: it cannot be marked",
                            severity="warning", timeout=3)
            return
        self.set_marks(self.marks ^ {index})

    def action_toggle(self) -> None:
        if self.tokens:
            self.toggle(self.cursor)

    def action_click(self, index: int) -> None:
        self.cursor = index
        self.toggle(index)

    def on_click(self, event: events.Click) -> None:
        index = event.style.meta.get("chip")
        if isinstance(index, int):
            self.action_click(index)

    def action_clear(self) -> None:
        self.set_marks(set())

    def on_focus(self) -> None:
        if self.cursor in self.fixed:  # chat mode: start on the user's first token, not the template's
            self.cursor = next((i for i in range(len(self.tokens)) if i not in self.fixed), self.cursor)
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
