"""The lens variants: one comparison column each. Keys call App actions."""

from __future__ import annotations

from rich.markup import escape
from textual.binding import Binding
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from lenscope.lenses.base import Variant


def variant_line(i: int, v: Variant) -> str:
    stack = " + ".join(lens.label() for lens in v.lenses) or "(no lens)"
    shown = "" if stack == v.name else f"  [dim]{escape(stack)}[/dim]"
    return f"[b]{i + 1}. {escape(v.name)}[/b]{shown}"


class VariantList(OptionList):
    BINDINGS = [
        Binding("a", "app.add_variant", "add lens"),
        Binding("e,enter", "app.edit_variant", "edit"),
        Binding("t", "app.edit_variant_spec", "as spec", show=False),
        Binding("x,delete", "app.remove_variant", "remove"),
        Binding("ctrl+up", "app.move_variant(-1)", "move up", show=False),
        Binding("ctrl+down", "app.move_variant(1)", "move down", show=False),
        Binding("l", "app.load_lens_file", "load file", show=False),
        Binding("w", "app.save_lens_file", "write file", show=False),
    ]

    def show(self, variants: list[Variant], highlight: int | None = None) -> None:
        self.clear_options()
        if not variants:
            self.add_option(Option("[dim]no variants yet: press [b]a[/b] to add a lens[/dim]", disabled=True))
            return
        self.add_options([Option(variant_line(i, v)) for i, v in enumerate(variants)])
        # always one highlighted, so e, t and x act at once
        self.highlighted = max(0, min(highlight or 0, len(variants) - 1))
