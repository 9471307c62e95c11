"""Modal dialogs for lens variants: pick a kind, edit its parameters, or edit a spec."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from lenscope.errors import BadInput
from lenscope.lenses.base import Lens, Variant
from lenscope.lenses.params import Keyframes, number_text
from lenscope.lenses.registry import KINDS
from lenscope.lenses.spec import build_lens, edited_name, parse_inline
from lenscope.tui.keys import FOCUS_BINDINGS, after_typing


def number(x: float) -> str:
    """A range bound as a person writes it: 1048576, not 1.04858e+06; 0.5 stays 0.5."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def shown_default(value) -> str:
    if value is None or value == ():
        return "-"
    if isinstance(value, tuple):
        return "|".join(str(v) for v in value)
    return number(value) if isinstance(value, float) else str(value)

DIALOG_CSS = """
.dialog { width: 90%; max-width: 100; height: auto; max-height: 90%; border: thick $accent;
          background: $surface; padding: 0 1; }
.dialog Label { width: 100%; }  /* as wide as the dialog, so a long description wraps, never cut */
.dialog .title { text-style: bold; margin-bottom: 1; }
.dialog .error { color: $error; height: auto; }
.dialog .help { color: $text-muted; }
.dialog Input.-invalid { border: tall $error; }
.dialog .buttons { height: auto; margin-top: 1; }
"""


ModelShape = tuple[int, int]  # the loaded model's (layers, heads)


class LensPicker(ModalScreen[str | None]):
    """Every lens kind with its one-line explanation; enter picks one."""

    CSS = DIALOG_CSS
    BINDINGS = [Binding("escape", "dismiss(None)", "cancel"), *FOCUS_BINDINGS]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Add a lens variant: pick a kind", classes="title")
            yield OptionList(*[Option(kind_line(k), id=k) for k in KINDS])

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


def kind_line(kind: str) -> Content:
    """A kind and its summary, in the picker: Content, so no text in it is read as markup."""
    return Content.assemble((kind, "bold"), f"  {KINDS[kind].summary}")


def param_line(p) -> Content:
    """A parameter's name, type, range and meaning above its field (never read as markup)."""
    bounded = p.min is not None and p.max is not None
    rng = f" [{number(p.min)}, {number(p.max)}]" if bounded else ""
    choices = f" one of {'|'.join(p.choices)}" if p.choices else ""
    keyframes = " · keyframes: 0@0|4@10" if p.keyframes else ""
    return Content.assemble((p.name, "bold"), f" ({p.type}{rng}{choices}) — {p.help}{keyframes}")


def _raw(lens: Lens, name: str) -> str:
    """A parameter's value as its field shows it (numbers exact: applying the form unchanged
    gives the same lens)."""
    value = getattr(lens, name)
    if value is None:
        return ""
    if isinstance(value, Keyframes):
        return repr(value)
    if isinstance(value, tuple):
        return "|".join(str(v) for v in value)
    if isinstance(value, float):
        return number_text(value)
    return str(value)


class LensForm(ModalScreen[Variant | None]):
    """One input per parameter, validated as you type; ctrl+s or the button applies."""

    CSS = DIALOG_CSS
    AUTO_FOCUS = "Input"  # typing goes to the first field at once
    BINDINGS = [Binding("escape", "dismiss(None)", "cancel"), Binding("ctrl+s", "apply", "apply", priority=True),
                *FOCUS_BINDINGS]

    def __init__(self, kind: str, variant: Variant | None = None, shape: ModelShape | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.cls = KINDS[kind]
        self.variant = variant
        self.lens = variant.lenses[0] if variant and variant.lenses else None
        self.shape = shape  # the loaded model's (layers, heads): layers and heads are checked against it

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"{self.kind}: {self.cls.summary}", classes="title", markup=False)
            with VerticalScroll():
                yield Label("column name")
                yield Input(self.variant.name if self.variant else "", placeholder="(from the spec)", id="name")
                for p in self.cls.params:
                    yield Label(param_line(p))
                    value = _raw(self.lens, p.name) if self.lens else ""
                    yield Input(value, placeholder=f"default: {shown_default(p.default)}", id=f"p-{p.name}")
            yield Static("", classes="error", id="error", markup=False)  # errors quote user text
            with Horizontal(classes="buttons"):
                yield Button("Apply (ctrl+s)", variant="primary", id="apply")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        # focusing the first field scrolls the form past its label: back to the top
        self.call_after_refresh(self.query_one(VerticalScroll).scroll_home, animate=False)

    def _entry(self) -> dict:
        entry = {"kind": self.kind}
        for p in self.cls.params:
            raw = self.query_one(f"#p-{p.name}", Input).value.strip()
            if raw:
                entry[p.name] = raw
        return entry

    def validate(self) -> Lens | None:
        error = self.query_one("#error", Static)
        for p in self.cls.params:
            box = self.query_one(f"#p-{p.name}", Input)
            try:
                if box.value.strip():
                    p.parse(box.value.strip(), self.kind)
                box.remove_class("-invalid")
            except BadInput:
                box.add_class("-invalid")
        try:
            lens = build_lens(self._entry(), "lens")
        except BadInput as exc:
            error.update(str(exc))
            return None
        problems = lens.fit_problems(*self.shape) if self.shape else {}
        for name in problems:
            self.query(f"#p-{name}").add_class("-invalid")
        error.update("\n".join(problems.values()))
        return None if problems else lens

    def on_input_changed(self, event: Input.Changed) -> None:
        self.validate()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.apply() if event.button.id == "apply" else self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.apply()

    def action_apply(self) -> None:
        after_typing(self, self.apply)  # ctrl+s is a priority key: the fields' last keys first

    def apply(self) -> None:
        lens = self.validate()
        if lens is None:
            return
        # a name nobody chose (the old spec) follows the new parameters; a typed one stays
        name = edited_name(self.query_one("#name", Input).value, self.variant, [lens], lens.label())
        self.dismiss(Variant(name, [lens]))


class SpecEditor(ModalScreen[Variant | None]):
    """Edit a variant as an inline spec (stacks: `emphasis:strength=3+steer:token=happy`)."""

    CSS = DIALOG_CSS
    AUTO_FOCUS = "Input"
    BINDINGS = [Binding("escape", "dismiss(None)", "cancel"), *FOCUS_BINDINGS]

    def __init__(self, spec: str = "", name: str = "", shape: ModelShape | None = None) -> None:
        super().__init__()
        self.spec, self.name_, self.shape = spec, name, shape

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Lens spec: KIND:key=value,... stacked with +", classes="title")
            yield Input(self.spec, id="spec", placeholder="emphasis:strength=3+steer:token=happy")
            yield Label("column name (optional)")
            yield Input(self.name_, id="name")
            yield Static("", classes="error", id="error", markup=False)  # errors quote user text
            yield Static("enter applies · esc cancels", classes="help")

    def on_input_changed(self, event: Input.Changed) -> None:
        self._parse()

    def _parse(self) -> Variant | None:
        spec = self.query_one("#spec", Input)
        try:
            variant = parse_inline(spec.value)
            problem = variant.fit_problem(*self.shape) if self.shape else None
            if problem:
                raise BadInput(problem)
        except BadInput as exc:
            self.query_one("#error", Static).update(str(exc))
            spec.add_class("-invalid")
            return None
        self.query_one("#error", Static).update("")
        spec.remove_class("-invalid")
        return variant

    def on_input_submitted(self, event: Input.Submitted) -> None:
        variant = self._parse()
        if variant is not None:
            variant.name = edited_name(self.query_one("#name", Input).value, self._old(), variant.lenses,
                                       variant.name)
            self.dismiss(variant)

    def _old(self) -> Variant | None:
        """The variant being edited (its spec and name as given), None for a new one."""
        try:
            return Variant(self.name_, parse_inline(self.spec).lenses) if self.spec.strip() else None
        except BadInput:
            return None


class PathPrompt(ModalScreen[str | None]):
    """Ask for a file path (save/open sessions and lens files)."""

    CSS = DIALOG_CSS
    AUTO_FOCUS = "Input"
    BINDINGS = [Binding("escape", "dismiss(None)", "cancel"), *FOCUS_BINDINGS]

    def __init__(self, title: str, value: str = "") -> None:
        super().__init__()
        self.title_, self.value = title, value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_, classes="title", markup=False)  # a title may quote a path
            yield Input(self.value, id="path")
            yield Static("enter confirms · esc cancels", classes="help")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)
