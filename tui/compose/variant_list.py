"""The lens variants: one comparison column each. The list edits the workspace's variants
itself (dialogs for a kind, its parameters or a spec; lens files) and posts `Changed`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import tomli_w
from textual.content import Content
from textual.message import Message
from textual.notifications import Notification, Notify
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from lenscope.errors import BadInput, one_line, user_path
from lenscope.lenses.base import Variant
from lenscope.lenses.spec import parse, to_data
from lenscope.storage import files
from lenscope.tui.dialogs.lens_dialogs import LensForm, LensPicker, PathPrompt, SpecEditor
from lenscope.tui.keys import Key, bindings
from lenscope.tui.markup import safe
from lenscope.tui.workspace import Workspace


def variant_line(i: int, v: Variant) -> Content:
    """`1. name  spec`, the spec dim; a lens at its defaults shows their values, so parameters always show."""
    stack = " + ".join(lens.label() for lens in v.lenses) or "(no lens)"
    if stack == v.name and len(v.lenses) == 1:
        lens = v.lenses[0]
        stack = " ".join(f"{k}={v}" for k, v in lens.normalized().items() if k != "kind" and v not in ("", [])) or stack
    if stack == v.name:
        return safe("[b]$i. $name[/b]", i=i + 1, name=one_line(v.name))
    # one_line: a forced path's line breaks (and any control character) shown escaped, on one line
    return safe("[b]$i. $name[/b]  [dim]$stack[/dim]", i=i + 1, name=one_line(v.name), stack=one_line(stack))


class VariantList(OptionList):
    KEYS = [
        Key("a", "add_variant", "add a variant: pick a lens kind, edit its parameters", "add lens",
            "Add lens variant"),
        Key("e,enter", "edit_variant", "edit the highlighted variant", "edit", "Edit lens variant"),
        Key("t", "edit_variant_spec", "edit the highlighted variant as a spec (KIND:key=value, + stacks)",
            title="Edit variant as spec"),
        Key("x,delete", "remove_variant", "remove the highlighted variant", "remove", "Remove lens variant"),
        Key("u", "undo_remove", "put the last removed variant back", "undo", "Undo variant removal"),
        Key("ctrl+up", "move_variant(-1)", "move the variant up / down"),
        Key("ctrl+down", "move_variant(1)", "move the variant up / down"),
        Key("l", "load_lens_file", "load variants from a .toml or .json lens file", title="Load lens file"),
        Key("w", "save_lens_file", "write the variants to a lens file", title="Save lens file"),
        Key("", "fit_lens", "learn a steer lens from a data file (.jsonl, as lenscope fit) and add it as a row",
            title="Fit a lens from examples"),
    ]
    BINDINGS = bindings(KEYS)

    @dataclass
    class Changed(Message):
        """The variants changed; `highlight`: the row to highlight."""

        highlight: int | None

    def __init__(self, ws: Workspace, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ws = ws
        self._toast: Notification | None = None  # the last removal's toast, replaced by the next

    def show(self, highlight: int | None = None) -> None:
        variants = self.ws.variants
        self.clear_options()
        if not variants:
            self.add_option(Option("[dim]no variants yet: press [b]a[/b] to add a lens[/dim]", disabled=True))
            return
        self.add_options([Option(variant_line(i, v)) for i, v in enumerate(variants)])
        # always one highlighted, so e, t and x act at once
        self.highlighted = max(0, min(highlight or 0, len(variants) - 1))

    def model_shape(self):
        engine = getattr(self.app, "engine", None)
        return (engine.n_layers, engine.n_heads) if engine is not None else None

    def _highlighted(self) -> int | None:
        idx = self.highlighted
        return idx if self.ws.variants and idx is not None and idx < len(self.ws.variants) else None

    def set_variant(self, index: int | None, variant: Variant | None) -> None:
        if variant is None:
            return
        before = len(self.ws.variants)
        first = self.ws.set_variant(index, variant)
        self.post_message(self.Changed(first))
        rows = len(self.ws.variants) - before + (index is not None)
        if rows > 1:
            self.notify(f"{variant.name}: {rows} rows, one per point")

    def action_add_variant(self) -> None:
        def picked(kind: str | None) -> None:
            if kind:
                self.app.push_screen(LensForm(kind, shape=self.model_shape()), lambda v: self.set_variant(None, v))

        self.app.push_screen(LensPicker(), picked)

    def action_edit_variant(self) -> None:
        i = self._highlighted()
        if i is None:
            self.notify("no variant to edit: press a to add one", severity="warning")
            return
        v = self.ws.variants[i]
        if len(v.lenses) == 1:
            self.app.push_screen(LensForm(v.lenses[0].kind, v, self.model_shape()), lambda nv: self.set_variant(i, nv))
        else:
            self.action_edit_variant_spec()

    def action_edit_variant_spec(self) -> None:
        i = self._highlighted()
        v = self.ws.variants[i] if i is not None else None
        spec = "+".join(lens.label() for lens in v.lenses) if v else ""
        self.app.push_screen(SpecEditor(spec, v.name if v else "", self.model_shape()),
                             lambda nv: self.set_variant(i, nv))

    def action_remove_variant(self) -> None:
        i = self._highlighted()
        if i is not None:
            removed = self.ws.remove_variant(i)
            self.post_message(self.Changed(i))
            self._say(f"removed {removed.name} · u puts it back" + (f" ({len(self.ws.removed)} removed)"
                                                                       if len(self.ws.removed) > 1 else ""))

    def action_undo_remove(self) -> None:
        back = self.ws.undo_remove()
        if back is None:
            self._say("nothing removed to put back")
            return
        i = self.ws.variants.index(back)
        self.post_message(self.Changed(i))
        self._say(f"put back {back.name}")

    def _say(self, text: str) -> None:
        """One toast for a burst of removals and undos, not one each (12 would cover the screen)."""
        if self._toast is not None and self._toast in self.app._notifications:  # not expired yet
            self.app._unnotify(self._toast)
        self._toast = Notification(text, "", "information", 4, markup=False)
        self.app.post_message(Notify(self._toast))

    def action_move_variant(self, delta: int) -> None:
        i = self._highlighted()
        if i is not None and self.ws.move_variant(i, delta):
            self.post_message(self.Changed(i + delta))

    def action_load_lens_file(self) -> None:
        def chosen(path: str | None) -> None:
            if not path:
                return
            try:
                new = parse(path) if path.endswith((".toml", ".json")) else []
                if not new:
                    raise BadInput(f"lens file '{path}': use .toml or .json")
            except BadInput as exc:
                self.notify(str(exc), severity="error", timeout=8)
                return
            self.ws.variants += new
            self.post_message(self.Changed(len(self.ws.variants) - 1))
            self.notify(f"loaded {len(new)} variant(s) from {path}")

        self.app.push_screen(PathPrompt("Load lens file (.toml or .json)", "lenses.toml"), chosen)

    def action_fit_lens(self) -> None:
        def chosen(path: str | None) -> None:
            if not path or self.app.engine is None:
                return
            try:
                data = user_path(path, f"--data '{path}'")
            except BadInput as exc:
                self.notify(str(exc), severity="error", timeout=8)
                return
            out = next(p for k in range(1000) if not (p := data.with_name(f"{data.stem}-steer{k or ''}")).exists())
            self.app.runner.fit(str(data), out, added)

        def added(lens_file: Path) -> None:
            new = parse(str(lens_file))
            self.ws.variants += new
            self.post_message(self.Changed(len(self.ws.variants) - 1))
            self.notify(f"fitted {lens_file.parent} (fit.json: its losses) and added it as a row")

        self.app.push_screen(PathPrompt("Fit a steer lens: data file (.jsonl: prompt/completion, messages, text, "
                                        "pairs)", "data.jsonl"), chosen)

    def action_save_lens_file(self) -> None:
        def chosen(path: str | None) -> None:
            if not path:
                return

            data = to_data(self.ws.variants)
            try:
                text = tomli_w.dumps(data) if path.endswith(".toml") else json.dumps(data, indent=1)
                files.atomic_write(Path(path), text)
            except (BadInput, OSError) as exc:
                self.notify(f"lens file '{path}': {exc}", severity="error", timeout=8)
                return
            self.notify(f"wrote {len(self.ws.variants)} variant(s) to {path}")

        self.app.push_screen(PathPrompt("Write lens file (.toml or .json)", "lenses.toml"), chosen)
