"""The TUI's state, without Textual: the one place it lives.

What the person typed (prompt, system message, the settings fields), marked and chose
(variants, chat mode), what the model reads (the tokens of the prompt, templated in chat
mode), and the last result with the inputs it was made from. The app shows it and feeds
it what widgets report; everything here is plain data and functions of the model's
`Tokens` (the tokenizer alone: `Engine.tokens`), so it is unit-tested without a screen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lenscope.chat import conversation as convs
from lenscope.chat import templates as chat
from lenscope.core import settings
from lenscope.core.capture import RowCapture
from lenscope.core.engine import Request
from lenscope.core.marks import carry_marks, overlapping
from lenscope.core.results import RunResult
from lenscope.errors import BadInput
from lenscope.lenses.base import Variant
from lenscope.lenses.spec import expand_points, to_data
from lenscope.storage import session as sessions

if TYPE_CHECKING:
    from lenscope.core.engine import Engine
    from lenscope.core.tokens import Tokens

FIELDS = ("max_tokens", "temperature", "seed")  # the settings the TUI shows as text fields


@dataclass
class Workspace:
    prompt: str = ""
    system: str = ""  # the system message as typed (used in chat mode only)
    chat: bool = False
    variants: list[Variant] = field(default_factory=list)
    removed: list[tuple[int, Variant]] = field(default_factory=list)  # (index, variant) for undo, last last
    marks: set[int] = field(default_factory=set)  # indices into prompt_tokens (the templated prompt's in chat mode)
    fields: dict[str, str] = field(default_factory=lambda: {k: f"{settings.defaults()[k]:g}" for k in FIELDS})
    # what the model reads, from the last retokenize
    model_text: str = ""
    prompt_ids: list[int] = field(default_factory=list)
    prompt_tokens: list[str] = field(default_factory=list)
    user_span: tuple[int, int] | None = None  # the user's text in model_text (chat mode)
    prompt_spans: list[tuple[int, int]] | None = None  # token character spans (chat mode)
    template_tokens: set[int] = field(default_factory=set)  # the template's own tokens: not markable
    chat_error: str = ""  # the template failed on this text: shown, and a run refuses
    # the last result, and the inputs it was made from (they differ: it is stale)
    result: RunResult | None = None
    result_inputs: str | None = None
    # conversation mode: each run is the next user turn; the prompt is that turn's message and
    # the tokens shown are the whole transcript's (marks on any earlier turn held as characters)
    conversation: convs.Conversation | None = None
    layout: convs.Layout | None = None  # the transcript as last tokenized
    tracked: set[int] = field(default_factory=set)  # tokens of tracked concepts (drawn apart, not marks)
    parked_conversation: convs.Conversation | None = None  # kept while conversation mode is off
    chat_choice: bool | None = None  # chat as asked or opened; None: the model's default, once it is loaded
    # what the views read, measured from the result on screen (row -> capture) and once per model
    captures: dict[int, RowCapture] = field(default_factory=dict)
    head_roles: Any = None

    # -- what the model reads ----------------------------------------------------------------
    def system_text(self) -> str | None:
        return self.system if self.system.strip() else None

    def model_prompt(self, tokens: Tokens) -> tuple[str, tuple[int, int] | None]:
        """The text the model reads and where the user's text sits in it (None: all of it).
        Raises BadInput when the chat template fails on this text."""
        if tokens is None:
            return self.prompt, None
        return chat.model_prompt(tokens.tokenizer, self.prompt, self.chat, self.system_text())

    def retokenize(self, tokens: Tokens, remap: bool = False) -> int:
        """Tokenize what the model reads and keep the marks: carried over the user's edits
        (carry_marks) or, with `remap` (chat toggled, another system message), moved onto the
        same characters of the user's text. Returns how many marks were lost. A template that
        fails on this text sets `chat_error` and changes nothing else."""
        if self.conversation is not None:
            return self._retokenize_conversation(tokens)
        try:
            text, span = self.model_prompt(tokens)
        except BadInput as exc:
            self.chat_error = str(exc)
            return 0
        self.chat_error = ""
        ids = tokens.encode(text) if self.prompt else []
        texts = [tokens.token_text(i) for i in ids]
        spans = tokens.token_spans(text, ids) if span is not None or remap else None
        template = set(range(len(ids))) - overlapping(spans, *span) if span is not None else set()
        lost = 0
        if remap and self.prompt_tokens:
            old = self.prompt_spans if self.prompt_spans is not None else tokens.token_spans(self.model_text,
                                                                                              self.prompt_ids)
            old_start, new_start = (self.user_span or (0, 0))[0], (span or (0, 0))[0]
            moved = {m: chat.move_marks({m}, old, old_start, spans, new_start) - template for m in self.marks}
            marks = set().union(*moved.values()) if moved else set()
            lost = sum(1 for hit in moved.values() if not hit)
        elif self.prompt_tokens:
            marks = carry_marks(self.prompt_tokens, texts, self.marks) - template
        else:  # first tokenization (marks from the command line or a session): keep them
            marks = {m for m in self.marks if 0 <= m < len(texts)} - template
        self.model_text, self.user_span, self.prompt_spans = text, span, spans if span is not None else None
        self.prompt_ids, self.prompt_tokens, self.marks, self.template_tokens = ids, texts, marks, template
        return lost

    def _retokenize_conversation(self, tokens: Tokens) -> int:
        """The transcript so far and the prompt as the next user message: marks on earlier
        messages come from the conversation's character marks, the prompt's are carried over edits."""
        conv = self.conversation
        history = conv.history(0)
        messages = [*history, convs.ChatMessage("user", self.prompt)]
        try:
            lay = convs.layout(tokens, messages)
        except BadInput as exc:
            self.chat_error = str(exc)
            return 0
        self.chat_error = ""
        texts = [tokens.token_text(i) for i in lay.ids]
        pending = overlapping(lay.spans, *lay.offsets[-1])
        # over an edit, marks follow their tokens; on the first tokenization (a session) they are kept
        carried = (carry_marks(self.prompt_tokens, texts, self.marks) if self.prompt_tokens else self.marks) & pending
        held = set().union(*(lay.tokens_of(m) for m in conv.marks if m.message < len(history)))
        template = lay.template_tokens()
        self.tracked = set().union(*(lay.concept_tokens(messages, c) for c in conv.concepts)) - template
        self.model_text, self.user_span, self.prompt_spans, self.layout = lay.text, lay.offsets[-1], lay.spans, lay
        self.prompt_ids, self.prompt_tokens, self.template_tokens = lay.ids, texts, template
        self.marks = (held | carried) - template
        return 0

    def take_marks(self, marks: set[int]) -> None:
        """Marks set on the tokens (by a person): in conversation mode those on earlier
        messages become the conversation's character marks, so later turns keep them."""
        self.marks = set(marks)
        conv, lay = self.conversation, self.layout
        if conv is not None and lay is not None and len(lay.ids) == len(self.prompt_ids):
            n = len(conv.history(0))
            conv.marks = [m for m in lay.marks_of(self.marks) if m.message < n]

    def tracked_hits(self, concept: str) -> set[int]:
        """The tokens of one tracked concept in the transcript as last tokenized (a concept of
        several tokens has several per occurrence: `tracked_occurrences` counts occurrences)."""
        if self.conversation is None or self.layout is None:
            return set()
        messages = [*self.conversation.history(0), convs.ChatMessage("user", self.prompt)]
        return self.layout.concept_tokens(messages, concept)

    def tracked_occurrences(self, concept: str) -> int:
        """How many times one tracked concept occurs in the transcript and the prompt: matches of
        the concept, not its tokens (a word of three tokens said twice occurs twice)."""
        if self.conversation is None:
            return 0
        messages = [*self.conversation.history(0), convs.ChatMessage("user", self.prompt)]
        return convs.occurrences(messages, concept)

    def pending_marks(self) -> list[convs.Mark]:
        """The marks on the prompt (the next user message), as characters of it."""
        if self.conversation is None or self.layout is None:
            return []
        n = len(self.conversation.history(0))
        return [m for m in self.layout.marks_of(self.marks) if m.message == n]

    def tokens_in(self, tokens: Tokens, start: int, end: int) -> set[int]:
        """Markable tokens overlapping characters [start, end) of the user's prompt."""
        offset = self.user_span[0] if self.user_span else 0  # the prompt's place in the templated text
        spans = self.prompt_spans if self.prompt_spans is not None else tokens.token_spans(self.model_text,
                                                                                            self.prompt_ids)
        return overlapping(spans, start + offset, end + offset) - self.template_tokens

    # -- staleness ---------------------------------------------------------------------------
    def inputs_key(self) -> str:
        chat_key = [self.chat, self.system_text()] if self.chat else False
        typed = [self.fields[k].strip() for k in FIELDS]
        conv = self.conversation
        conv_key = [len(conv.turns), conv.concepts, conv.keep] if conv is not None else None
        return json.dumps([self.prompt, sorted(self.marks), to_data(self.variants), typed, chat_key, conv_key],
                          default=str)

    @property
    def stale(self) -> bool:
        return self.result is not None and self.result_inputs != self.inputs_key()

    # -- variants ----------------------------------------------------------------------------
    def set_variant(self, index: int | None, variant: Variant) -> int:
        """Add (index None) or replace a variant; `points=k` becomes k rows, as on the command
        line. Returns the index of the first row it became."""
        rows = expand_points(variant)
        if index is None:
            index = len(self.variants)
            self.variants += rows
        else:
            self.variants[index : index + 1] = rows
        return index

    def remove_variant(self, index: int) -> Variant:
        removed = self.variants.pop(index)
        self.removed.append((index, removed))
        return removed

    def undo_remove(self) -> Variant | None:
        """Put the last removed variant back where it was; None when nothing was removed."""
        if not self.removed:
            return None
        index, variant = self.removed.pop()
        self.variants.insert(min(index, len(self.variants)), variant)
        return variant

    def move_variant(self, index: int, delta: int) -> bool:
        j = index + delta
        if not (0 <= index < len(self.variants) and 0 <= j < len(self.variants)):
            return False
        self.variants[index], self.variants[j] = self.variants[j], self.variants[index]
        return True

    def rows(self) -> list[Variant]:
        """The rows a run of these variants shows: the baseline, then each variant."""
        return [Variant("baseline"), *self.variants]

    # -- settings, runs and sessions -----------------------------------------------------------
    def settings(self) -> tuple[int, float, int]:
        """max tokens, temperature, seed from their fields, checked as everywhere (core/settings.py)."""
        values = [settings.check(k, self.fields[k].strip(), "settings") for k in FIELDS]
        return values[0], values[1], values[2]

    def request(self, engine: Engine):
        """The run these inputs ask for; BadInput names what is wrong."""
        if not self.prompt.strip():
            raise BadInput("prompt: empty")
        prompt, _ = self.model_prompt(engine.tokens)
        max_tokens, temperature, seed = self.settings()
        engine.check_fit(self.variants)
        return Request(prompt, list(self.variants), sorted(self.marks), max_tokens, temperature, seed)

    def session(self, model: str | None) -> sessions.Session:
        try:
            max_tokens, temperature, seed = self.settings()
        except BadInput:  # fields being edited: the defaults
            d = settings.defaults()
            max_tokens, temperature, seed = d["max_tokens"], d["temperature"], d["seed"]
        conv = self.conversation
        marks = sorted(self.marks)  # in a conversation, only the prompt's count: earlier turns' are characters
        if conv is not None and self.layout is not None:
            marks = sorted(self.marks & overlapping(self.layout.spans, *self.layout.offsets[-1]))
        return sessions.Session(prompt=self.prompt, marks=marks, variants=self.variants, model=model,
                                seed=seed, temperature=temperature, max_tokens=max_tokens,
                                result=self.result.to_json() if self.result else None, chat=self.chat,
                                system=self.system_text() if self.chat else None,
                                conversation=conv.to_json() if conv is not None else None)

    def open(self, s: sessions.Session) -> None:
        """Take a loaded (checked) session's inputs and outputs; retokenize next."""
        self.prompt, self.variants = s.prompt, list(s.variants)
        self.fields = {"max_tokens": str(int(s.max_tokens)), "temperature": f"{float(s.temperature):g}",
                       "seed": str(int(s.seed))}
        self.system, self.chat = s.system or "", bool(s.chat)
        self.prompt_tokens, self.marks = [], set(s.marks)  # marks from the file, not carried over
        self.result = s.run_result()
        self.conversation = convs.from_json(s.conversation, "session conversation") if s.conversation else None
        self.layout, self.tracked, self.parked_conversation = None, set(), None
