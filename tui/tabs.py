"""The tabs, once: each is one `Tab` entry (id, title, key, the widget inside, the keys it
adds to help, what it does with the captures of the result on screen, where focus goes).
The main screen composes them, the app binds their keys, help and the key reference (docs/reference/keys.md)
list their keys, and `TabActions.show_captures` hands each its share of a capture."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textual.widget import Widget

from lenscope.core.capture import RowCapture
from lenscope.core.results import RunResult
from lenscope.tui.compare.compare_panel import ComparePanel
from lenscope.tui.compose.compose_pane import ComposePane
from lenscope.tui.compose.token_chips import TokenChips
from lenscope.tui.compose.variant_list import VariantList
from lenscope.tui.geometry.geometry_panel import GeometryPanel
from lenscope.tui.heads.head_map_panel import HeadMapPanel
from lenscope.tui.heatmap.heatmap_panel import HeatmapPanel
from lenscope.tui.keys import Key
from lenscope.tui.logits.logit_lens_panel import LogitLensPanel
from lenscope.tui.talk.conversation_panel import ConversationPanel
from lenscope.tui.tree.tree_panel import TreePanel

if TYPE_CHECKING:
    from lenscope.tui.tab_actions import TabActions
    from lenscope.tui.workspace import Workspace


@dataclass(frozen=True)
class Shown:
    """What the tabs get when the captures on screen change (a run ended, a session opened)."""
    result: RunResult | None
    captures: dict[int, RowCapture]
    empty: str  # what an empty view says instead of "no capture yet" ("" for that)
    actions: TabActions  # for what the lenses prepared on this prompt (flags, inherited marks)


@dataclass(frozen=True)
class Tab:
    id: str
    title: str
    key: str
    widget: type[Widget]
    help: str
    make: Callable[[Workspace], Widget]
    keys: list[tuple[str, list[Key]]] = field(default_factory=list)  # (help group, keys)
    show: Callable[[Any, Shown], None] | None = None  # the tab's share of a capture
    focus: Callable[[Any], None] = Widget.focus  # where focus goes when the tab is shown

    def tab_label(self, wide: bool) -> str:
        """The tab's title, with its key when the terminal has room for every tab's."""
        return f"{self.title} {self.key.upper()}" if wide else self.title

    def binding(self) -> Key:
        # priority: the prompt (a TextArea) has its own f6 / f7 and must not swallow a tab's key
        return Key(self.key, f"tab('{self.id}')", self.help, title=f"Show {self.title.lower()} tab", priority=True)


TABS = [
    Tab("compose", "Compose", "f2", ComposePane, "the compose tab: prompt, tokens, variants, settings",
        make=lambda ws: ComposePane(ws, id="compose-body"),
        keys=[("tokens", TokenChips.KEYS), ("variants", VariantList.KEYS)],
        focus=lambda pane: pane.query_one("#prompt").focus()),
    Tab("compare", "Compare", "f3", ComparePanel, "the compare tab: the rows side by side",
        make=lambda ws: ComparePanel(id="comparison"), keys=[("compare", ComparePanel.KEYS)],
        show=lambda w, s: w.set_captures(s.captures, s.actions.inherited_tokens())),
    Tab("heatmap", "Heatmap", "f4", HeatmapPanel, "the heatmap tab: attention heatmaps and per-step charts",
        make=lambda ws: HeatmapPanel(id="heatmap-panel"), keys=[("heatmap", HeatmapPanel.KEYS)],
        show=lambda w, s: w.set_data(s.result, {r: c.attention for r, c in s.captures.items()}, empty=s.empty)),
    Tab("heads", "Heads", "f5", HeadMapPanel,
        "the head map tab: layers x heads, share on the marks, entropy, head roles",
        make=lambda ws: HeadMapPanel(id="headmap-panel"), keys=[("heads", HeadMapPanel.KEYS)],
        show=lambda w, s: w.set_data(s.result, s.captures, s.actions.auto_head_flags())),
    Tab("logit-lens", "Logits", "f6", LogitLensPanel,
        "the logit lens tab: what each layer would predict at each position",
        make=lambda ws: LogitLensPanel(id="lens-panel"), keys=[("logit lens", LogitLensPanel.KEYS)],
        show=lambda w, s: w.set_data(s.result, s.captures)),
    Tab("geometry", "Geometry", "f7", GeometryPanel,
        "the geometry tab: how far each row's hidden states moved from the baseline's",
        make=lambda ws: GeometryPanel(id="geometry-panel"), keys=[("geometry", GeometryPanel.KEYS)],
        show=lambda w, s: w.set_data(s.result, s.captures)),
    Tab("tree", "Tree", "f8", TreePanel, "the tree tab: branch where the model hesitates, score, keep the best",
        make=lambda ws: TreePanel(id="tree-panel"), keys=[("tree", TreePanel.KEYS)],
        focus=lambda panel: panel.focus_tree()),
    Tab("conversation", "Talk", "f9", ConversationPanel,
        "the conversation (Talk) tab: the transcript, and each marked span's share per turn",
        make=lambda ws: ConversationPanel(id="conversation-panel"), keys=[("conversation", ConversationPanel.KEYS)]),
]
WIDE = 100  # columns from which tab titles carry their keys


def tab(tab_id: str) -> Tab:
    return next(t for t in TABS if t.id == tab_id)
