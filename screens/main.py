"""The main screen: compose (prompt, tokens, variants), compare, heatmap, heads, logit lens, geometry, tree,
conversation."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import (
    Checkbox,
    Footer,
    Header,
    Input,
    Label,
    ProgressBar,
    Static,
    TabbedContent,
    TabPane,
    TextArea,
)

from lenscope.app.settings import SETTINGS
from lenscope.screens.comparison import ComparisonView
from lenscope.screens.conversation_panel import ConversationPanel
from lenscope.screens.geometry_panel import GeometryPanel
from lenscope.screens.head_map_panel import HeadMapPanel
from lenscope.screens.heatmap_panel import HeatmapPanel
from lenscope.screens.logit_lens_panel import LogitLensPanel
from lenscope.screens.token_chips import TokenChips
from lenscope.screens.tree_panel import TreePanel
from lenscope.screens.variant_list import VariantList


def tokens_label(n: int | None, template: int = 0, conversation: bool = False) -> str:
    """`template`: how many of the n tokens are the chat template's (dimmed, not markable).
    In a conversation the tokens are the whole transcript's: space marks any turn's."""
    count = "" if n is None else f" ({n}, {template} template)" if template else f" ({n})"
    if conversation:
        return (f"transcript tokens{count} ([b]space[/b] marks one of any turn · [b]ctrl+k[/b] marks the "
                "prompt's selection)")
    return f"tokens{count} ([b]space[/b] marks important · [b]ctrl+k[/b] marks the selection)"


def chat_label(template: str | None, loaded: bool = True) -> str:
    """The chat toggle's label: which template chat mode puts around the prompt."""
    if not loaded:
        return "chat"
    return f"chat: {template}" if template else "chat: no template"


class MainScreen(Screen):
    AUTO_FOCUS = "#prompt"  # typing works at once

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with TabbedContent(initial="compose", id="tabs"):
            with TabPane("Compose F2", id="compose"):
                with Vertical(id="compose-body"):
                    yield TextArea(id="prompt", soft_wrap=True, show_line_numbers=False)
                    yield Label(tokens_label(None), classes="section", id="tokens-label")
                    yield TokenChips(id="chips")
                    yield Label("lens variants ([b]a[/b] add · [b]e[/b] edit · [b]x[/b] remove)", classes="section")
                    yield VariantList(id="variants")
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
            with TabPane("Compare F3", id="compare"):
                yield ComparisonView(id="comparison")
            with TabPane("Heatmap F4", id="heatmap"):
                yield HeatmapPanel(id="heatmap-panel")
            with TabPane("Heads F5", id="heads"):
                yield HeadMapPanel(id="headmap-panel")
            with TabPane("Logits F6", id="logit-lens"):
                yield LogitLensPanel(id="lens-panel")
            with TabPane("Geometry F7", id="geometry"):
                yield GeometryPanel(id="geometry-panel")
            with TabPane("Tree F8", id="tree"):
                yield TreePanel(id="tree-panel")
            with TabPane("Talk F9", id="conversation"):
                yield ConversationPanel(id="conversation-panel")
        with Horizontal(id="statusbar"):
            yield Static("starting…", id="status")
            yield ProgressBar(id="progress", show_eta=False, show_percentage=False)
        yield Footer()
