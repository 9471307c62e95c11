"""The tabs, once: id, title, key, the widget inside and what it shows. The main screen
composes them, the app binds their keys, and the help and palette list them from here."""

from __future__ import annotations

from dataclasses import dataclass

from lenscope.screens.comparison import ComparisonView
from lenscope.screens.compose_pane import ComposePane
from lenscope.screens.conversation_panel import ConversationPanel
from lenscope.screens.geometry_panel import GeometryPanel
from lenscope.screens.head_map_panel import HeadMapPanel
from lenscope.screens.heatmap_panel import HeatmapPanel
from lenscope.screens.keys import Key
from lenscope.screens.logit_lens_panel import LogitLensPanel
from lenscope.screens.tree_panel import TreePanel


@dataclass(frozen=True)
class View:
    id: str
    title: str
    key: str
    widget: type
    help: str

    def tab_label(self, wide: bool) -> str:
        """The tab's title, with its key when the terminal has room for every tab's."""
        return f"{self.title} {self.key.upper()}" if wide else self.title

    def binding(self) -> Key:
        # priority: the prompt (a TextArea) has its own f6 / f7 and must not swallow a tab's key
        return Key(self.key, f"tab('{self.id}')", self.help, title=f"Show {self.title.lower()} tab", priority=True)


VIEWS = [
    View("compose", "Compose", "f2", ComposePane, "the compose tab: prompt, tokens, variants, settings"),
    View("compare", "Compare", "f3", ComparisonView, "the compare tab: the rows side by side"),
    View("heatmap", "Heatmap", "f4", HeatmapPanel, "the heatmap tab: attention heatmaps and per-step charts"),
    View("heads", "Heads", "f5", HeadMapPanel,
         "the head map tab: layers x heads, share on the marks, entropy, head roles"),
    View("logit-lens", "Logits", "f6", LogitLensPanel,
         "the logit lens tab: what each layer would predict at each position"),
    View("geometry", "Geometry", "f7", GeometryPanel,
         "the geometry tab: how far each row's hidden states moved from the baseline's"),
    View("tree", "Tree", "f8", TreePanel, "the tree tab: branch where the model hesitates, score, keep the best"),
    View("conversation", "Talk", "f9", ConversationPanel,
         "the conversation (Talk) tab: the transcript, and each marked span's share per turn"),
]
WIDE = 100  # columns from which tab titles carry their keys
