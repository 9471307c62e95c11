"""LenscopeApp: start-up, the model, keys, palette, help and tabs.

State lives in the workspace (tui/workspace.py); engine work starts only in the runner
(tui/runner.py), which reports with messages; the compose pane, conversation and
session actions live in their own modules and the views in their panels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import on
from textual.app import App
from textual.command import CommandPalette
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import ProgressBar, Static, TabbedContent

from lenscope.chat import templates as chat
from lenscope.core.results import RunResult
from lenscope.errors import BadInput
from lenscope.lenses.spec import parse
from lenscope.models import DEMO_MODEL_NAME
from lenscope.tui import runner as jobs
from lenscope.tui.compare.compare_panel import ComparePanel
from lenscope.tui.compose.compose_pane import ComposePane, Status
from lenscope.tui.compose.variant_list import VariantList
from lenscope.tui.dialogs.help import HelpScreen
from lenscope.tui.keys import Key, after_typing, bindings, palette
from lenscope.tui.logits.logit_lens_panel import LogitLensPanel
from lenscope.tui.main import MainScreen
from lenscope.tui.markup import safe
from lenscope.tui.palette import LenscopeCommands
from lenscope.tui.session_actions import SessionActions
from lenscope.tui.tab_actions import TabActions
from lenscope.tui.tabs import TABS
from lenscope.tui.talk.conversation_actions import ConversationActions
from lenscope.tui.workspace import Workspace

# The first screen shows a lens at work: the bundled model forgets the marked fact, emphasis recalls it.
DEFAULT_PROMPT = ("<|endoftext|>the key is blue. then jack waved. jack and max talked to leo. "
                  "question: what color is the key? answer: the key is")
DEFAULT_MARKS = ["the key is blue."]
DEFAULT_LENSES = ["emphasis:strength=2", "emphasis:strength=4"]


class LenscopeApp(App):
    TITLE = "lenscope"
    CSS_PATH = "lenscope.tcss"
    COMMANDS = App.COMMANDS | {LenscopeCommands}
    KEYS = [
        Key("ctrl+r", "run", "run the comparison: the baseline and every variant side by side", "run",
            "Run comparison", priority=True, after_typing=True),
        Key("escape", "cancel", "cancel a run or a view's computation (partial output stays)", title="Cancel run"),
        Key("ctrl+s", "save_session", "save the session: prompt, marks, variants, settings and outputs (JSON)",
            "save", "Save session"),
        Key("ctrl+o", "open_session", "open a saved session and show its outputs", "open", "Open session"),
        # priority: TextArea's own ctrl+k (delete to the end of the line) must not run first
        Key("ctrl+k", "mark_selection", "mark every token the prompt's selection overlaps", title="Mark selection",
            priority=True, after_typing=True),
        Key("", "clear_marks", "unmark every token", title="Clear marks"),
        Key("ctrl+t", "toggle_chat", "chat mode: the model's chat template around the prompt", title="Toggle chat mode"),
        Key("ctrl+n", "toggle_conversation", "conversation mode: each run (ctrl+r) is the next user turn; marks on "
            "any turn hold", title="Toggle conversation mode"),
        Key("", "new_conversation", "start the conversation over (the turns so far are dropped)",
            title="New conversation"),
        Key("", "branches", "conversation: every row continues its own history (before the first turn)",
            title="Conversation: branches mode"),
        Key("f1", "help", "this help: every key", "help", "Help"),
        *[tab.binding() for tab in TABS],
        # not ctrl+e: the prompt's end of line (and ctrl+x, its cut) must keep working
        Key("ctrl+g", "export_report", "export the comparison on screen as report.html + report.md "
            "(as `lenscope run`)", title="Export report", priority=True, after_typing=True),
        Key("", "attention_text", "compare tab: colour the text by the cursor token's attention",
            title="Toggle attention on the text"),
        Key("", "toggle_charts", "per-step charts under the heatmap", title="Toggle charts"),
        Key("ctrl+q", "quit", "quit (asks first when there are unsaved changes)", "quit", "Quit", priority=True,
            after_typing=True),
    ]
    BINDINGS = bindings(KEYS)
    PALETTE = palette(KEYS + VariantList.KEYS)
    ANY_SCREEN = ("run", "mark_selection", "toggle_chat", "toggle_conversation", "export_report", "quit")

    def __init__(self, model: str | None = None, prompt: str | None = None, marks: list[str] | None = None,
                 lens_specs: list[str] | None = None, session: str | None = None,
                 trust_remote_code: bool = False, show_speed: bool = True, chat: bool | None = None,
                 system: str | None = None, recovery: Path | None = None) -> None:
        super().__init__()
        self.show_speed = show_speed  # off in snapshot tests: timings differ run to run
        self.model_spec = model
        self.model_note = ""  # why the model differs from the opened session's (tui.launch)
        self.trust_remote_code = trust_remote_code
        self.load_error = ""
        first_look = prompt is None and not marks and not lens_specs and session is None
        # the bundled model reads documents that start after an end-of-text token; other models need none
        default_prompt = DEFAULT_PROMPT if model is None else DEFAULT_PROMPT.removeprefix("<|endoftext|>")
        self.initial_prompt = prompt if prompt is not None else default_prompt
        self.initial_mark_texts = marks or (DEFAULT_MARKS if first_look else [])
        self.initial_specs = lens_specs or (DEFAULT_LENSES if first_look else [])
        self.session_path = session
        self.ws = Workspace()  # prompt, marks, variants, settings, results, captures: the TUI's state
        self.ws.chat_choice = True if system else chat
        self.initial_system = system or ""
        self.runner = jobs.Runner(self)
        self.sessions = SessionActions(self, recovery)
        self.conversations = ConversationActions(self)
        self.tabs = TabActions(self)
        self.run_inputs: str | None = None  # inputs_key() of the run in progress
        self.run_number = 0  # counts runs (and recaptures): a worker's messages name theirs
        self.shown_run = 0  # the run whose result is on screen

    @property
    def engine(self) -> Any:
        return self.runner.engine

    @property
    def running(self) -> bool:
        return self.runner.busy is not None

    def notify(self, message: str, *, markup: bool = False, **kwargs) -> None:
        # messages quote user text (paths, specs, prompts): never markup, also from a widget's
        # notify, which asks for it
        super().notify(message, markup=False, **kwargs)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # priority keys must not act over a dialog (the palette excepted)
        action = parameters[0] if action == "after_typing" else action
        if action in self.ANY_SCREEN or action.startswith("tab"):
            return not isinstance(self.screen, ModalScreen) or isinstance(self.screen, CommandPalette)
        return True

    def action_after_typing(self, action: str) -> None:
        after_typing(self, lambda: self.run_action(action))

    def palette_action(self, action: str) -> None:
        """The palette's actions are the app's, or the variant list's."""
        name = action.split("(")[0]
        target = self if hasattr(self, f"action_{name}") else self.main.query_one(VariantList)
        self.call_later(self.run_action, action, target)

    # -- start-up and the model ---------------------------------------------------------------------
    async def on_mount(self) -> None:
        self.main = MainScreen(self.ws)
        await self.push_screen(self.main)
        self.main.query_one(ComparePanel).raw_token = lambda i: self.pane.raw_token(i)
        self.ws.prompt, self.ws.system = self.initial_prompt, self.initial_system
        for spec in self.initial_specs:
            try:
                self.ws.variants += parse(spec)
            except BadInput as exc:
                self.notify(str(exc), severity="error", timeout=8)
        self.pane.show_workspace()
        if self.session_path:
            self.sessions.path = self.session_path  # ctrl+s offers it, also when it could not be read
            self.sessions.open(self.session_path)
        self.set_status("loading model…")
        self.main.query_one(ProgressBar).update(total=None)
        self.runner.load(self.model_spec, self.trust_remote_code)
        self.sessions.offer_recovery()
        self.sessions.follow_edits()

    @property
    def pane(self) -> ComposePane:
        return self.main.query_one(ComposePane)

    def on_job_progress(self, message: jobs.JobProgress) -> None:
        self.set_status(safe("$text", text=message.text))

    def on_model_loaded(self, message: jobs.ModelLoaded) -> None:
        engine = self.runner.engine = message.engine
        self.main.query_one(LogitLensPanel).token_text = engine.tokens.token_text
        on = self.ws.chat_choice
        if on is None:
            on = chat.suggests_chat(engine.tokenizer, engine.loaded.name, demo=engine.loaded.name == DEMO_MODEL_NAME)
        self.ws.chat_choice = self.pane.model_ready(engine, on)
        self.main.query_one(ProgressBar).update(total=1, progress=1)
        took = f" in {message.seconds:.1f}s" if self.show_speed else ""
        chat_note = f" · chat: {self.pane.chat_template}" if self.ws.chat else ""
        self.set_status(safe("model loaded$took$chat · ctrl+r runs · f1 help", took=took, chat=chat_note))
        self.pane.mark_texts(self.initial_mark_texts)
        self.update_header()
        if self.ws.result is not None and not self.ws.captures:  # a session opened before the model was there
            self.sessions.recapture()
        if not self.sessions.path:
            self.sessions.mark_clean()

    def on_failed(self, message: jobs.Failed) -> None:
        self.tabs.stop_waiting()
        if message.what == "model":
            self.load_error = message.message
            self.main.query_one(ProgressBar).update(total=1, progress=0)
        self.set_status(safe("[red]$error[/]", error=message.message))
        self.notify(message.message, severity="error", timeout=12 if message.what == "model" else 10)

    def on_job_done(self, message: jobs.JobDone) -> None:
        self.runner.done(message.job)

    def set_status(self, text: str | Content) -> None:
        self.main.query_one("#status", Static).update(text)

    def on_status(self, message: Status) -> None:
        self.set_status(message.text)

    def update_header(self) -> None:
        """Model, precision, chat template, backend, layers, and how many tokens are marked."""
        e = self.engine
        if e is None:
            return
        chat_part = [f"chat: {self.pane.chat_template}"] if self.ws.chat else []  # before what a narrow header cuts
        marked = [f"{len(self.ws.marks)} marked"] if self.ws.marks else []
        note = [self.model_note] if self.model_note else []  # --model over a session's own: said while it runs
        self.sub_title = " · ".join([e.loaded.name, *note, e.loaded.precision_line(), *chat_part, *marked,
                                     e.backend, f"{e.n_layers} layers"])

    @on(ComposePane.Edited)
    def inputs_edited(self) -> None:
        self.refresh_stale()
        self.update_header()
        if self.ws.conversation is not None:  # marks on earlier turns show in the transcript
            self.conversations.show()

    def refresh_stale(self) -> None:
        self.tabs.set_stale(self.ws.stale)

    # -- running ------------------------------------------------------------------------------------
    def action_run(self) -> None:
        if self.engine is None:
            self.notify(f"no model loaded: {self.load_error}" if self.load_error else "the model is still loading",
                        severity="error" if self.load_error else "warning")
            return
        if not self.runner.free():
            return
        self.pane.pull_fields()
        self.sessions.recover()  # a kill during the prefill or the turn loses nothing
        if self.ws.conversation is not None:
            self.conversations.start_turn()
            return
        try:
            request = self.ws.request(self.engine)  # the templated prompt in chat mode
        except BadInput as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        status = f"prefill: {1 + len(request.variants)} rows × {len(self.ws.prompt_ids)} tokens…"
        self.runner.run(request, self.begin_run(request.max_tokens, status))

    def begin_run(self, max_tokens: int, status: str) -> int:
        """The screen as a run starts (a comparison or a conversation's turn); its run number."""
        self.run_inputs = self.ws.inputs_key()
        self.tabs.clear_captures()
        self.main.query_one(ProgressBar).update(total=max_tokens, progress=0)
        self.set_status(status)
        self.action_tab("compare")
        self.run_number += 1
        return self.run_number

    def on_run_progress(self, message: jobs.RunProgress) -> None:
        if message.run != self.shown_run:  # the first tokens of a new run
            self.ws.result_inputs, self.shown_run = self.run_inputs, message.run
        self.ws.result = message.result
        self.show_result(message.result, running=not message.done,
                         steps_per_s=message.steps_per_s if self.show_speed else None)
        longest = max(len(r.top) for r in message.result.rows)
        bar = self.main.query_one(ProgressBar)
        bar.update(progress=longest)
        if message.done:
            bar.update(total=max(longest, 1), progress=max(longest, 1))
            cancelled = message.result.cancelled
            rate = f" at {message.steps_per_s:.1f} steps/s" if self.show_speed else ""
            capture = f" · capturing attention: {len(message.result.rows)} rows × {self.engine.n_layers} layers…"
            self.set_status(f"{'cancelled' if cancelled else 'done'}: {longest} steps{rate}"
                            + ("" if cancelled or self.ws.conversation else capture))
            if not self.ws.conversation:
                self.sessions.recover()
        else:
            self.set_status(f"generating… step {longest}")
        self.refresh_stale()

    def show_result(self, result: RunResult | None, running: bool = False, steps_per_s: float | None = None) -> None:
        self.main.query_one(ComparePanel).set_result(result, running=running, steps_per_s=steps_per_s)

    def on_turn_done(self, message: jobs.TurnDone) -> None:
        self.conversations.turn_done(message.conversation, message.result, message.run)

    def on_capture_ready(self, message: jobs.CaptureReady) -> None:
        if message.run != self.run_number or self.ws.result is None or self.ws.result.cancelled:
            return
        self.tabs.show_captures(message.captures)
        note = f" · {message.note}" if message.note else ""
        self.set_status(safe("attention captured · f4 shows the heatmap$note", note=note))

    def on_view_ready(self, message: jobs.ViewReady) -> None:
        message.apply()

    def action_cancel(self) -> None:
        if self.runner.cancel():
            self.set_status("cancelling…")

    # -- compose, conversation and session actions (their modules do the work) ----------------------
    def action_mark_selection(self) -> None:
        self.pane.mark_selection()

    def action_clear_marks(self) -> None:
        self.pane.set_marks(set())

    def action_toggle_chat(self) -> None:
        self.pane.toggle_chat()
        self.ws.chat_choice = self.ws.chat

    def action_toggle_conversation(self) -> None:
        self.conversations.toggle()

    def action_new_conversation(self) -> None:
        self.conversations.new()

    def action_branches(self) -> None:
        self.conversations.branches()

    def action_save_session(self) -> None:
        self.sessions.save()

    def action_open_session(self) -> None:
        self.sessions.ask_open()

    def action_export_report(self) -> None:
        self.sessions.export()

    def action_quit(self) -> None:
        self.sessions.quit()

    # -- navigation ---------------------------------------------------------------------------------
    def action_tab(self, tab: str) -> None:
        self.main.query_one(TabbedContent).active = tab
        self.tabs.focus(tab)

    def action_attention_text(self) -> None:
        self.tabs.attention_text()

    def action_toggle_charts(self) -> None:
        self.tabs.toggle_charts()

    @classmethod
    def key_groups(cls) -> list[tuple[str, list[Key]]]:
        """Every key by where it works: the help screen's rows (and docs/reference/keys.md)."""
        return [("anywhere", cls.KEYS), *(group for tab in TABS for group in tab.keys)]

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.key_groups()))
