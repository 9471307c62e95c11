"""Modal dialogs for lens variants: pick a kind, edit its parameters, or edit a spec."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from lenscope.app.errors import BadInput
from lenscope.lenses.base import Lens, Variant, layers_or_all
from lenscope.lenses.registry import KINDS
from lenscope.lenses.spec import build_lens, parse_inline

ModelShape = tuple[int, int]  # (layers, heads) of the loaded model


def fit_problems(lens: Lens, shape: ModelShape | None) -> dict[str, str]:
    """Parameter -> why it does not fit the loaded model (layers and heads it does not have)."""
    if shape is None:
        return {}
    n_layers, n_heads = shape
    problems = {}
    layers = getattr(lens, "layers", None)
    if layers is not None:
        try:
            layers_or_all(layers, n_layers, lens.kind)
        except BadInput as exc:
            problems["layers"] = str(exc)
    bad = [h for h in getattr(lens, "heads", None) or () if not 0 <= h < n_heads]
    if bad:
        problems["heads"] = f"{lens.kind}: head {bad[0]} does not exist (heads are 0..{n_heads - 1})"
    if getattr(lens, "auto_heads", 0) > n_heads:
        problems["auto_heads"] = f"{lens.kind}: auto_heads={lens.auto_heads}, the model has {n_heads} heads"
    return problems


def variant_problem(variant: Variant, shape: ModelShape | None) -> str | None:
    """The first reason a variant cannot run on the loaded model, naming it; None if it fits."""
    for lens in variant.lenses:
        for problem in fit_problems(lens, shape).values():
            return f"variant '{variant.name}': {problem}"
    return None


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
.dialog .title { text-style: bold; margin-bottom: 1; }
.dialog .error { color: $error; height: auto; }
.dialog .help { color: $text-muted; }
.dialog Input.-invalid { border: tall $error; }
.dialog .buttons { height: auto; margin-top: 1; }
"""


class LensPicker(ModalScreen[str | None]):
    """Every lens kind with its one-line explanation; enter picks one."""

    CSS = DIALOG_CSS
    BINDINGS = [Binding("escape", "dismiss(None)", "cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Add a lens variant: pick a kind", classes="title")
            yield OptionList(*[Option(f"[b]{k}[/b]  {cls.summary}", id=k) for k, cls in KINDS.items()])

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


def _raw(lens: Lens, name: str) -> str:
    value = lens.normalized().get(name)
    if value is None:
        return ""
    if isinstance(value, list):
        if value and isinstance(value[0], list):  # keyframes
            return "|".join(f"{v:g}@{int(s)}" for s, v in value)
        return "|".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


class LensForm(ModalScreen[Variant | None]):
    """One input per parameter, validated as you type; ctrl+s or the button applies."""

    CSS = DIALOG_CSS
    AUTO_FOCUS = "Input"  # typing goes to the first field at once
    BINDINGS = [Binding("escape", "dismiss(None)", "cancel"), Binding("ctrl+s", "apply", "apply", priority=True)]

    def __init__(self, kind: str, variant: Variant | None = None, shape: ModelShape | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.cls = KINDS[kind]
        self.variant = variant
        self.lens = variant.lenses[0] if variant and variant.lenses else None
        self.shape = shape  # the loaded model's (layers, heads): layers and heads are checked against it

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"{self.kind}: {self.cls.summary}", classes="title")
            with VerticalScroll():
                yield Label("column name")
                yield Input(self.variant.name if self.variant else "", placeholder="(from the spec)", id="name")
                for p in self.cls.params:
                    bounded = p.min is not None and p.max is not None
                    rng = f" [{number(p.min)}, {number(p.max)}]" if bounded else ""
                    choices = f" one of {'|'.join(p.choices)}" if p.choices else ""
                    keyframes = " · keyframes: 0@0|4@10" if p.keyframes else ""
                    yield Label(f"[b]{p.name}[/b] ({p.type}{rng}{choices}) — {p.help}{keyframes}")
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
        problems = fit_problems(lens, self.shape)
        for name in problems:
            self.query(f"#p-{name}").add_class("-invalid")
        error.update("\n".join(problems.values()))
        return None if problems else lens

    def on_input_changed(self, event: Input.Changed) -> None:
        self.validate()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_apply() if event.button.id == "apply" else self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_apply()

    def action_apply(self) -> None:
        lens = self.validate()
        if lens is None:
            return
        name = self.query_one("#name", Input).value.strip() or lens.label()
        self.dismiss(Variant(name, [lens]))


class SpecEditor(ModalScreen[Variant | None]):
    """Edit a variant as an inline spec (stacks: `emphasis:strength=3+steer:token=happy`)."""

    CSS = DIALOG_CSS
    AUTO_FOCUS = "Input"
    BINDINGS = [Binding("escape", "dismiss(None)", "cancel")]

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
            problem = variant_problem(variant, self.shape)
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
            name = self.query_one("#name", Input).value.strip()
            if name:
                variant.name = name
            self.dismiss(variant)


class PathPrompt(ModalScreen[str | None]):
    """Ask for a file path (save/open sessions and lens files)."""

    CSS = DIALOG_CSS
    AUTO_FOCUS = "Input"
    BINDINGS = [Binding("escape", "dismiss(None)", "cancel")]

    def __init__(self, title: str, value: str = "") -> None:
        super().__init__()
        self.title_, self.value = title, value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_, classes="title")
            yield Input(self.value, id="path")
            yield Static("enter confirms · esc cancels", classes="help")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)
