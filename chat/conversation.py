"""Conversations: turns of system / user / assistant through the model's chat template,
marks that hold as the transcript grows, tracked concepts, and the attention each marked
span keeps at every turn's answer (the fade chart).

Marks are character spans of a message (`Mark(message, start, end)`), never token
indices: the whole transcript is re-tokenized at every turn (a reply's tokens as
generated need not be how the tokenizer splits its text), and a character span lands on
whatever tokens cover it now. A tracked concept is a word or phrase whose every
occurrence in any message, the model's replies included, is marked, case and spacing
aside. Each turn runs the baseline and every lens row; in "keep" mode one row's reply
(the baseline's by default) joins the shared transcript, in "branches" mode every row
continues its own. Knows nothing of Textual.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lenscope.core import settings
from lenscope.core.engine import Request
from lenscope.core.logprob import score
from lenscope.core.marks import overlapping
from lenscope.core.records import ConversationRecord, TurnRecord, TurnRowRecord, TurnSetup
from lenscope.core.results import finite_mean
from lenscope.core.results import from_json as result_from_json
from lenscope.errors import BadInput
from lenscope.lenses.spec import to_data, variants_from_data
from lenscope.models import chat_template

if TYPE_CHECKING:
    from lenscope.core.engine import Engine
    from lenscope.core.tokens import Tokens

ROLES = ("system", "user", "assistant")
MODES = ("keep", "branches")
MAX_TURNS = 256  # in an experiment: each turn re-reads the whole transcript, far more is hours of work


@dataclass(frozen=True)
class ChatMessage:
    role: str
    text: str


@dataclass(frozen=True)
class Mark:
    message: int  # index into the transcript's messages (the system message first, if any)
    start: int  # characters of that message's text, [start, end)
    end: int


def concept_pattern(concept: str) -> re.Pattern:
    """Every spelling of a concept: any case, any run of spaces inside it, and whole words
    only where it begins or ends with a letter or digit ('exit' does not match 'atexit')."""
    words = concept.split()
    if not words:
        raise BadInput("tracked concept: empty")
    body = r"\s+".join(re.escape(w) for w in words)
    left = r"(?<!\w)" if re.match(r"\w", words[0]) else ""
    right = r"(?!\w)" if re.search(r"\w$", words[-1]) else ""
    return re.compile(left + body + right, re.IGNORECASE)


def occurrences(messages: Sequence[ChatMessage], concept: str) -> int:
    """How many times a concept occurs in the messages (matches of `concept_pattern`): a word
    that takes three tokens, said twice, occurs twice."""
    pattern = concept_pattern(concept)
    return sum(1 for m in messages for _ in pattern.finditer(m.text))


def text_marks(messages: Sequence[ChatMessage], texts: Sequence[str], roles: Sequence[str] = ("system", "user"),
               first: int = 0) -> list[Mark]:
    """Marks on every occurrence of each text (exact) in the messages from `first` on whose
    role is in `roles`: what `mark = [...]` means in a conversation experiment."""
    out = []
    for i in range(first, len(messages)):
        if messages[i].role not in roles:
            continue
        for t in texts:
            out += [Mark(i, m.start(), m.end()) for m in re.finditer(re.escape(t), messages[i].text)]
    return out


@dataclass
class Layout:
    """One transcript as the model reads it: the templated text, its tokens, each token's
    characters, and where each message's text sits in it."""

    text: str
    ids: list[int]
    spans: list[tuple[int, int]]
    offsets: list[tuple[int, int]]  # per message, its text's characters in `text`

    def tokens_of(self, mark: Mark) -> set[int]:
        if not 0 <= mark.message < len(self.offsets):
            return set()
        base, end = self.offsets[mark.message]
        a, b = base + max(mark.start, 0), min(base + mark.end, end)
        return overlapping(self.spans, a, b) if b > a else set()

    def template_tokens(self) -> set[int]:
        """Tokens outside every message's text: the template's role markers and special tokens."""
        inside = set().union(*(overlapping(self.spans, a, b) for a, b in self.offsets)) if self.offsets else set()
        return set(range(len(self.ids))) - inside

    def concept_tokens(self, messages: Sequence[ChatMessage], concept: str) -> set[int]:
        """The tokens covering every occurrence of a concept (more than one per occurrence when
        it takes several tokens: count occurrences with `occurrences`)."""
        pattern = concept_pattern(concept)
        out: set[int] = set()
        for (base, _), m in zip(self.offsets, messages):
            for hit in pattern.finditer(m.text):
                out |= overlapping(self.spans, base + hit.start(), base + hit.end())
        return out

    def marks_of(self, tokens: set[int]) -> list[Mark]:
        """Token indices back to character marks, one per run of adjacent marked characters in
        a message, spaces at its ends left out (a token that straddles a message's edge keeps
        only its part inside)."""
        out = []
        for i, (a, b) in enumerate(self.offsets):
            chars = sorted({c for t in tokens if 0 <= t < len(self.spans)
                            for c in range(max(self.spans[t][0], a), min(self.spans[t][1], b))})
            start = None
            for k, c in enumerate(chars):
                if start is None:
                    start = c
                if k + 1 == len(chars) or chars[k + 1] != c + 1:
                    lo, hi = start, c + 1  # a token's leading space is not what was marked
                    while lo < hi and self.text[lo].isspace():
                        lo += 1
                    while hi > lo and self.text[hi - 1].isspace():
                        hi -= 1
                    if hi > lo:
                        out.append(Mark(i, lo - a, hi - a))
                    start = None
        return out


def _apply(tokenizer, messages: Sequence[ChatMessage], generation_prompt: bool, texts: Sequence[str]) -> str:
    data = [{"role": m.role, "content": t} for m, t in zip(messages, texts)]
    try:
        return chat_template.render(tokenizer, data, generation_prompt)
    except BadInput as exc:  # a template may refuse a system role, or two turns of one role
        raise BadInput(f"conversation: {exc}") from None


def render(tokenizer, messages: Sequence[ChatMessage], generation_prompt: bool = True) -> tuple[str, list[tuple[int, int]]]:
    """The transcript through the chat template, and each message's text's place in it.

    Found by rendering placeholders (private-use characters no template writes) in place of
    the texts: a search for the text itself can land in the template's own words (a message
    "user" inside "<|user|>"). A template that changes the texts (trims them) is searched
    in order instead."""
    if not getattr(tokenizer, "chat_template", None):
        raise BadInput("conversation: this model has no chat template")
    text = _apply(tokenizer, messages, generation_prompt, [m.text for m in messages])
    holders = [f"\ue000lenscope-{i}\ue001" for i in range(len(messages))]
    probe = _apply(tokenizer, messages, generation_prompt, holders)
    pieces, offsets, pos, length = [], [], 0, 0
    for holder, m in zip(holders, messages):
        at = probe.find(holder, pos)
        if at < 0:
            break
        pieces += [probe[pos:at], m.text]
        length += at - pos
        offsets.append((length, length + len(m.text)))
        length += len(m.text)
        pos = at + len(holder)
    if len(offsets) == len(messages) and "".join(pieces) + probe[pos:] == text:
        return text, offsets
    offsets, pos = [], 0
    for i, m in enumerate(messages):
        at = text.find(m.text, pos)
        body = m.text
        if at < 0 and m.text.strip():  # templates that trim their messages
            body = m.text.strip()
            at = text.find(body, pos)
        if at < 0:
            raise BadInput(f"conversation: the chat template does not keep message {i + 1} ({m.role}) verbatim")
        shift = m.text.find(body)
        offsets.append((at - shift, at - shift + len(m.text)))
        pos = at + len(body)
    return text, offsets


def layout(tokens: Tokens, messages: Sequence[ChatMessage], generation_prompt: bool = True) -> Layout:
    text, offsets = render(tokens.tokenizer, messages, generation_prompt)
    ids = tokens.encode(text)
    return Layout(text, ids, tokens.token_spans(text, ids), offsets)


@dataclass
class Span:
    """A marked span measured on its own in the fade chart: one mark, or a tracked concept
    (all its occurrences)."""

    label: str
    mark: Mark | None = None
    concept: str | None = None


@dataclass
class Conversation:
    messages: list[ChatMessage] = field(default_factory=list)  # the shared transcript (keep mode)
    marks: list[Mark] = field(default_factory=list)
    concepts: list[str] = field(default_factory=list)
    mode: str = "keep"
    keep: int = 0  # the row whose reply joins the transcript in keep mode
    branches: list[list[ChatMessage]] = field(default_factory=list)  # per row, in branches mode (after turn 1)
    turns: list[dict[str, Any]] = field(default_factory=list)  # one record per user turn (see `run_turn`)

    @classmethod
    def start(cls, system: str | None = None, mode: str = "keep", keep: int = 0) -> Conversation:
        if mode not in MODES:
            raise BadInput(f"conversation: mode must be one of {', '.join(MODES)}, got {mode!r}")
        return cls([ChatMessage("system", system)] if system else [], mode=mode, keep=keep)

    def history(self, row: int) -> list[ChatMessage]:
        """Row `row`'s transcript so far (the shared one in keep mode)."""
        if self.mode == "branches" and self.branches:
            return self.branches[row] if row < len(self.branches) else self.branches[0]
        return self.messages

    def spans(self, messages: Sequence[ChatMessage] | None = None) -> list[Span]:
        """The fade chart's spans, labelled by turn and text (`messages`: the transcript that
        the marks index, when it has grown past `self.messages`)."""
        messages = self.messages if messages is None else messages
        out: list[Span] = []
        seen: dict[str, int] = {}
        for m in self.marks:
            turn = sum(1 for x in messages[: m.message + 1] if x.role == "user")
            text = messages[m.message].text[m.start : m.end] if m.message < len(messages) else ""
            base = f"turn {turn}: {text!r}"
            seen[base] = seen.get(base, 0) + 1  # the same text marked twice in one turn: #2, #3, ...
            label = base if seen[base] == 1 else f"{base} #{seen[base]}"
            out.append(Span(label, mark=m))
        return out + [Span(f"tracked {c!r}", concept=c) for c in self.concepts]

    def keep_row(self, row: int) -> bool:
        """Keep mode: from now on row `row`'s replies join the transcript, starting with the
        last turn's (its reply replaces the one kept; marks on that reply go). False when
        there is no such row."""
        if self.mode != "keep" or row < 0 or self.turns and row >= len(self.turns[-1]["rows"]):
            return False
        self.keep = row
        if self.turns and self.messages and self.messages[-1].role == "assistant":
            last = len(self.messages) - 1
            self.messages[-1] = ChatMessage("assistant", self.turns[-1]["rows"][row]["text"])
            self.turns[-1]["setup"]["keep"] = row  # a replay keeps the same reply
            self.marks = [m for m in self.marks if m.message != last]
        return True

    def mark_text(self, mark: Mark) -> str:
        if 0 <= mark.message < len(self.messages):
            return self.messages[mark.message].text[mark.start : mark.end]
        return ""

    def groups(self, lay: Layout, messages: Sequence[ChatMessage], row: int | None = None) -> list[list[int]]:
        """Each span's tokens in one layout of row `row`'s transcript (None: the shared one).
        In branches mode a mark on a reply holds in the baseline's branch only: the other
        branches replied differently."""
        out = []
        for s in self.spans(messages):
            if s.concept is not None:
                out.append(sorted(lay.concept_tokens(messages, s.concept)))
            elif row in (None, 0) or messages[s.mark.message].role != "assistant":
                out.append(sorted(lay.tokens_of(s.mark)))
            else:
                out.append([])
        return out

    def copy(self) -> Conversation:
        """An independent copy (a worker runs a turn on one while the screen shows the other)."""
        return from_json(copy.deepcopy(self.to_json()), "conversation")

    def to_json(self) -> dict[str, Any]:
        return {"messages": [{"role": m.role, "text": m.text} for m in self.messages],
                "marks": [{"message": m.message, "start": m.start, "end": m.end} for m in self.marks],
                "concepts": list(self.concepts), "mode": self.mode, "keep": self.keep,
                "branches": [[{"role": m.role, "text": m.text} for m in b] for b in self.branches],
                "turns": self.turns}


def from_json(data: Any, where: str) -> Conversation:
    """A saved conversation, every field checked (BadInput names the first that is not)."""
    if not isinstance(data, dict):
        raise BadInput(f"{where}: must be an object")

    def messages(value: Any, what: str) -> list[ChatMessage]:
        if not isinstance(value, list):
            raise BadInput(f"{where}: '{what}' must be a list of messages")
        out = []
        for i, m in enumerate(value):
            if not (isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("text"), str)):
                raise BadInput(f"{where}: {what} {i + 1} must have a role ({', '.join(ROLES)}) and a text")
            out.append(ChatMessage(m["role"], m["text"]))
        return out

    conv = Conversation(messages(data.get("messages", []), "messages"))
    for i, m in enumerate(data.get("marks", [])):
        ok = isinstance(m, dict) and all(isinstance(m.get(k), int) and not isinstance(m.get(k), bool) and m[k] >= 0
                                         for k in ("message", "start", "end"))
        if not ok or m["end"] <= m["start"] or m["message"] >= len(conv.messages):
            raise BadInput(f"{where}: mark {i + 1} must be {{message, start, end}}: characters of a message")
        conv.marks.append(Mark(m["message"], m["start"], m["end"]))
    concepts = data.get("concepts", [])
    if not isinstance(concepts, list) or not all(isinstance(c, str) and c.split() for c in concepts):
        raise BadInput(f"{where}: 'concepts' must be a list of non-empty texts")
    conv.concepts = list(concepts)
    conv.mode = data.get("mode", "keep")
    if conv.mode not in MODES:
        raise BadInput(f"{where}: 'mode' must be one of {', '.join(MODES)}")
    keep = data.get("keep", 0)
    if not isinstance(keep, int) or isinstance(keep, bool) or keep < 0:
        raise BadInput(f"{where}: 'keep' must be a row number (0: the baseline)")
    conv.keep = keep
    branches = data.get("branches", [])
    if not isinstance(branches, list):
        raise BadInput(f"{where}: 'branches' must be a list of transcripts")
    conv.branches = [messages(b, f"branch {i + 1}") for i, b in enumerate(branches)]
    turns = data.get("turns", [])
    if not isinstance(turns, list):
        raise BadInput(f"{where}: 'turns' must be a list of turn records")
    for k, t in enumerate(turns):
        _check_turn(t, f"{where} turn {k + 1}")
    conv.turns = turns
    return conv


def _check_turn(t: Any, where: str) -> None:
    """A turn record as `run_turn` writes it: what the reports and the fade chart read."""
    def number(x: Any) -> bool:
        return x is None or isinstance(x, (int, float)) and not isinstance(x, bool)

    ok = isinstance(t, dict) and isinstance(t.get("user"), str) and isinstance(t.get("spans"), list) \
        and all(isinstance(s, str) for s in t["spans"]) and isinstance(t.get("rows"), list) and t["rows"] \
        and isinstance(t.get("setup"), dict) and isinstance(t["setup"].get("keep"), int)
    for row in t.get("rows", []) if ok else []:
        ok = ok and isinstance(row, dict) and isinstance(row.get("name"), str) and isinstance(row.get("text"), str) \
            and isinstance(row.get("token_ids"), list) and all(isinstance(i, int) for i in row["token_ids"]) \
            and isinstance(row.get("shares"), list) and len(row["shares"]) == len(t["spans"]) \
            and all(number(x) for x in row["shares"]) and isinstance(row.get("distances"), list) \
            and len(row["distances"]) == len(t["spans"]) and all(number(x) for x in row["distances"]) \
            and row.get("passed") in (None, True, False) and number(row.get("score"))
    if not ok:
        raise BadInput(f"{where}: not a turn record (user, spans, setup, and rows with name, text, token_ids, "
                       "shares, distances, passed)")


# -- running a turn ------------------------------------------------------------------------------
def run_turn(engine: Engine, conv: Conversation, user: str, variants: Sequence, *, max_tokens: int, temperature: float,
             seed: int, mark: Sequence[str] = (), check=None, on_step=None,
             should_stop=lambda: False, fluency: bool = False) -> TurnRecord | None:
    """One user turn: the baseline and every lens row answer it, the conversation grows, and
    the turn's record (appended to `conv.turns`) says per row what it answered, each marked
    span's share of its attention while answering (mean over the answer's tokens, layers and
    heads) and its distance in tokens, and, with a `check` (a Score), whether it passed.

    `fluency`: also each reply's mean log-probability under the plain model (one more forward
    per row). `mark`: texts to mark wherever they occur in this user message. `on_step(row, result)`
    sees each comparison's result grow (keep mode: every row at once, row None). A run
    stopped by `should_stop` returns None and leaves the conversation as it was."""
    if not user.strip():
        raise BadInput("conversation: the user's message is empty")
    if conv.mode == "keep" and not 0 <= conv.keep <= len(variants):
        raise BadInput(f"conversation: keep row {conv.keep} does not exist (0..{len(variants)})")
    n_rows = 1 + len(variants)
    if conv.mode == "branches" and not conv.branches:
        conv.branches = [list(conv.messages) for _ in range(n_rows)]
    if conv.mode == "branches" and len(conv.branches) != n_rows:
        raise BadInput(f"conversation: {len(conv.branches)} branches, but {n_rows} rows to run (keep the rows as "
                       "they were, or start a new conversation)")
    index = len(conv.messages)  # the new user message's place, the same in every branch
    marks_before = list(conv.marks)
    conv.marks += text_marks([*conv.messages, ChatMessage("user", user)], mark, ("user",), index)
    spans = conv.spans([*conv.messages, ChatMessage("user", user)])
    # keep mode: one comparison, every row on the shared transcript; branches: one per row
    plans = [(None, conv.messages)] if conv.mode == "keep" else [(r, conv.branches[r]) for r in range(n_rows)]
    rows: list[TurnRowRecord] = [{} for _ in range(n_rows)]  # type: ignore[typeddict-item]  # each filled below
    results = []
    for row, history in plans:
        msgs = [*history, ChatMessage("user", user)]
        lay = layout(engine.tokens, msgs)
        groups = conv.groups(lay, msgs, row)
        marks = sorted(set().union(*map(set, groups))) if groups else []
        run_variants = list(variants) if row is None else ([] if row == 0 else [variants[row - 1]])
        request = Request(lay.text, run_variants, marks, max_tokens, temperature, seed, prompt_ids=lay.ids,
                          mark_groups=groups or ())
        try:
            comparison = engine.compare(request)
            for _ in comparison.steps(should_stop):
                if on_step is not None:
                    on_step(row, comparison.result)
        except BaseException:
            conv.marks = marks_before
            raise
        result = comparison.result
        if result.cancelled:
            conv.marks = marks_before
            return None
        scored = check.evaluate(engine, result, comparison.variants) if check is not None else None
        results.append(result.to_json())
        picks = range(n_rows) if row is None else [row]
        for r in picks:
            k = r if row is None else (0 if row == 0 else 1)
            out = result.rows[k]
            shares = [finite_mean([step[g] for step in out.attention_to_groups]) for g in range(len(groups))]
            rows[r] = {"name": out.name, "text": out.text, "token_ids": out.token_ids, "finished": out.finished,
                       "prompt_tokens": len(lay.ids), "shares": shares,
                       "distances": [len(lay.ids) - 1 - max(g) if g else None for g in groups],
                       "score": None if scored is None else scored[k]["score"],
                       "passed": None if scored is None else scored[k]["score"] > 0}
            if fluency:
                rows[r]["fluency"] = _fluency(engine, lay.text, out.text)
            held = [x for lens in (variants[r - 1].lenses if r else []) if hasattr(lens, "held")
                    and (x := lens.held()) is not None]
            if held:
                rows[r]["held"] = round(held[0], 5)
    # what this turn ran with, so a saved conversation replays exactly even if lenses, marks or
    # settings changed between turns
    setup: TurnSetup = {"variants": to_data(list(variants))["variant"], "max_tokens": max_tokens, "temperature": temperature,
             "seed": seed, "keep": conv.keep, "concepts": list(conv.concepts),
             "marks": [{"message": m.message, "start": m.start, "end": m.end} for m in conv.marks]}
    record: TurnRecord = {"user": user, "spans": [s.label for s in spans], "rows": rows, "results": results, "setup": setup}
    conv.messages.append(ChatMessage("user", user))
    if conv.mode == "keep":
        conv.messages.append(ChatMessage("assistant", rows[conv.keep]["text"]))
    else:
        for r, branch in enumerate(conv.branches):
            branch += [ChatMessage("user", user), ChatMessage("assistant", rows[r]["text"])]
        conv.messages = list(conv.branches[0])
    conv.turns.append(record)
    return record


def _fluency(engine: Engine, prompt: str, reply: str) -> float | None:
    if not reply:
        return None
    _, c_ids, rows = score(engine, prompt, reply)
    mean = rows[0].logprob / max(len(c_ids), 1)
    return round(mean, 4) if math.isfinite(mean) else None


def record(name: str, engine: Engine, conv: Conversation, lens: Sequence[str]) -> ConversationRecord:
    """A conversation as one line of results.jsonl (`lenscope run`, the TUI's export): the
    settings shown are its last turn's."""
    setup = conv.turns[-1]["setup"] if conv.turns else {}
    # the precision the turns ran with (a restored conversation may have run in another)
    ran = sorted({str(r.get("precision")) for t in conv.turns for r in t.get("results", ()) if r.get("precision")})
    return {"comparison": name, "kind": "conversation", "model": engine.loaded.name, "backend": engine.backend,
            "precision": " + ".join(ran) or engine.loaded.precision,
            "seed": setup.get("seed"), "temperature": setup.get("temperature"), "max_tokens": setup.get("max_tokens"),
            "lens": list(lens), "conversation": conv.to_json(), "fade": fade(conv)}


def turn_result(record: dict[str, Any]):
    """A turn as one comparison result, for the views: keep mode's own; in branches mode the
    baseline's comparison with each lens row taken from its branch's (their prompts differ)."""
    base = result_from_json(record["results"][0], "turn")
    for r in range(1, len(record["results"])):
        base.rows.append(result_from_json(record["results"][r], "turn").rows[1])
    return base


def replay(engine: Engine, saved: Conversation, on_turn=None) -> Conversation:
    """Run a saved conversation's user turns again, each with the lenses, settings, marks and
    tracked concepts it ran with: the same model gives the same tokens."""
    system = next((m.text for m in saved.messages[:1] if m.role == "system"), None)
    conv = Conversation.start(system, saved.mode)
    for k, t in enumerate(saved.turns):
        where = f"conversation turn {k + 1}"
        setup = t.get("setup")
        if not isinstance(setup, dict):
            raise BadInput(f"{where}: no 'setup' (what it ran with): it cannot be replayed")
        shown = [{"role": m.role, "text": m.text} for m in [*conv.messages, ChatMessage("user", t["user"])]]
        checked = from_json({"messages": shown, "marks": setup.get("marks", []),
                             "concepts": setup.get("concepts", []), "keep": setup.get("keep", 0)}, where)
        variants = variants_from_data({"variant": setup["variants"]}, where) if setup.get("variants") else []
        values = {k: settings.check(k, setup.get(k), where) for k in ("max_tokens", "temperature", "seed")}
        conv.marks, conv.concepts, conv.keep = checked.marks, checked.concepts, checked.keep
        run_turn(engine, conv, t["user"], variants, **values)
        if on_turn:
            on_turn(k)
    conv.marks = list(saved.marks)  # marks placed after the last turn
    conv.concepts = list(saved.concepts)
    return conv


def fade(conv_or_turns: Conversation | list[dict[str, Any]]) -> dict[str, Any]:
    """The fade chart's data: per span label, per row, its share at each turn (None where the
    span, or the row, did not exist yet), and the distance in tokens from the span to each
    turn's answer. Rows are matched by name, so a lens added or removed between turns is its
    own line (the baseline is always the first). `held`: per row with a `hold` lens, the
    share it held at each turn (all marks together), the line its shares should sit on."""
    turns = conv_or_turns.turns if isinstance(conv_or_turns, Conversation) else conv_or_turns
    labels: list[str] = []
    names: list[str] = []
    for t in turns:
        labels += [lb for lb in t["spans"] if lb not in labels]
        names += [row["name"] for row in t["rows"] if row["name"] not in names]
    shares = {lb: [[None] * len(turns) for _ in names] for lb in labels}
    distances = {lb: [None] * len(turns) for lb in labels}
    held: dict[str, list[float | None]] = {}  # rows with a `hold` lens: the share it held, per turn
    for k, t in enumerate(turns):
        for j, lb in enumerate(t["spans"]):
            for row in t["rows"]:
                shares[lb][names.index(row["name"])][k] = row["shares"][j]
            distances[lb][k] = t["rows"][0]["distances"][j]
        for row in t["rows"]:
            if row.get("held") is not None:
                held.setdefault(row["name"], [None] * len(turns))[k] = row["held"]
    return {"labels": labels, "rows": names, "shares": shares, "distances": distances, "held": held}
