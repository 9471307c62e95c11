"""The compose tab: prompt, tokens to mark, lens variants, settings, chat and system message.

The pane keeps the workspace (tui/workspace.py) and its widgets equal: what a person types,
marks or toggles goes into the workspace, which retokenizes; the pane shows the result and
posts `Edited` (the inputs changed: the result on screen may be stale) and `Status`. It
tokenizes with the loaded model's tokenizer but never runs the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Checkbox, Input, Label, TextArea

from lenscope.chat import conversation as convs
from lenscope.chat import templates as chat
from lenscope.core.settings import SETTINGS
from lenscope.errors import BadInput
from lenscope.tui.compose.token_chips import TokenChips, chip_text
from lenscope.tui.compose.variant_list import VariantList
from lenscope.tui.markup import safe
from lenscope.tui.workspace import Workspace

if TYPE_CHECKING:
    from lenscope.core.engine import Engine
    from lenscope.core.tokens import Tokens


def tokens_label(n: int | None, template: int = 0, conversation: bool = False, marked: int = 0) -> str:
    """`template`: how many of the n tokens are the chat template's (dimmed, not markable).
    In a conversation the tokens are the whole transcript's: space marks any turn's."""
    count = "" if n is None else f" ({n}, {template} template)" if template else f" ({n})"
    marks = f" · [b]{marked} marked[/b]" if marked else ""
    if conversation:
        return (f"transcript tokens{count}{marks} ([b]space[/b] marks one of any turn · [b]ctrl+k[/b] marks the "
                "prompt's selection)")
    return f"tokens{count}{marks} ([b]space[/b] marks important · [b]ctrl+k[/b] marks the selection)"


def chat_label(template: str | None, loaded: bool = True) -> str:
    """The chat toggle's label: which template chat mode puts around the prompt."""
    if not loaded:
        return "chat"
    return f"chat: {template}" if template else "chat: no template"


@dataclass
class Status(Message):
    """A line for the status bar (markup written here; user text only through `safe`)."""

    text: str | Content


class ComposePane(Vertical):
    @dataclass
    class Edited(Message):
        """Prompt, marks, variants, settings or chat changed."""

    def __init__(self, ws: Workspace, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ws = ws
        self.tokens: Tokens | None = None  # the model's tokenizer, once it is loaded (never the model)
        self.chat_template: str | None = None

    def compose(self) -> ComposeResult:
        yield TextArea(id="prompt", soft_wrap=True, show_line_numbers=False)
        yield Label(tokens_label(None), classes="section", id="tokens-label")
        yield TokenChips(id="chips")
        yield Label("lens variants ([b]a[/b] add · [b]e[/b] edit · [b]x[/b] remove)", classes="section")
        yield VariantList(self.ws, id="variants")
        with Horizontal(id="settings"):
            yield Label("max tokens")
            yield Input(str(SETTINGS["max_tokens"].default), id="max-tokens", type="integer")
            yield Label("temperature")
            yield Input(f"{SETTINGS['temperature'].default:g}", id="temperature", type="number")
            yield Label("seed")
            yield Input(str(SETTINGS["seed"].default), id="seed", type="integer")
        with Horizontal(id="chat-row"):
            yield Checkbox(chat_label(None, loaded=False), False, id="chat", disabled=True, compact=True,
                           tooltip="the model's chat template around the prompt (ctrl+t)")
            yield Checkbox("conversation", False, id="conversation-mode", disabled=True, compact=True,
                           tooltip="each run is the conversation's next turn (ctrl+n)")
            yield Label("system", id="system-label")
            yield Input(placeholder="optional system message (chat mode)", id="system", disabled=True)

    # -- the workspace into the widgets -------------------------------------------------------
    def show_workspace(self) -> None:
        """Every widget from the workspace (at start, after opening a session)."""
        ws = self.ws
        self.query_one("#prompt", TextArea).text = ws.prompt
        for name, value in ws.fields.items():
            self.query_one(f"#{name.replace('_', '-')}", Input).value = value
        self.query_one("#system", Input).value = ws.system
        self.query_one("#conversation-mode", Checkbox).value = ws.conversation is not None
        self.query_one("#system", Input).disabled = not ws.chat or bool(ws.conversation and ws.conversation.turns)
        self.show_variants()

    def model_ready(self, engine: Engine, chat_on: bool) -> bool:
        """The model is there: chat controls, chat mode (as asked) and the first tokenization."""
        self.tokens = engine.tokens
        self.chat_template = chat.template_name(engine.tokenizer)
        box = self.query_one("#chat", Checkbox)
        box.label = chat_label(self.chat_template)
        box.disabled = not self.chat_template
        self.query_one("#conversation-mode", Checkbox).disabled = not self.chat_template
        on = self.show_chat(chat_on)
        self.retokenize()
        return on

    def show_variants(self, highlight: int | None = None) -> None:
        self.query_one(VariantList).show(highlight)
        self.post_message(self.Edited())

    @on(VariantList.Changed)
    def variants_changed(self, event: VariantList.Changed) -> None:
        event.stop()
        self.show_variants(event.highlight)

    # -- chat mode ------------------------------------------------------------------------------
    def show_chat(self, on: bool) -> bool:
        """Set chat mode and the widgets that show it (no retokenizing): on only with a template."""
        if on and self.tokens is not None and not self.chat_template:
            self.notify("chat mode: this model has no chat template; the prompt goes in as written",
                        severity="warning")
            on = False
        self.ws.chat = on
        self.query_one("#chat", Checkbox).value = on  # its Changed message finds chat == value: nothing
        self.query_one("#system", Input).disabled = not on or bool(self.ws.conversation and
                                                                    self.ws.conversation.turns)
        self.post_message(self.Edited())
        return on

    def set_chat(self, on: bool) -> None:
        """Chat mode on or off: marks stay on the same characters of the user's text."""
        if not on and self.ws.conversation is not None:  # a conversation is the chat template's turns
            self.show_chat(True)
            self.notify("conversation mode needs the chat template: ctrl+n turns conversation mode off first",
                        severity="warning")
            return
        on = self.show_chat(on)
        lost = self.retokenize(remap=True)
        kept = f" · {lost} mark(s) could not be kept" if lost else ""
        if on:
            self.post_message(Status(safe("chat: $t template around the prompt · dimmed tokens are the "
                                          "template's$kept", t=self.chat_template, kept=kept)))
        else:
            self.post_message(Status(safe("chat off: the prompt goes in as written$kept", kept=kept)))
        if lost:
            self.notify(f"{lost} mark(s) could not be kept", severity="warning")

    def toggle_chat(self) -> None:
        if self.tokens is None:
            self.notify("the model is still loading", severity="warning")
        elif not self.chat_template:
            self.notify("chat mode: this model has no chat template", severity="warning")
        else:
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
            self.post_message(self.Edited())

    # -- prompt, tokens and marks -----------------------------------------------------------------
    @on(TextArea.Changed, "#prompt")
    def prompt_changed(self, event: TextArea.Changed) -> None:
        self.prompt_changed_to(event.text_area.text)

    def prompt_changed_to(self, text: str) -> None:
        self.ws.prompt = text
        self.retokenize()

    def raw_token(self, token_id: int) -> str | None:
        """The tokenizer's own entry for a token (e.g. '<0xE2>'), for tokens that are part of a character."""
        try:
            return str(self.tokens.tokenizer.convert_ids_to_tokens(int(token_id)))
        except Exception:  # a tokenizer without it, or an id from another model's session
            return None

    def retokenize(self, remap: bool = False) -> int:
        """The workspace retokenizes (marks carried or remapped); the chips and label show it."""
        if self.tokens is None:
            return 0
        ws = self.ws
        lost = ws.retokenize(self.tokens, remap)
        if ws.chat_error:  # e.g. a template that refuses a system message: say so, change nothing
            self.query_one("#tokens-label", Label).update(safe("[red]$error[/]", error=ws.chat_error))
            self.post_message(self.Edited())
            return 0
        chips = self.query_one(TokenChips)
        chips.tokens = [chip_text(t, self.raw_token(i) if "\ufffd" in t else None)
                        for i, t in zip(ws.prompt_ids, ws.prompt_tokens)]
        chips.fixed = set(ws.template_tokens)
        chips.tracked = set(ws.tracked)
        chips.marks = set(ws.marks)
        self.marks_shown()
        return lost

    def set_marks(self, marks: set[int]) -> None:
        self.ws.take_marks(marks)
        self.query_one(TokenChips).marks = set(marks)
        self.marks_shown()

    @on(TokenChips.MarksChanged)
    def marks_changed(self, event: TokenChips.MarksChanged) -> None:
        self.ws.take_marks(event.marks)
        self.marks_shown()

    def marks_shown(self) -> None:
        ws = self.ws
        if not ws.chat_error:
            self.query_one("#tokens-label", Label).update(tokens_label(
                len(ws.prompt_tokens), len(ws.template_tokens), ws.conversation is not None, len(ws.marks)))
        self.post_message(self.Edited())

    def mark_selection(self) -> None:
        area = self.query_one("#prompt", TextArea)
        if self.tokens is None or area.selection.is_empty:
            self.notify("select some prompt text first (shift+arrows), then ctrl+k", severity="warning")
            return
        if self.ws.chat_error:
            self.notify(self.ws.chat_error, severity="error")
            return
        doc = area.document
        a, b = sorted((doc.get_index_from_location(area.selection.start),
                       doc.get_index_from_location(area.selection.end)))
        hit = self.ws.tokens_in(self.tokens, a, b)
        if not hit:
            self.notify("the selection overlaps no token", severity="warning")
            return
        self.set_marks(self.ws.marks | hit)
        self.notify(f"marked {len(hit)} token(s)")

    def mark_texts(self, texts: list[str]) -> None:
        """Mark every occurrence of each text in the user's prompt (--mark)."""
        ws = self.ws
        if not texts or ws.chat_error:
            return
        try:
            found = self.tokens.marks_from_text(ws.model_text, ws.prompt_ids, texts, ws.user_span)
        except BadInput as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        self.set_marks(set(found) - ws.template_tokens)

    def prompt_char_marks(self) -> list[tuple[int, int]]:
        """The marked tokens of the prompt, as characters of the prompt."""
        ws = self.ws
        if not ws.prompt_tokens or self.tokens is None:
            return []
        offset = ws.user_span[0] if ws.user_span else 0
        spans = ws.prompt_spans if ws.prompt_spans is not None else self.tokens.token_spans(ws.model_text,
                                                                                             ws.prompt_ids)
        end = offset + len(ws.prompt)
        return [(max(a, offset) - offset, min(b, end) - offset) for m in sorted(ws.marks) if m < len(spans)
                for a, b in [spans[m]] if b > offset and a < end]

    # -- settings ---------------------------------------------------------------------------------
    @on(Input.Changed, "#settings Input")
    def settings_changed(self) -> None:
        self.pull_fields()
        self.post_message(self.Edited())

    def pull_fields(self) -> None:
        """The settings fields as typed, into the workspace: read when they change and again
        before a run or a save (a key can arrive before the field's Changed message)."""
        for name in self.ws.fields:
            self.ws.fields[name] = self.query_one(f"#{name.replace('_', '-')}", Input).value
        prompt = self.query_one("#prompt", TextArea).text
        if prompt != self.ws.prompt:
            self.prompt_changed_to(prompt)
