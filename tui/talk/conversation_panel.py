"""The conversation tab: the transcript turn by turn (roles, marked spans, tracked concepts,
every row's reply with its check) and the fade chart: a marked span's share of attention
at each turn's answer, one line per row.

`transcript_text` and `fade_text` are pure renderables of chat/conversation.py's data; the
panel only lays them out and asks the app (messages) to track a concept or change the kept row.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import Static

from lenscope.chat.conversation import Conversation, concept_pattern, fade
from lenscope.tui.keys import Key, bindings, hint
from lenscope.tui.markup import safe
from lenscope.tui.widgets.charts import legend, line_chart, row_style

ROLE_STYLES = {"system": "bold magenta", "user": "bold cyan", "assistant": "bold green"}
MARK_STYLE = "black on yellow"
TRACKED_STYLE = "underline bold yellow"


def _styled(text: str, marks: list[tuple[int, int]], concepts: list[str]) -> Text:
    out = Text(text)
    for c in concepts:
        for hit in concept_pattern(c).finditer(text):
            out.stylize(TRACKED_STYLE, hit.start(), hit.end())
    for a, b in marks:
        out.stylize(MARK_STYLE, a, b)
    return out


def transcript_text(conv: Conversation) -> Text:
    """Every message with its role; marked spans highlighted, tracked concepts underlined; under
    each user turn, every row's reply as that turn named it (◆ the one kept, in keep mode),
    with its check when there was one."""
    names = fade(conv)["rows"]  # one colour per row name, as in the chart
    marks: dict[int, list[tuple[int, int]]] = {}
    for m in conv.marks:
        marks.setdefault(m.message, []).append((m.start, m.end))
    out = Text()
    turn = 0
    for i, msg in enumerate(conv.messages):
        if msg.role == "assistant" and 0 < turn <= len(conv.turns):
            record = conv.turns[turn - 1]
            for r, row in enumerate(record["rows"]):
                shown = conv.mode == "branches" and r == 0 or conv.mode == "keep" and r == record["setup"]["keep"]
                kept = shown and conv.mode == "keep"
                name = row["name"]
                check = "" if row.get("passed") is None else (" ✓" if row["passed"] else " ✗")
                short = name if len(name) <= 24 else name[:23] + "…"
                out.append(f"  {'◆' if kept else ' '} {short}{check}: ", style=row_style(names.index(name)))
                body = _styled(msg.text, marks.get(i, []), conv.concepts) if shown else \
                    _styled(row["text"], [], conv.concepts)
                if not shown:
                    body.stylize("dim")
                out.append_text(body)
                out.append("\n")
            continue
        if msg.role == "user":
            turn += 1
        label = f"{msg.role} {turn}" if msg.role == "user" else msg.role
        out.append(f"{label}: ", style=ROLE_STYLES.get(msg.role, "bold"))
        out.append_text(_styled(msg.text, marks.get(i, []), conv.concepts))
        out.append("\n")
    if not conv.messages:
        out.append("no turns yet: type the first user message in compose (f2) and press ctrl+r", style="dim italic")
    return out


def fade_text(conv: Conversation, span: int, width: int, height: int = 10) -> Group | Text:
    """The chosen span's share per turn (one line per row), its distance from each answer,
    and the legend."""
    data = fade(conv)
    if not data["labels"]:
        if conv.marks or conv.concepts:
            return Text(f"{len(conv.marks)} mark(s), {len(conv.concepts)} tracked concept(s): the chart starts with "
                        "the next turn", style="dim italic")
        return Text("no marked spans yet: mark tokens of any turn (space in the tokens, f2) or track a concept (t)",
                    style="dim italic")
    label = data["labels"][span % len(data["labels"])]
    series = [(r, data["shares"][label][r]) for r in range(len(data["rows"]))]
    n = len(conv.turns)
    if n < 2:
        values = " · ".join(f"{name}: {v:.3f}" for name, (_, vs) in zip(data["rows"], series)
                            for v in vs if v is not None)
        chart = Text(f"share on {label} at turn 1: {values} (the curve starts at turn 2)")
    else:
        chart = line_chart(series, f"share of attention on {label}", width, height, x_label="turn", first=1,
                           whole_x=True)
    distances = " ".join("-" if d is None else str(d) for d in data["distances"][label])
    held = [Text(f"{name} holds the marks' share at: " + " ".join("-" if v is None else f"{v:.3f}" for v in values),
                 style="dim") for name, values in data["held"].items()]
    return Group(chart, legend(data["rows"], width), *held,
                 Text(f"distance in tokens from the span to each turn's answer: {distances}", style="dim"))


class ConversationPanel(VerticalScroll, can_focus=True):
    DEFAULT_CSS = """
    ConversationPanel { height: 1fr; }
    ConversationPanel #conv-header { height: auto; background: $boost; padding: 0 1; }
    ConversationPanel #conv-fade { height: auto; padding: 1 1 0 1; }
    ConversationPanel #conv-transcript { height: auto; padding: 0 1; }
    """
    KEYS = [
        Key("t", "track", "track a concept: every occurrence of a word or phrase, in any turn, is marked too", "track"),
        Key("k", "cycle_keep", "keep mode: choose whose reply joins the transcript (baseline or a lens row)", "keep"),
        Key("left_square_bracket", "span(-1)", "the fade chart's span: previous / next"),
        Key("right_square_bracket", "span(1)", "the fade chart's span: previous / next", "span"),
    ]
    BINDINGS = bindings(KEYS)

    @dataclass
    class TrackWanted(Message):
        """Ask for a concept to track (the app owns the conversation)."""

    @dataclass
    class KeepWanted(Message):
        """The next row's reply is kept."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.conv: Conversation | None = None
        self.row_names: list[str] = []
        self.span_index = 0

    def compose(self) -> ComposeResult:
        yield Static(self._header(), id="conv-header")
        yield Static(id="conv-fade")
        yield Static(id="conv-transcript")

    def _header(self) -> Content:
        conv = self.conv
        if conv is None:
            return safe("conversation mode is off: ctrl+n turns it on  [dim]$keys[/]", keys=hint(self.KEYS))
        if conv.mode == "branches":
            mode = "branches: every row continues its own history"
        else:
            kept = self.row_names[conv.keep] if conv.keep < len(self.row_names) else f"row {conv.keep}"
            mode = f"keeping {kept}'s replies"
        tracked = f" · tracked: {', '.join(conv.concepts)}" if conv.concepts else ""
        return safe("$n turn(s) · $what  [dim]$keys[/]", n=len(conv.turns), what=mode + tracked, keys=hint(self.KEYS))

    def show(self, conv: Conversation | None, row_names: list[str]) -> None:
        """`row_names`: the rows the next turn will run (the header names the kept one)."""
        self.conv, self.row_names = conv, row_names
        self.redraw()

    def redraw(self) -> None:
        self.query_one("#conv-header", Static).update(self._header())
        conv = self.conv
        fade_area, text_area = self.query_one("#conv-fade", Static), self.query_one("#conv-transcript", Static)
        if conv is None:
            fade_area.update("")
            text_area.update("")
            return
        fade_area.update(fade_text(conv, self.span_index, max(30, self.scrollable_content_region.width - 3),
                                   max(7, min(12, self.size.height // 2 - 1))))
        text_area.update(transcript_text(conv))

    def on_resize(self) -> None:
        self.redraw()

    def action_track(self) -> None:
        self.post_message(self.TrackWanted())

    def action_cycle_keep(self) -> None:
        self.post_message(self.KeepWanted())

    def action_span(self, delta: int) -> None:
        self.span_index += delta
        self.redraw()
