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

    def binding(self) -> Binding:
        return Binding(self.keys, self.action, self.footer or self.help, show=bool(self.footer),
                       priority=self.priority, tooltip=self.help)

    def shown(self) -> str:
        return " ".join(SYMBOLS.get(k.strip(), k.strip()) for k in self.keys.split(","))


def bindings(keys: Sequence[Key]) -> list[Binding]:
    return [k.binding() for k in keys if k.keys]


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
