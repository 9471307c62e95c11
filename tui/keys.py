"""Every key is described once, as a `Key`: the Textual binding, the footer's word, the help
screen's line and the command palette's entry all come from it.

Each widget (and the app) lists its `KEYS`; `BINDINGS = bindings(KEYS)`. The help screen
groups them by where they work; the palette lists the app's actions (a `Key` with no key
is an action only the palette reaches); the panels' one-line key hints come from `hint`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual.binding import Binding

SYMBOLS = {"left": "←", "right": "→", "up": "↑", "down": "↓", "comma": ",", "full_stop": ".", "enter": "enter",
           "space": "space", "delete": "del", "pageup": "PgUp", "pagedown": "PgDn", "home": "Home", "end": "End",
           "ctrl+up": "ctrl+↑", "ctrl+down": "ctrl+↓", "left_square_bracket": "[", "right_square_bracket": "]"}


@dataclass(frozen=True)
class Key:
    keys: str  # Textual's key names, comma-separated; "" for a palette-only action
    action: str
    help: str  # the help screen's line; keys with the same help share one line
    footer: str = ""  # the footer's word; "" keeps it out of the footer
    title: str = ""  # the command palette's entry; "" keeps it out of the palette
    priority: bool = False
    # a priority key acts as soon as the app reads it, ahead of keys still queued for the
    # focused field (a paste, tmux send-keys, a fast typist): one that reads the fields waits
    after_typing: bool = False

    def binding(self) -> Binding:
        action = f"after_typing({self.action!r})" if self.after_typing else self.action
        return Binding(self.keys, action, self.footer or self.help, show=bool(self.footer),
                       priority=self.priority, tooltip=self.help)

    def shown(self) -> str:
        return " ".join(SYMBOLS.get(k.strip(), k.strip()) for k in self.keys.split(","))


def bindings(keys: Sequence[Key]) -> list[Binding]:
    return [k.binding() for k in keys if k.keys]


# Tab moves focus where it is read in a burst of keys: bound without priority it would act
# only after the keys behind it had gone to the field it leaves.
FOCUS_BINDINGS = [Binding("tab", "app.focus_next", show=False, priority=True),
                  Binding("shift+tab", "app.focus_previous", show=False, priority=True)]


def after_typing(node, callback) -> None:
    """Run `callback` once every field of the screen has handled the keys sent before this one
    (a burst with tabs leaves keys queued in several fields): a marker passes through each
    field's queue in turn, behind what is already there."""
    fields = list(node.screen.focus_chain)

    def next_field():
        if fields:
            return fields.pop().call_later(next_field)
        return callback()  # awaited by call_later when it is a coroutine

    node.call_later(next_field)


def help_rows(groups: Sequence[tuple[str, Sequence[Key]]]) -> list[tuple[str, str, str]]:
    """(where, keys, what they do): consecutive keys with the same help share a line."""
    rows: list[tuple[str, str, str]] = []
    for where, keys in groups:
        for k in keys:
            if not k.keys:
                continue
            if rows and rows[-1][0] == where and rows[-1][2] == k.help:
                rows[-1] = (where, f"{rows[-1][1]} {k.shown()}", k.help)
            else:
                rows.append((where, k.shown(), k.help))
    return rows


def help_markdown(groups: Sequence[tuple[str, Sequence[Key]]]) -> str:
    lines = ["| where | key | does |", "|---|---|---|"]
    for where, keys, what in help_rows(groups):
        shown = " ".join(f"`{k}`" for k in keys.split(" "))
        lines.append(f"| {where} | {shown} | {what} |")
    return "\n".join(lines)


def palette(keys: Sequence[Key]) -> list[tuple[str, str, str]]:
    """(title, action, help with its key) for every key with a title."""
    out = []
    for k in keys:
        if k.title:
            out.append((k.title, k.action, f"{k.help} ({k.shown()})" if k.keys else k.help))
    return out


def hint(keys: Sequence[Key]) -> str:
    """The keys a panel's header names, in order, each once."""
    seen: list[str] = []
    for k in keys:
        for part in k.shown().split(" ") if k.keys else ():
            if part not in seen and part not in ("Home", "End", "PgUp", "PgDn"):
                seen.append(part)
    return "keys " + " ".join(seen)
