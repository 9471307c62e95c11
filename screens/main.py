"""The main screen: one tab per view (screens/views.py), the status line and the footer."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Checkbox, Footer, Header, ProgressBar, Static, TabbedContent, TabPane

from lenscope.app.tui.workspace import Workspace
from lenscope.screens.compose_pane import ComposePane
from lenscope.screens.conversation_panel import ConversationPanel
from lenscope.screens.head_map_panel import HeadMapPanel
from lenscope.screens.keys import FOCUS_BINDINGS
from lenscope.screens.logit_lens_panel import LogitLensPanel
from lenscope.screens.tree_panel import TreePanel
from lenscope.screens.views import VIEWS, WIDE

WIDGET_IDS = {"compose": "compose-body", "compare": "comparison", "heatmap": "heatmap-panel",
              "heads": "headmap-panel", "logit-lens": "lens-panel", "geometry": "geometry-panel",
              "tree": "tree-panel", "conversation": "conversation-panel"}


class MainScreen(Screen):
    BINDINGS = FOCUS_BINDINGS
    AUTO_FOCUS = "#prompt"  # typing works at once

    def __init__(self, ws: Workspace) -> None:
        super().__init__()
        self.ws = ws

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with TabbedContent(initial="compose", id="tabs"):
            for view in VIEWS:
                with TabPane(view.tab_label(wide=False), id=view.id):
                    if view.widget is ComposePane:
                        yield ComposePane(self.ws, id=WIDGET_IDS[view.id])
                    else:
                        yield view.widget(id=WIDGET_IDS[view.id])
        with Horizontal(id="statusbar"):
            yield Static("starting…", id="status")
            yield ProgressBar(id="progress", show_eta=False, show_percentage=False)
        yield Footer()

    def on_resize(self) -> None:
        tabs = self.query_one(TabbedContent)
        wide = self.size.width >= WIDE
        for view in VIEWS:
            tabs.get_tab(view.id).label = view.tab_label(wide)

    @on(TabbedContent.TabActivated)
    def tab_shown(self, event: TabbedContent.TabActivated) -> None:
        # the status line spoke of the tab it was written for: a new tab says what it shows
        if not self.app.running and self.app.engine is not None:
            self.app.set_status(next((v.help for v in VIEWS if v.id == event.pane.id), ""))

    # -- what the tabs ask for goes to the app's view and conversation actions ----------------------
    @on(HeadMapPanel.OpenHead)
    def open_head(self, message: HeadMapPanel.OpenHead) -> None:
        self.app.views.open_head(message.row, message.layer, message.head)

    @on(HeadMapPanel.RolesWanted)
    def roles_wanted(self) -> None:
        self.app.views.roles_wanted()

    @on(LogitLensPanel.Wanted)
    def logit_lens_wanted(self, message: LogitLensPanel.Wanted) -> None:
        self.app.views.logit_lens_wanted(message.key)

    @on(TreePanel.GrowWanted)
    def grow_wanted(self, message: TreePanel.GrowWanted) -> None:
        self.app.views.grow_wanted(message.options)

    @on(TreePanel.OpenPath)
    def open_path(self, message: TreePanel.OpenPath) -> None:
        self.app.views.open_path(message.text, message.node)

    @on(ConversationPanel.KeepWanted)
    def keep_wanted(self) -> None:
        self.app.conversations.keep()

    @on(ConversationPanel.TrackWanted)
    def track_wanted(self) -> None:
        self.app.conversations.track()

    @on(Checkbox.Changed, "#conversation-mode")
    def conversation_toggled(self, event: Checkbox.Changed) -> None:
        self.app.conversations.checkbox(event.checkbox.value)
