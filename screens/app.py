"""LenscopeApp: owns the session state, starts workers, routes messages to widgets.

Widgets never call the model: generation and capture run in thread workers that post
batched progress messages; the UI stays responsive while they run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from rich.markup import escape
from textual import on, work
from textual.app import App
from textual.command import CommandPalette, DiscoveryHit, Hit, Hits, Provider
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, Label, ProgressBar, Static, TabbedContent, TextArea
from textual.worker import get_current_worker

from lenscope.app import chat
from lenscope.app import conversation as convs
from lenscope.app import session as sessions
from lenscope.app.errors import BadInput
from lenscope.app.inspection import RowCapture
from lenscope.app.results import RunResult
from lenscope.app.workspace import Workspace, read_session
from lenscope.lenses.base import Variant
from lenscope.lenses.spec import parse, to_data
from lenscope.screens.comparison import ComparisonView
from lenscope.screens.conversation_panel import ConversationPanel
from lenscope.screens.geometry_panel import GeometryPanel
from lenscope.screens.head_map_panel import HeadMapPanel
from lenscope.screens.heatmap_panel import HeatmapPanel
from lenscope.screens.help import HelpScreen
from lenscope.screens.keys import Key, bindings, palette
from lenscope.screens.lens_dialogs import (
    LensForm,
    LensPicker,
    ModelShape,
    PathPrompt,
    SpecEditor,
    variant_problem,
)
from lenscope.screens.logit_lens_panel import LogitLensPanel
from lenscope.screens.main import MainScreen, chat_label, tokens_label
from lenscope.screens.token_chips import TokenChips, chip_text
from lenscope.screens.tree_panel import TreePanel
from lenscope.screens.variant_list import VariantList

FLUSH_S = 0.05  # tokens reach the screen in batches at most this often
DEFAULT_PROMPT = ("the key is blue. one day, tom went to the park. the sun was warm. "
                  "question: what color is the key? answer: the key is")


# Workers report to the UI only with these messages (Textual delivers them on its thread).


@dataclass
class ModelLoaded(Message):
    engine: Any
    seconds: float


@dataclass
class Failed(Message):
    """A worker failed: loading the model ("model") or running ("run"); one line."""

    what: str
    message: str


@dataclass
class RunProgress(Message):
    run: int  # which run: a new number is a new result
    result: RunResult  # a snapshot while generating; the finished result itself once `done`
    steps_per_s: float
    done: bool


@dataclass
class CaptureReady(Message):
    """The end of a run (or of capturing a reopened session's outputs): the run is over."""

    run: int
    captures: dict[int, RowCapture]  # row -> attention and hidden states, for every view
    note: str


@dataclass
class TurnDone(Message):
    """A conversation turn finished (or was cancelled: `conversation` is None) in a worker."""

    run: int
    conversation: Any  # the conversation with the turn added (the worker ran on a copy)
    result: RunResult  # the turn as one comparison, for the views


@dataclass
class ViewReady(Message):
    """A view's computation (head roles, a logit lens window) finished in a worker."""

    apply: Callable[[], None]


class LenscopeCommands(Provider):
    """Every app action in the command palette, listed before anything is typed."""

    async def discover(self) -> Hits:
        for name, action, help_text in self.app.PALETTE:  # type: ignore[attr-defined]
            yield DiscoveryHit(name, lambda a=action: self.app.run_action(a), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, action, help_text in self.app.PALETTE:  # type: ignore[attr-defined]
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), lambda a=action: self.app.run_action(a), help=help_text)


class LenscopeApp(App):
    TITLE = "lenscope"
    CSS_PATH = "lenscope.tcss"
    COMMANDS = App.COMMANDS | {LenscopeCommands}
    KEYS = [
        Key("ctrl+r", "run", "run the comparison: the baseline and every variant side by side", "run",
            "Run comparison", priority=True),
        Key("escape", "cancel", "cancel a run (partial output stays)", title="Cancel run"),
        Key("ctrl+s", "save_session", "save the session: prompt, marks, variants, settings and outputs (JSON)",
            "save", "Save session"),
        Key("ctrl+o", "open_session", "open a saved session and show its outputs", "open", "Open session"),
        # priority: TextArea's own ctrl+k (delete to the end of the line) must not run first
        Key("ctrl+k", "mark_selection", "mark every token the prompt's selection overlaps", title="Mark selection",
            priority=True),
        Key("", "clear_marks", "unmark every token", title="Clear marks"),
        Key("ctrl+t", "toggle_chat", "chat mode: the model's chat template around the prompt", title="Toggle chat mode"),
        Key("ctrl+n", "toggle_conversation", "conversation mode: each run (ctrl+r) is the next user turn; marks on "
            "any turn hold", title="Toggle conversation mode"),
        Key("", "new_conversation", "start the conversation over (the turns so far are dropped)",
            title="New conversation"),
        Key("", "branches", "conversation: every row continues its own history (before the first turn)",
            title="Conversation: branches mode"),
        Key("f1", "help", "this help: every key", "help", "Help"),
        Key("f2", "tab('compose')", "the compose tab: prompt, tokens, variants, settings", title="Show compose tab"),
        Key("f3", "tab('compare')", "the compare tab: the rows side by side", title="Show compare tab"),
        Key("f4", "tab('heatmap')", "the heatmap tab: attention heatmaps and per-step charts", title="Show heatmap tab"),
        Key("f5", "tab('heads')", "the head map tab: layers x heads, share on the marks, entropy, head roles", title="Show head map tab"),
        Key("f6", "tab('logit-lens')", "the logit lens tab: what each layer would predict at each position", title="Show logit lens tab"),
        Key("f7", "tab('geometry')", "the geometry tab: how far each row's hidden states moved from the baseline's",
            title="Show geometry tab"),
        Key("f8", "tab('tree')", "the tree tab: branch where the model hesitates, score, keep the best",
            title="Show tree tab"),
        Key("f9", "tab('conversation')", "the conversation (Talk) tab: the transcript, and each marked span's share "
            "per turn",
            title="Show conversation tab"),
        Key("ctrl+e", "export_report", "export the comparison on screen as report.html + report.md (as `lenscope run`)",
            title="Export report"),
        Key("", "attention_text", "compare tab: colour the text by the cursor token's attention",
            title="Toggle attention on the text"),
        Key("", "toggle_charts", "per-step charts under the heatmap", title="Toggle charts"),
    ]
    BINDINGS = bindings(KEYS)
    PALETTE = palette(KEYS + VariantList.KEYS)

    def __init__(self, model: str | None = None, prompt: str | None = None, marks: list[str] | None = None,
                 lens_specs: list[str] | None = None, session: str | None = None,
                 trust_remote_code: bool = False, show_speed: bool = True, chat: bool | None = None,
                 system: str | None = None) -> None:
        super().__init__()
        self.show_speed = show_speed  # off in snapshot tests: timings differ run to run
        self.model_spec = model
        self.trust_remote_code = trust_remote_code
        self.engine: Any = None
        self.load_error = ""
        self.initial_prompt = prompt if prompt is not None else DEFAULT_PROMPT
        self.initial_mark_texts = marks or []
        self.initial_specs = lens_specs or []
        self.session_path = session
        self.ws = Workspace()  # prompt, marks, variants, settings, last result: the TUI's state
        self.parked_conversation: convs.Conversation | None = None  # kept while conversation mode is off
        # chat mode: None until decided (the model's default: chat.suggests_chat), or as asked / opened
        self.chat_choice: bool | None = True if system else chat
        self.initial_system = system or ""
        self.chat_template: str | None = None  # chat.template_name() of the loaded model
        self.run_inputs: str | None = None  # inputs_key() of the run in progress
        self.run_number = 0  # counts runs (and recaptures): a worker's messages name theirs
        self.shown_run = 0  # the run whose result is on screen
        self.captures: dict[int, RowCapture] = {}
        self.head_roles: Any = None  # measured once per model, when the head map asks
        self.running = False  # generating or capturing: the engine is busy until CaptureReady

    def notify(self, message: str, *, markup: bool = False, **kwargs) -> None:
        # messages quote user text (paths, specs, prompts): never read them as markup
        super().notify(message, markup=markup, **kwargs)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # ctrl+r and ctrl+k are priority keys (the prompt must not eat ctrl+k): not over a dialog
        modal = isinstance(self.screen, ModalScreen)
        if action in ("run", "mark_selection", "toggle_chat", "toggle_conversation") and modal \
                and not isinstance(self.screen, CommandPalette):
            return False
        return True

    # -- start-up ------------------------------------------------------------------------
    async def on_mount(self) -> None:
        self.main = MainScreen()
        await self.push_screen(self.main)
        self.main.query_one(ComparisonView).raw_token = self.raw_token
        self.main.query_one(LogitLensPanel).token_text = lambda i: self.engine.token_text(i) if self.engine else str(i)
        self.ws.prompt, self.ws.system = self.initial_prompt, self.initial_system
        self.main.query_one("#prompt", TextArea).text = self.initial_prompt
        self.main.query_one("#system", Input).value = self.initial_system
        for spec in self.initial_specs:
            try:
                self.ws.variants += parse(spec)
            except BadInput as exc:
                self.notify(str(exc), severity="error", timeout=8)
        self.show_variants()
        if self.session_path:
            self.open_session(self.session_path)
        self.set_status("loading model…")
        self.main.query_one(ProgressBar).update(total=None)
        self.load_model()

    @work(thread=True, exclusive=True, group="load")
    def load_model(self) -> None:
        from lenscope.app import models
        from lenscope.app.engine import Engine

        try:
            t = time.perf_counter()
            loaded = models.load(self.model_spec, trust_remote_code=self.trust_remote_code)
            engine = Engine(loaded)
        except BadInput as exc:
            self.post_message(Failed("model", str(exc)))
            return
        except Exception as exc:  # anything else from a model folder: say so, keep the app
            self.post_message(Failed("model", f"model: {type(exc).__name__}: {exc}"))
            return
        self.post_message(ModelLoaded(engine, time.perf_counter() - t))

    def on_failed(self, message: Failed) -> None:
        (self.model_failed if message.what == "model" else self.run_failed)(message.message)

    def on_model_loaded(self, message: ModelLoaded) -> None:
        self.model_ready(message.engine, message.seconds)

    def model_ready(self, engine: Any, seconds: float) -> None:
        from lenscope.app.models import DEMO_MODEL_NAME

        self.engine = engine
        self.chat_template = chat.template_name(engine.tokenizer)
        on = self.chat_choice
        if on is None:
            on = chat.suggests_chat(engine.tokenizer, engine.loaded.name, demo=engine.loaded.name == DEMO_MODEL_NAME)
        box = self.main.query_one("#chat", Checkbox)
        box.label = chat_label(self.chat_template)
        box.disabled = not self.chat_template
        self.main.query_one("#conversation-mode", Checkbox).disabled = not self.chat_template
        self.show_chat(on)
        self.main.query_one(ProgressBar).update(total=1, progress=1)
        took = f" in {seconds:.1f}s" if self.show_speed else ""
        chat_note = f" · chat: {self.chat_template}" if self.ws.chat else ""
        self.set_status(f"model loaded{took}{chat_note} · ctrl+r runs · f1 help")
        self.retokenize()
        ws = self.ws
        if self.initial_mark_texts and not ws.chat_error:
            try:
                self.set_marks(set(engine.marks_from_text(ws.model_text, ws.prompt_ids, self.initial_mark_texts,
                                                          ws.user_span)) - ws.template_tokens)
            except BadInput as exc:
                self.notify(str(exc), severity="error", timeout=8)
        if ws.result is not None and not self.captures:  # a session opened before the model was there
            self.recapture()

    def model_shape(self) -> ModelShape | None:
        return (self.engine.n_layers, self.engine.n_heads) if self.engine is not None else None

    def raw_token(self, token_id: int) -> str | None:
        """The tokenizer's own entry for a token (e.g. '<0xE2>'), for tokens that are part of a character."""
        try:
            return str(self.engine.tokenizer.convert_ids_to_tokens(int(token_id)))
        except Exception:  # a tokenizer without it, or an id from another model's session
            return None

    def model_failed(self, message: str) -> None:
        self.load_error = message
        self.main.query_one(ProgressBar).update(total=1, progress=0)
        self.set_status(f"[red]{escape(message)}[/]")
        self.notify(message, severity="error", timeout=12)

    def set_status(self, text: str) -> None:
        self.main.query_one("#status", Static).update(text)

    def update_header(self) -> None:
        """Model, the precision that runs, backend, layers, and the chat template when chat is on."""
        e = self.engine
        if e is None:
            return
        chat_part = [f"chat: {self.chat_template}"] if self.ws.chat else []  # before what a narrow header cuts
        parts = [e.loaded.name, getattr(e.loaded, "precision", "native"), *chat_part, e.backend, f"{e.n_layers} layers"]
        self.sub_title = " · ".join(parts)

    # -- chat mode -------------------------------------------------------------------------
    def show_chat(self, on: bool) -> bool:
        """Set chat mode and the widgets that show it (no retokenizing): on only with a template."""
        if on and self.engine is not None and not self.chat_template:
            self.notify("chat mode: this model has no chat template; the prompt goes in as written",
                        severity="warning")
            on = False
        self.ws.chat = on
        self.main.query_one("#chat", Checkbox).value = on  # its Changed message finds chat == value: nothing
        self.main.query_one("#system", Input).disabled = not on
        self.update_header()
        return on

    def set_chat(self, on: bool) -> None:
        """Chat mode on or off: marks stay on the same characters of the user's text."""
        if not on and self.ws.conversation is not None:  # a conversation is the chat template's turns
            self.show_chat(True)
            self.notify("conversation mode needs the chat template: ctrl+n turns conversation mode off first",
                        severity="warning")
            return
        on = self.show_chat(on)
        self.chat_choice = on
        lost = self.retokenize(remap=True)
        kept = f" · {lost} mark(s) could not be kept" if lost else ""
        if on:
            self.set_status(escape(f"chat: {self.chat_template} template around the prompt · dimmed tokens are "
                                   f"the template's{kept}"))
        else:
            self.set_status(escape(f"chat off: the prompt goes in as written{kept}"))
        if lost:
            self.notify(f"{lost} mark(s) could not be kept", severity="warning")

    def action_toggle_chat(self) -> None:
        if self.engine is None:
            self.notify("the model is still loading" if not self.load_error else f"no model loaded: {self.load_error}",
                        severity="warning")
            return
        if not self.chat_template:
            self.notify("chat mode: this model has no chat template", severity="warning")
            return
        self.set_chat(not self.ws.chat)

    @on(Checkbox.Changed, "#chat")
    def chat_toggled(self, event: Checkbox.Changed) -> None:
        if event.checkbox.value != self.ws.chat:  # a person toggled it (set_chat keeps the two equal)
            self.set_chat(event.checkbox.value)

    @on(Input.Changed, "#system")
    def system_changed(self, event: Input.Changed) -> None:
        self.ws.system = event.value
        conv = self.ws.conversation
        if conv is not None and not conv.turns:  # before the first turn the system message can change
            self.ws.conversation = convs.Conversation.start(self.ws.system_text(), conv.mode)
            self.ws.conversation.concepts = conv.concepts
        if self.ws.chat:
            self.retokenize(remap=True)
        else:
            self.refresh_stale()

    @on(TextArea.Changed, "#prompt")
    def prompt_changed(self, event: TextArea.Changed) -> None:
        self.ws.prompt = event.text_area.text
        self.retokenize()

    def retokenize(self, remap: bool = False) -> int:
        """The workspace retokenizes (marks carried or remapped); the chips and label show it."""
        if self.engine is None:
            return 0
        ws = self.ws
        lost = ws.retokenize(self.engine, remap)
        if ws.chat_error:  # e.g. a template that refuses a system message: say so, change nothing
            self.main.query_one("#tokens-label", Label).update(f"[red]{escape(ws.chat_error)}[/]")
            self.refresh_stale()
            return 0
        chips = self.main.query_one(TokenChips)
        chips.tokens = [chip_text(t, self.raw_token(i) if "\ufffd" in t else None)
                        for i, t in zip(ws.prompt_ids, ws.prompt_tokens)]
        chips.fixed = set(ws.template_tokens)
        chips.tracked = set(ws.tracked)
        chips.marks = set(ws.marks)
        self.main.query_one("#tokens-label", Label).update(tokens_label(len(ws.prompt_tokens),
                                                                        len(ws.template_tokens),
                                                                        ws.conversation is not None))
        self.refresh_stale()
        return lost

    def set_marks(self, marks: set[int]) -> None:
        self.ws.take_marks(marks)
        self.main.query_one(TokenChips).marks = set(marks)
        self.marks_shown()

    @on(TokenChips.MarksChanged)
    def marks_changed(self, event: TokenChips.MarksChanged) -> None:
        self.ws.take_marks(event.marks)
        self.marks_shown()

    def marks_shown(self) -> None:
        self.refresh_stale()
        if self.ws.conversation is not None:  # marks on earlier turns show in the transcript
            self.show_conversation()

    def refresh_stale(self) -> None:
        stale = self.ws.stale
        self.main.query_one(ComparisonView).set_stale(stale)
        self.main.query_one(HeatmapPanel).set_stale(stale)

    @on(Input.Changed, "#settings Input")
    def settings_changed(self) -> None:
        self.pull_fields()
        self.refresh_stale()

    def pull_fields(self) -> None:
        """The settings fields as typed, into the workspace: read when they change and again
        before a run or a save (a key can arrive before the field's Changed message)."""
        for name in self.ws.fields:
            self.ws.fields[name] = self.main.query_one(f"#{name.replace('_', '-')}", Input).value

    def action_mark_selection(self) -> None:
        area = self.main.query_one("#prompt", TextArea)
        if self.engine is None or area.selection.is_empty:
            self.notify("select some prompt text first (shift+arrows), then ctrl+k", severity="warning")
            return
        if self.ws.chat_error:
            self.notify(self.ws.chat_error, severity="error")
            return
        doc = area.document
        a, b = sorted((doc.get_index_from_location(area.selection.start),
                       doc.get_index_from_location(area.selection.end)))
        hit = self.ws.tokens_in(self.engine, a, b)
        if not hit:
            self.notify("the selection overlaps no token", severity="warning")
            return
        self.set_marks(self.ws.marks | hit)
        self.notify(f"marked {len(hit)} token(s)")

    def action_clear_marks(self) -> None:
        self.set_marks(set())

    # -- variants ------------------------------------------------------------------------
    def _highlighted(self) -> int | None:
        idx = self.main.query_one(VariantList).highlighted
        return idx if self.ws.variants and idx is not None and idx < len(self.ws.variants) else None

    def show_variants(self, highlight: int | None = None) -> None:
        self.main.query_one(VariantList).show(self.ws.variants, highlight)
        self.refresh_stale()

    def _set_variant(self, index: int | None, variant: Variant | None) -> None:
        if variant is None:
            return
        before = len(self.ws.variants)
        self.show_variants(self.ws.set_variant(index, variant))
        rows = len(self.ws.variants) - before + (index is not None)
        if rows > 1:
            self.notify(f"{variant.name}: {rows} rows, one per point")

    def action_add_variant(self) -> None:
        def picked(kind: str | None) -> None:
            if kind:
                self.push_screen(LensForm(kind, shape=self.model_shape()),
                                 lambda v: self._set_variant(None, v))

        self.push_screen(LensPicker(), picked)

    def action_edit_variant(self) -> None:
        i = self._highlighted()
        if i is None:
            self.notify("no variant to edit: press a to add one", severity="warning")
            return
        v = self.ws.variants[i]
        if len(v.lenses) == 1:
            self.push_screen(LensForm(v.lenses[0].kind, v, self.model_shape()),
                             lambda nv: self._set_variant(i, nv))
        else:
            self.action_edit_variant_spec()

    def action_edit_variant_spec(self) -> None:
        i = self._highlighted()
        v = self.ws.variants[i] if i is not None else None
        spec = "+".join(lens.label() for lens in v.lenses) if v else ""
        self.push_screen(SpecEditor(spec, v.name if v else "", self.model_shape()),
                         lambda nv: self._set_variant(i, nv))

    def action_remove_variant(self) -> None:
        i = self._highlighted()
        if i is not None:
            removed = self.ws.remove_variant(i)
            self.show_variants(i)
            self.notify(f"removed {removed.name}")

    def action_move_variant(self, delta: int) -> None:
        i = self._highlighted()
        if i is not None and self.ws.move_variant(i, delta):
            self.show_variants(i + delta)

    def action_load_lens_file(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                try:
                    new = parse(path) if path.endswith((".toml", ".json")) else []
                    if not new:
                        raise BadInput(f"lens file '{path}': use .toml or .json")
                except BadInput as exc:
                    self.notify(str(exc), severity="error", timeout=8)
                    return
                self.ws.variants += new
                self.show_variants(len(self.ws.variants) - 1)
                self.notify(f"loaded {len(new)} variant(s) from {path}")

        self.push_screen(PathPrompt("Load lens file (.toml or .json)", "lenses.toml"), chosen)

    def action_save_lens_file(self) -> None:
        def chosen(path: str | None) -> None:
            if not path:
                return

            import tomli_w

            data = to_data(self.ws.variants)
            try:
                text = tomli_w.dumps(data) if path.endswith(".toml") else json.dumps(data, indent=1)
                sessions.atomic_write(Path(path), text)
            except (BadInput, OSError) as exc:
                self.notify(f"lens file '{path}': {exc}", severity="error", timeout=8)
                return
            self.notify(f"wrote {len(self.ws.variants)} variant(s) to {path}")

        self.push_screen(PathPrompt("Write lens file (.toml or .json)", "lenses.toml"), chosen)

    # -- running -------------------------------------------------------------------------
    def action_run(self) -> None:
        if self.engine is None:
            self.notify(f"no model loaded: {self.load_error}" if self.load_error else "the model is still loading",
                        severity="error" if self.load_error else "warning")
            return
        if self.running:
            self.notify("a run is in progress: escape cancels it", severity="warning")
            return
        self.pull_fields()
        if self.ws.conversation is not None:
            self.start_turn()
            return
        try:
            request = self.ws.request(self.engine)  # the templated prompt in chat mode
            self.check_variants()
        except BadInput as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        self.generate(request, self.begin_run(request.max_tokens, "prefill…"))

    def check_variants(self) -> None:
        """Every variant fits the loaded model (layers, heads); BadInput names the first that does not."""
        for v in self.ws.variants:
            problem = variant_problem(v, self.model_shape())
            if problem:
                raise BadInput(problem)

    def begin_run(self, max_tokens: int, status: str) -> int:
        """The screen as a run starts (a comparison or a conversation's turn); its run number."""
        self.running = True
        self.run_inputs = self.ws.inputs_key()
        self.captures = {}
        self.main.query_one(ProgressBar).update(total=max_tokens, progress=0)
        self.set_status(status)
        self.main.query_one(TabbedContent).active = "compare"
        self.main.query_one(ComparisonView).focus()
        self.run_number += 1
        return self.run_number

    @work(thread=True, exclusive=True, group="run")
    def generate(self, request, number: int) -> None:
        worker = get_current_worker()
        # prepare one variant at a time (compare reuses the work), so a failure names its variant
        for v in request.variants:
            try:
                self.engine.prepare([v], self.engine.encode(request.prompt), request.marks)
            except Exception as exc:
                self.post_message(Failed("run", f"variant '{v.name}': {_reason(exc)}"))
                return
        try:
            run = self.engine.compare(request)
        except Exception as exc:
            self.post_message(Failed("run", _reason(exc)))
            return
        last = time.perf_counter()
        t0 = last
        steps = 0
        try:
            for _ in run.steps(should_stop=lambda: worker.is_cancelled):
                steps += 1
                now = time.perf_counter()
                if now - last >= FLUSH_S:
                    self.post_message(RunProgress(number, run.result.snapshot(), steps / (now - t0), False))
                    last = now
        except Exception as exc:  # a lens failing mid-run: report, keep the app alive
            self.post_message(Failed("run", f"run failed: {type(exc).__name__}: {exc}"))
            return
        # finished: nothing writes to the result any more, so the message carries it itself
        self.post_message(RunProgress(number, run.result, steps / max(time.perf_counter() - t0, 1e-9), True))
        captures, note = ({}, "") if run.result.cancelled else self.capture(run.result, run.variants)
        self.post_message(CaptureReady(number, captures, note))

    # -- conversations ------------------------------------------------------------------------
    def start_turn(self) -> None:
        """The prompt as the conversation's next user turn: every row answers it (in a worker,
        on a copy of the conversation, which comes back with TurnDone)."""
        ws = self.ws
        try:
            if not ws.prompt.strip():
                raise BadInput("conversation: type the next user message in the prompt first")
            if ws.chat_error:
                raise BadInput(ws.chat_error)
            max_tokens, temperature, seed = ws.settings()
            self.check_variants()
        except BadInput as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        if ws.conversation.mode == "keep" and ws.conversation.keep > len(ws.variants):
            ws.conversation.keep = 0  # its row was removed: the baseline's replies are kept from now on
            self.notify("the kept row no longer exists: keeping the baseline's replies from this turn on",
                        severity="warning")
        conv = ws.conversation.copy()  # the worker's own
        conv.marks += ws.pending_marks()
        number = self.begin_run(max_tokens, f"turn {len(conv.turns) + 1}: prefill…")
        self.run_turn(conv, ws.prompt, list(ws.variants), (max_tokens, temperature, seed), number)

    @work(thread=True, exclusive=True, group="run")
    def run_turn(self, conv, user: str, variants: list[Variant], values: tuple[int, float, int], number: int) -> None:
        worker = get_current_worker()
        t0 = last = time.perf_counter()
        seen: list[RunResult] = []

        def on_step(row, result: RunResult) -> None:
            nonlocal last
            seen[:] = [result]
            now = time.perf_counter()
            if now - last >= FLUSH_S:
                steps = max(len(r.top) for r in result.rows)
                self.post_message(RunProgress(number, result.snapshot(), steps / (now - t0), False))
                last = now

        max_tokens, temperature, seed = values
        try:
            record = convs.run_turn(self.engine, conv, user, variants, max_tokens=max_tokens, temperature=temperature,
                                    seed=seed, on_step=on_step, should_stop=lambda: worker.is_cancelled)
        except Exception as exc:  # a lens or template failing: one line, the conversation unchanged
            self.post_message(Failed("run", _reason(exc)))
            return
        result = convs.turn_result(record) if record is not None else seen[0] if seen else None
        if result is None:
            self.post_message(Failed("run", "cancelled before the first token"))
            return
        steps = max(len(r.top) for r in result.rows)
        self.post_message(RunProgress(number, result, steps / max(time.perf_counter() - t0, 1e-9), True))
        self.post_message(TurnDone(number, conv if record is not None else None, result))

    def on_turn_done(self, message: TurnDone) -> None:
        ws = self.ws
        if message.conversation is None:  # cancelled: the partial replies stay on screen, the turn is not kept
            self.running = False
            self.set_status("turn cancelled: the conversation is as it was")
            return
        ws.conversation = message.conversation
        ws.prompt = ""
        self.main.query_one("#prompt", TextArea).text = ""  # its Changed message retokenizes
        self.retokenize()
        ws.result, ws.result_inputs = message.result, ws.inputs_key()
        self.main.query_one("#system", Input).disabled = True  # part of the conversation now
        self.show_conversation()
        self.refresh_stale()
        turn = len(ws.conversation.turns)
        if ws.conversation.mode == "branches":
            self.running = False
            self.set_status(f"turn {turn} done · each row continues its own history · f9: transcript and fade chart")
            return
        self.set_status(f"turn {turn} done · capturing attention… · f9: transcript and fade chart")
        self.capture_saved(message.result, [Variant("baseline")] + list(ws.variants), message.run)

    def show_conversation(self) -> None:
        names = ["baseline"] + [v.name for v in self.ws.variants]
        self.main.query_one(ConversationPanel).show(self.ws.conversation, names)

    def set_conversation(self, on: bool) -> None:
        """Conversation mode on (the chat template on too) or off; marks on the prompt stay on
        its characters. Turning it off keeps the conversation for when it comes back on."""
        ws = self.ws
        if on and not self.chat_template:
            self.notify("conversation mode: this model has no chat template", severity="warning")
            on = False
        prompt_marks = self.prompt_char_marks()
        if on:
            if ws.conversation is None:
                ws.conversation = self.parked_conversation or convs.Conversation.start(ws.system_text())
            self.parked_conversation = None
            if not ws.chat:
                self.show_chat(True)
                self.chat_choice = True
        else:
            self.parked_conversation, ws.conversation = ws.conversation, None
            ws.layout, ws.tracked = None, set()
        self.main.query_one("#conversation-mode", Checkbox).value = on
        self.main.query_one("#system", Input).disabled = not ws.chat or bool(on and ws.conversation.turns)
        ws.prompt_tokens = []  # tokenized afresh: the prompt's marks come back from characters
        ws.marks = set()
        self.retokenize()
        hits = set().union(*(ws.tokens_in(self.engine, a, b) for a, b in prompt_marks)) if prompt_marks else set()
        self.set_marks(ws.marks | hits)
        self.show_conversation()
        if on:
            n = len(ws.conversation.turns)
            self.set_status(f"conversation: {n} turn(s) so far · ctrl+r sends the prompt as the next turn · f9 shows it")
        else:
            self.set_status("conversation mode off: ctrl+r compares the prompt alone (ctrl+n comes back to the "
                            "conversation)")

    def prompt_char_marks(self) -> list[tuple[int, int]]:
        """The marked tokens of the prompt, as characters of the prompt."""
        ws = self.ws
        if not ws.prompt_tokens or self.engine is None:
            return []
        offset = ws.user_span[0] if ws.user_span else 0
        spans = ws.prompt_spans if ws.prompt_spans is not None else self.engine.token_spans(ws.model_text,
                                                                                             ws.prompt_ids)
        end = offset + len(ws.prompt)
        return [(max(a, offset) - offset, min(b, end) - offset) for m in sorted(ws.marks) if m < len(spans)
                for a, b in [spans[m]] if b > offset and a < end]

    def action_toggle_conversation(self) -> None:
        if self.engine is None:
            self.notify("the model is still loading" if not self.load_error else f"no model loaded: {self.load_error}",
                        severity="warning")
            return
        if self.running:
            self.notify("a run is in progress: escape cancels it", severity="warning")
            return
        self.set_conversation(self.ws.conversation is None)

    @on(Checkbox.Changed, "#conversation-mode")
    def conversation_toggled(self, event: Checkbox.Changed) -> None:
        if event.checkbox.value != (self.ws.conversation is not None) and self.engine is not None and not self.running:
            self.set_conversation(event.checkbox.value)

    def action_new_conversation(self) -> None:
        if self.running:
            self.notify("a run is in progress: escape cancels it", severity="warning")
            return
        old = self.ws.conversation or self.parked_conversation
        mode = old.mode if old is not None else "keep"
        self.parked_conversation = convs.Conversation.start(self.ws.system_text(), mode)
        self.ws.conversation = None
        self.set_conversation(True)
        dropped = f" (the {len(old.turns)} turn(s) before are gone unless saved: ctrl+s)" if old and old.turns else ""
        self.notify(f"a new conversation: the first turn is the prompt{dropped}")

    def action_branches(self) -> None:
        conv = self.ws.conversation
        if conv is None:
            self.notify("turn conversation mode on first (ctrl+n)", severity="warning")
        elif conv.turns:
            self.notify("the mode is set before the first turn: start a new conversation to change it",
                        severity="warning")
        else:
            conv.mode = "keep" if conv.mode == "branches" else "branches"
            self.show_conversation()
            self.notify("branches: every row continues its own history" if conv.mode == "branches"
                        else "keep: one row's reply joins the transcript")

    @on(ConversationPanel.KeepWanted)
    def keep_wanted(self) -> None:
        conv = self.ws.conversation
        if conv is None or conv.mode != "keep":
            self.notify("keep works in a keep-mode conversation (branches keep every row's own)", severity="warning")
            return
        if self.running:
            self.notify("a run is in progress: escape cancels it", severity="warning")
            return
        rows = len(conv.turns[-1]["rows"]) if conv.turns else 1 + len(self.ws.variants)
        conv.keep_row((conv.keep + 1) % rows)
        self.retokenize()
        self.show_conversation()
        names = ["baseline"] + [v.name for v in self.ws.variants]
        name = names[conv.keep] if conv.keep < len(names) else f"row {conv.keep}"
        self.notify(f"keeping {name}'s replies" + (" (the last turn's too)" if conv.turns else ""))

    @on(ConversationPanel.TrackWanted)
    def track_wanted(self) -> None:
        conv = self.ws.conversation
        if conv is None:
            self.notify("turn conversation mode on first (ctrl+n)", severity="warning")
            return

        def chosen(text: str | None) -> None:
            if not text:
                return
            words = " ".join(text.split())
            if words.lower() in (c.lower() for c in conv.concepts):
                conv.concepts = [c for c in conv.concepts if c.lower() != words.lower()]
                self.notify(f"no longer tracking '{words}'")
            else:
                conv.concepts.append(words)
            self.retokenize()
            self.show_conversation()
            if words in conv.concepts:
                found = len(self.ws.tracked_hits(words))
                self.notify(f"tracking '{words}': {found} occurrence(s) so far; every occurrence in any turn is "
                            "emphasised with the marks", severity="information" if found else "warning")

        self.push_screen(PathPrompt("Track a concept (a word or phrase; an existing one is untracked)"), chosen)

    def capture(self, result: RunResult, variants: list[Variant]) -> tuple[dict[int, RowCapture], str]:
        """After generation: one forward per row capturing attention and hidden states, for
        every view (worker thread)."""
        from lenscope.app.inspection import capture_row

        worker = get_current_worker()
        captures, skipped = {}, []
        for r in range(len(result.rows)):
            if worker.is_cancelled:
                return captures, "capture cancelled"
            try:
                captures[r] = capture_row(self.engine, result, variants, r)
            except Exception as exc:
                skipped.append(f"{result.rows[r].name} ({_reason(exc)})")
        return captures, f"capture skipped for {', '.join(skipped)}" if skipped else ""

    @work(thread=True, exclusive=True, group="run")
    def capture_saved(self, result: RunResult, variants: list[Variant], number: int) -> None:
        captures, note = self.capture(result, variants)
        self.post_message(CaptureReady(number, captures, note))

    def recapture(self) -> None:
        """A reopened session's outputs, made by this model from these inputs: capture their attention
        again (sessions do not save it); otherwise say how to get it."""
        res = self.ws.result
        names = ["baseline"] + [v.name for v in self.ws.variants]
        if self.engine is None:
            return  # model_ready calls this again
        if (self.running or res is None or res.model != self.engine.loaded.name or res.cancelled
                or [r.name for r in res.rows] != names
                or self.engine.encode(res.prompt) != res.prompt_token_ids):
            self.set_status("saved outputs shown · attention is not saved in sessions: ctrl+r runs again")
            return
        self.running = True
        self.set_status("saved outputs shown · capturing their attention…")
        self.run_number += 1
        self.shown_run = self.run_number  # the session's result is this "run"
        self.capture_saved(res, [Variant("baseline")] + list(self.ws.variants), self.run_number)

    def run_failed(self, message: str) -> None:
        self.running = False
        self.set_status(f"[red]{escape(message)}[/]")
        self.notify(message, severity="error", timeout=10)

    def on_run_progress(self, message: RunProgress) -> None:
        if message.run != self.shown_run:  # the first tokens of a new run
            self.ws.result_inputs, self.shown_run = self.run_inputs, message.run
        self.ws.result = message.result
        view = self.main.query_one(ComparisonView)
        speed = message.steps_per_s if self.show_speed else None
        view.set_result(message.result, running=not message.done, steps_per_s=speed)
        longest = max(len(r.top) for r in message.result.rows)
        self.main.query_one(ProgressBar).update(progress=longest)
        if message.done:
            self.main.query_one(ProgressBar).update(total=max(longest, 1), progress=max(longest, 1))
            state = "cancelled" if message.result.cancelled else "done"
            rate = f" at {message.steps_per_s:.1f} steps/s" if self.show_speed else ""
            self.set_status(f"{state}: {longest} steps{rate}"
                            + ("" if message.result.cancelled else " · capturing attention…"))
            self.show_captures({})
        else:
            self.set_status(f"generating… step {longest}")
        self.refresh_stale()

    def on_capture_ready(self, message: CaptureReady) -> None:
        self.running = False
        if message.run != self.run_number or self.ws.result is None or self.ws.result.cancelled:
            return
        self.show_captures(message.captures)
        note = f" · {message.note}" if message.note else ""
        self.set_status(escape(f"attention captured · f4 shows the heatmap{note}"))

    def show_captures(self, captures: dict[int, RowCapture], empty: str = "") -> None:
        """Every view reads the same captures of the result on screen."""
        self.captures = captures
        res = self.ws.result
        self.main.query_one(HeatmapPanel).set_data(res, {r: c.attention for r, c in captures.items()}, empty=empty)
        self.main.query_one(HeadMapPanel).set_data(res, captures, self.auto_head_flags())
        self.main.query_one(LogitLensPanel).set_data(res, captures)
        self.main.query_one(GeometryPanel).set_data(res, captures)
        self.main.query_one(ComparisonView).set_captures(captures, self.inherited_tokens())

    def inherited_tokens(self, at_least: float = 0.05) -> dict[int, list[int]]:
        """Per row, the prompt tokens its emphasis lens's propagation gave importance (the
        attention-on-text view's second marker)."""
        out: dict[int, list[int]] = {}
        for r, v in enumerate(self.ws.variants, start=1):
            for lens in v.lenses:
                weights = getattr(lens, "inherit", None)
                if weights is not None:
                    out.setdefault(r, []).extend(int(j) for j in np.flatnonzero(np.asarray(weights) >= at_least))
        return out

    def auto_head_flags(self) -> dict[int, dict[tuple[int, int], str]]:
        """Per row, the heads an emphasis lens with auto_heads picked on this prompt (flagged •)."""
        flags: dict[int, dict[tuple[int, int], str]] = {}
        for r, v in enumerate(self.ws.variants, start=1):
            for lens in v.lenses:
                for layer, heads in (getattr(lens, "auto", None) or {}).items():
                    flags.setdefault(r, {}).update({(int(layer), int(h)): "•" for h in heads})
        return flags

    @on(HeadMapPanel.OpenHead)
    def open_head(self, message: HeadMapPanel.OpenHead) -> None:
        panel = self.main.query_one(HeatmapPanel)
        panel.row_index, panel.layer_index, panel.head_index = message.row, message.layer, message.head
        self.action_tab("heatmap")
        panel.redraw()

    @on(HeadMapPanel.RolesWanted)
    def roles_wanted(self) -> None:
        if self.head_roles is not None:
            self.main.query_one(HeadMapPanel).set_roles(self.head_roles)
        elif self.engine is not None and not self.running:
            self.set_status("measuring head roles on a repeated random sequence…")
            self.measure_roles()

    @work(thread=True, exclusive=True, group="views")
    def measure_roles(self) -> None:
        from lenscope.app.head_roles import measure

        try:
            roles = measure(self.engine)
        except Exception as exc:
            reason = f"head roles: {_reason(exc)}"
            self.post_message(ViewReady(lambda: self.notify(reason, severity="error")))
            return

        def apply() -> None:
            self.head_roles = roles
            self.main.query_one(HeadMapPanel).set_roles(roles)
            self.set_status("head roles measured · m cycles the head map's modes")

        self.post_message(ViewReady(apply))

    @on(LogitLensPanel.Wanted)
    def logit_lens_wanted(self, message: LogitLensPanel.Wanted) -> None:
        if self.engine is not None and not self.running:
            self.decode_layers(message.key, self.captures)

    @work(thread=True, group="views")
    def decode_layers(self, key, captures: dict[int, RowCapture]) -> None:
        from lenscope.app.logit_lens import logit_lens

        row, positions, pinned = key
        cap = captures.get(row)
        if cap is None:
            return
        try:
            shown = [p for p in positions if p < len(cap.ids)] or [len(cap.ids) - 1]  # a shorter baseline
            lens = logit_lens(self.engine, cap.hidden, shown, pinned=pinned)
        except Exception as exc:
            reason = f"logit lens: {_reason(exc)}"
            self.post_message(ViewReady(lambda: self.notify(reason, severity="error")))
            return
        self.post_message(ViewReady(lambda: self.main.query_one(LogitLensPanel).set_lens(key, lens)
                                    if captures is self.captures else None))

    @on(TreePanel.GrowWanted)
    def grow_wanted(self) -> None:
        if self.engine is None or self.running:
            self.notify("the model is busy or still loading: try again in a moment", severity="warning")
            return
        try:
            prompt, _ = self.ws.model_prompt(self.engine)
            if not self.ws.prompt.strip():
                raise BadInput("prompt: empty")
        except BadInput as exc:
            self.notify(str(exc), severity="error")
            return
        self.grow_tree(prompt)

    @work(thread=True, exclusive=True, group="views")
    def grow_tree(self, prompt: str) -> None:
        from lenscope.app.scores import Score
        from lenscope.app.tree import grow

        try:
            tree = grow(self.engine, prompt, Score.from_data([{"kind": "fluency"}], "tree"), {})
        except Exception as exc:
            reason = f"tree: {_reason(exc)}"
            self.post_message(ViewReady(lambda: self.notify(reason, severity="error")))
            return
        self.post_message(ViewReady(lambda: self.main.query_one(TreePanel).show_tree(tree)))

    @on(TreePanel.OpenPath)
    def open_path(self, message: TreePanel.OpenPath) -> None:
        from lenscope.lenses.constrain import Force

        self._set_variant(None, Variant(f"tree node {message.node}", [Force(text=message.text)]))
        self.notify(f"added 'tree node {message.node}': its path forced from the first step (ctrl+r runs)")

    def on_view_ready(self, message: ViewReady) -> None:
        message.apply()

    def action_attention_text(self) -> None:
        self.action_tab("compare")
        self.main.query_one(ComparisonView).action_attention_text()

    def action_cancel(self) -> None:
        if self.running:
            self.workers.cancel_group(self, "run")
            self.set_status("cancelling…")

    # -- sessions ------------------------------------------------------------------------
    def current_session(self) -> sessions.Session:
        # marks index the tokens the model reads: the templated prompt's in chat mode
        self.pull_fields()
        return self.ws.session(self.model_spec)

    def action_save_session(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                try:
                    saved = sessions.save(self.current_session(), path)
                except (BadInput, OSError) as exc:
                    self.notify(f"session '{path}': {exc}", severity="error", timeout=8)
                    return
                self.session_path = str(saved)
                self.notify(f"saved session to {saved}")

        self.push_screen(PathPrompt("Save session as (JSON)", self.session_path or "session.json"), chosen)

    def action_open_session(self) -> None:
        self.push_screen(PathPrompt("Open session (JSON)", self.session_path or "session.json"),
                         lambda p: self.open_session(p) if p else None)

    def open_session(self, path: str) -> None:
        if self.running:
            self.notify("a run is in progress: escape cancels it, then open the session", severity="warning")
            return
        try:
            s, result, fields = read_session(path)
        except Exception as exc:  # whatever a bad file does, one line, and nothing here changes
            reason = _reason(exc).removeprefix(f"session '{path}': ")
            self.notify(f"session '{path}': {reason}", severity="error", timeout=10)
            return
        self.session_path = path
        ws = self.ws
        ws.open(s, result, fields)
        self.main.query_one("#prompt", TextArea).text = ws.prompt
        for name, value in ws.fields.items():
            self.main.query_one(f"#{name.replace('_', '-')}", Input).value = value
        # without chat fields in the file, its prompt is what the model read: chat off
        self.main.query_one("#system", Input).value = ws.system
        self.chat_choice = self.show_chat(ws.chat or ws.conversation is not None)
        self.parked_conversation = None
        self.main.query_one("#conversation-mode", Checkbox).value = ws.conversation is not None
        if ws.conversation is not None:
            self.main.query_one("#system", Input).disabled = bool(ws.conversation.turns)
        self.retokenize()
        self.set_marks(ws.marks)
        self.show_conversation()
        ws.result_inputs = ws.inputs_key()
        self.show_variants()
        self.main.query_one(ComparisonView).set_result(result)
        empty = "attention is not saved in sessions: ctrl+r runs again" if result else ""
        self.show_captures({}, empty)
        if self.model_spec is None and s.model:
            self.notify(f"session was made with model {s.model}; start with --model to use it")
        again = "ctrl+r sends the next turn" if ws.conversation is not None else "ctrl+r runs again"
        self.notify(f"opened {path}" + (f" with saved outputs ({again})" if result else ""))
        if result is not None:
            self.recapture()

    def action_export_report(self) -> None:
        if self.ws.result is None:
            self.notify("nothing to export yet: run a comparison (ctrl+r)", severity="warning")
            return

        def chosen(folder: str | None) -> None:
            if not folder:
                return
            from importlib import metadata

            from lenscope.app.experiment import write_reports
            from lenscope.app.html_report import attention_row

            record = {"comparison": "lenscope tui", **self.ws.result.to_json()}
            conv = self.ws.conversation
            if conv is not None and conv.turns:  # the whole conversation, as `lenscope run` writes one
                record = convs.record("lenscope tui conversation", self.engine, conv,
                                      [v.name for v in self.ws.variants])
            elif self.captures:  # as `run` with capture_attention: the mean over layers and heads per row
                record["attention"] = {"rows": [attention_row(c.name, c.tokens, c.attention)
                                                for _, c in sorted(self.captures.items())]}
            e = self.engine
            meta = {"lenscope": metadata.version("lenscope"), "model": self.model_spec or e.loaded.name,
                    "precision": e.loaded.precision, "backend": e.backend,
                    "reproduce": "lenscope tui" + (f" --model {self.model_spec}" if self.model_spec else "")
                                 + (f" --session {self.session_path}" if self.session_path else "")}
            try:
                written = write_reports(folder, [record], meta)
            except (BadInput, OSError) as exc:
                self.notify(f"export '{folder}': {exc}", severity="error", timeout=8)
                return
            self.notify(f"wrote {', '.join(str(p) for p in written)}")

        self.push_screen(PathPrompt("Export report into folder", "report"), chosen)

    # -- navigation ------------------------------------------------------------------------
    def action_tab(self, tab: str) -> None:
        self.main.query_one(TabbedContent).active = tab
        target = {"compose": "#prompt", "compare": ComparisonView, "heatmap": HeatmapPanel, "heads": HeadMapPanel,
                  "logit-lens": LogitLensPanel, "geometry": GeometryPanel, "tree": TreePanel,
                  "conversation": ConversationPanel}[tab]
        self.main.query_one(target).focus()

    def action_toggle_charts(self) -> None:
        self.action_tab("heatmap")
        self.main.query_one(HeatmapPanel).action_charts()

    @classmethod
    def key_groups(cls) -> list[tuple[str, list[Key]]]:
        """Every key by where it works: the help screen's rows (and the README's key table)."""
        return [("anywhere", cls.KEYS), ("tokens", TokenChips.KEYS), ("variants", VariantList.KEYS),
                ("compare", ComparisonView.KEYS), ("heatmap", HeatmapPanel.KEYS), ("heads", HeadMapPanel.KEYS),
                ("logit lens", LogitLensPanel.KEYS), ("geometry", GeometryPanel.KEYS), ("tree", TreePanel.KEYS),
                ("conversation", ConversationPanel.KEYS)]

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.key_groups()))


def _reason(exc: BaseException) -> str:
    """An exception as one line: BadInput says it all, anything else is named."""
    text = str(exc) if isinstance(exc, BadInput) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:300]
