"""The lens variants: one comparison column each. Keys call App actions."""

from __future__ import annotations

from rich.markup import escape
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from lenscope.lenses.base import Variant
from lenscope.screens.keys import Key, bindings


def variant_line(i: int, v: Variant) -> str:
    stack = " + ".join(lens.label() for lens in v.lenses) or "(no lens)"
    shown = "" if stack == v.name else f"  [dim]{escape(stack)}[/dim]"
    return f"[b]{i + 1}. {escape(v.name)}[/b]{shown}"


class VariantList(OptionList):
    KEYS = [
        Key("a", "app.add_variant", "add a variant: pick a lens kind, edit its parameters", "add lens",
            "Add lens variant"),
        Key("e,enter", "app.edit_variant", "edit the highlighted variant", "edit", "Edit lens variant"),
        Key("t", "app.edit_variant_spec", "edit the highlighted variant as a spec (KIND:key=value, + stacks)",
            title="Edit variant as spec"),
        Key("x,delete", "app.remove_variant", "remove the highlighted variant", "remove", "Remove lens variant"),
        Key("ctrl+up", "app.move_variant(-1)", "move the variant up / down"),
        Key("ctrl+down", "app.move_variant(1)", "move the variant up / down"),
        Key("l", "app.load_lens_file", "load variants from a .toml or .json lens file", title="Load lens file"),
        Key("w", "app.save_lens_file", "write the variants to a lens file", title="Save lens file"),
    ]
    BINDINGS = bindings(KEYS)

    def show(self, variants: list[Variant], highlight: int | None = None) -> None:
        self.clear_options()
        if not variants:
            self.add_option(Option("[dim]no variants yet: press [b]a[/b] to add a lens[/dim]", disabled=True))
            return
        self.add_options([Option(variant_line(i, v)) for i, v in enumerate(variants)])
        # always one highlighted, so e, t and x act at once
        self.highlighted = max(0, min(highlight or 0, len(variants) - 1))
