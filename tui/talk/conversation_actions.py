"""Conversation mode's actions: on and off, a new conversation, keep or branch, tracked
concepts, and each turn (started through the runner, taken back when it is done).

The conversation itself lives in the workspace (`ws.conversation`; a conversation put
aside while the mode is off in `ws.parked_conversation`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lenscope.chat import conversation as convs
from lenscope.errors import BadInput
from lenscope.tui.compose.compose_pane import ComposePane
from lenscope.tui.dialogs.lens_dialogs import PathPrompt
from lenscope.tui.talk.conversation_panel import ConversationPanel

if TYPE_CHECKING:
    from lenscope.tui.app import LenscopeApp


class ConversationActions:
    def __init__(self, app: LenscopeApp) -> None:
        self.app = app
        self.ws = app.ws

    @property
    def pane(self) -> ComposePane:
        return self.app.main.query_one(ComposePane)

    def show(self) -> None:
        self.app.main.query_one(ConversationPanel).show(self.ws.conversation, [v.name for v in self.ws.rows()])

    # -- turns ------------------------------------------------------------------------------------
    def start_turn(self) -> None:
        """The prompt as the conversation's next user turn: every row answers it (in a worker,
        on a copy of the conversation, which comes back with TurnDone)."""
        ws, app = self.ws, self.app
        try:
            if not ws.prompt.strip():
                raise BadInput("conversation: type the next user message in the prompt first")
            if ws.chat_error:
                raise BadInput(ws.chat_error)
            max_tokens, temperature, seed = ws.settings()
            app.engine.check_fit(ws.variants)
        except BadInput as exc:
            app.notify(str(exc), severity="error", timeout=8)
            return
        if ws.conversation.mode == "keep" and ws.conversation.keep > len(ws.variants):
            ws.conversation.keep = 0  # its row was removed: the baseline's replies are kept from now on
            app.notify("the kept row no longer exists: keeping the baseline's replies from this turn on",
                       severity="warning")
        conv = ws.conversation.copy()  # the worker's own
        conv.marks += ws.pending_marks()
        number = app.begin_run(max_tokens, f"turn {len(conv.turns) + 1}: prefill…")
        app.runner.turn(conv, ws.prompt, list(ws.variants), (max_tokens, temperature, seed), number)

    def turn_done(self, conversation: convs.Conversation | None, result, run: int) -> None:
        ws, app = self.ws, self.app
        if conversation is None:  # cancelled: the partial replies stay on screen, the turn is not kept
            app.set_status("turn cancelled: the conversation is as it was")
            return
        ws.conversation = conversation
        ws.prompt = ""
        app.ws.captures = {}
        self.pane.query_one("#prompt").text = ""  # its Changed message retokenizes
        self.pane.retokenize()
        ws.result, ws.result_inputs = result, ws.inputs_key()
        self.pane.query_one("#system").disabled = True  # part of the conversation now
        self.show()
        app.refresh_stale()
        app.sessions.recover()
        turn = len(ws.conversation.turns)
        if ws.conversation.mode == "branches":
            app.set_status(f"turn {turn} done · each row continues its own history · f9: transcript and fade chart")
            return
        app.set_status(f"turn {turn} done · capturing attention… · f9: transcript and fade chart")
        app.runner.capture(result, ws.rows(), run)

    # -- the mode -----------------------------------------------------------------------------------
    def set_mode(self, on: bool) -> None:
        """Conversation mode on (the chat template on too) or off; marks on the prompt stay on
        its characters. Turning it off keeps the conversation for when it comes back on."""
        ws, pane = self.ws, self.pane
        if on and not pane.chat_template:
            self.app.notify("conversation mode: this model has no chat template", severity="warning")
            on = False
        prompt_marks = pane.prompt_char_marks()
        if on:
            if ws.conversation is None:
                ws.conversation = ws.parked_conversation or convs.Conversation.start(ws.system_text())
            ws.parked_conversation = None
            if not ws.chat:
                pane.show_chat(True)
                ws.chat_choice = True
        else:
            ws.parked_conversation, ws.conversation = ws.conversation, None
            ws.layout, ws.tracked = None, set()
        pane.query_one("#conversation-mode").value = on
        pane.query_one("#system").disabled = not ws.chat or bool(on and ws.conversation.turns)
        ws.prompt_tokens = []  # tokenized afresh: the prompt's marks come back from characters
        ws.marks = set()
        pane.retokenize()
        hits = set().union(*(ws.tokens_in(pane.tokens, a, b) for a, b in prompt_marks)) if prompt_marks else set()
        pane.set_marks(ws.marks | hits)
        self.show()
        if on:
            n = len(ws.conversation.turns)
            self.app.set_status(f"conversation: {n} turn(s) so far · ctrl+r sends the prompt as the next turn · "
                                "f9 shows it")
        else:
            self.app.set_status("conversation mode off: ctrl+r compares the prompt alone (ctrl+n comes back to "
                                "the conversation)")

    def toggle(self) -> None:
        if self.app.engine is None:
            self.app.notify("the model is still loading", severity="warning")
        elif self.app.runner.free():
            self.set_mode(self.ws.conversation is None)

    def checkbox(self, value: bool) -> None:
        if value != (self.ws.conversation is not None) and self.app.engine is not None and self.app.runner.free():
            self.set_mode(value)
        else:  # refused: the box shows the mode as it is
            self.pane.query_one("#conversation-mode").value = self.ws.conversation is not None

    def new(self) -> None:
        if not self.app.runner.free():
            return
        ws = self.ws
        old = ws.conversation or ws.parked_conversation
        mode = old.mode if old is not None else "keep"
        ws.parked_conversation = convs.Conversation.start(ws.system_text(), mode)
        ws.conversation = None
        self.set_mode(True)
        dropped = f" (the {len(old.turns)} turn(s) before are gone unless saved: ctrl+s)" if old and old.turns else ""
        self.app.notify(f"a new conversation: the first turn is the prompt{dropped}")

    def branches(self) -> None:
        conv = self.ws.conversation
        if conv is None:
            self.app.notify("turn conversation mode on first (ctrl+n)", severity="warning")
        elif conv.turns:
            self.app.notify("the mode is set before the first turn: start a new conversation to change it",
                            severity="warning")
        else:
            conv.mode = "keep" if conv.mode == "branches" else "branches"
            self.show()
            self.app.notify("branches: every row continues its own history" if conv.mode == "branches"
                            else "keep: one row's reply joins the transcript")

    def keep(self) -> None:
        conv = self.ws.conversation
        if conv is None or conv.mode != "keep":
            self.app.notify("keep works in a keep-mode conversation (branches keep every row's own)",
                            severity="warning")
            return
        if not self.app.runner.free():
            return
        rows = len(conv.turns[-1]["rows"]) if conv.turns else 1 + len(self.ws.variants)
        conv.keep_row((conv.keep + 1) % rows)
        self.pane.retokenize()
        self.show()
        names = [v.name for v in self.ws.rows()]
        name = names[conv.keep] if conv.keep < len(names) else f"row {conv.keep}"
        self.app.notify(f"keeping {name}'s replies" + (" (the last turn's too)" if conv.turns else ""))

    def track(self) -> None:
        conv = self.ws.conversation
        if conv is None:
            self.app.notify("turn conversation mode on first (ctrl+n)", severity="warning")
            return

        def chosen(text: str | None) -> None:
            if not text:
                return
            words = " ".join(text.split())
            if words.lower() in (c.lower() for c in conv.concepts):
                conv.concepts = [c for c in conv.concepts if c.lower() != words.lower()]
                self.app.notify(f"no longer tracking '{words}'")
            else:
                conv.concepts.append(words)
            self.pane.retokenize()
            self.show()
            if words in conv.concepts:
                found = self.ws.tracked_occurrences(words)
                self.app.notify(f"tracking '{words}': {found} occurrence(s) so far; every occurrence in any turn "
                                "is emphasised with the marks", severity="information" if found else "warning")

        self.app.push_screen(PathPrompt("Track a concept (a word or phrase; an existing one is untracked)"), chosen)
