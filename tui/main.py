"""The main screen: one pane per tab (tui/tabs.py), the status line and the footer; what a
tab asks for goes to the app's tab and conversation actions."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Checkbox, Footer, Header, ProgressBar, Static, TabbedContent, TabPane

from lenscope.tui.heads.head_map_panel import HeadMapPanel
from lenscope.tui.keys import FOCUS_BINDINGS
from lenscope.tui.logits.logit_lens_panel import LogitLensPanel
from lenscope.tui.tabs import TABS, WIDE
from lenscope.tui.talk.conversation_panel import ConversationPanel
from lenscope.tui.tree.tree_panel import TreePanel
from lenscope.tui.workspace import Workspace


class MainScreen(Screen):
    BINDINGS = FOCUS_BINDINGS
    AUTO_FOCUS = "#prompt"  # typing works at once

    def __init__(self, ws: Workspace) -> None:
        super().__init__()
        self.ws = ws

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with TabbedContent(initial="compose", id="tabs"):
            for tab in TABS:
                with TabPane(tab.tab_label(wide=False), id=tab.id):
                    yield tab.make(self.ws)
        with Horizontal(id="statusbar"):
            yield Static("starting…", id="status")
            yield ProgressBar(id="progress", show_eta=False, show_percentage=False)
        yield Footer()

    def on_resize(self) -> None:
        content = self.query_one(TabbedContent)
        wide = self.size.width >= WIDE
        for tab in TABS:
            content.get_tab(tab.id).label = tab.tab_label(wide)

    @on(TabbedContent.TabActivated)
    def tab_shown(self, event: TabbedContent.TabActivated) -> None:
        # the status line spoke of the tab it was written for: a new tab says what it shows
        if not self.app.running and self.app.engine is not None:
            self.app.set_status(next((t.help for t in TABS if t.id == event.pane.id), ""))

    # -- what the tabs ask for goes to the app's tab and conversation actions -----------------------
    @on(HeadMapPanel.OpenHead)
    def open_head(self, message: HeadMapPanel.OpenHead) -> None:
        self.app.tabs.open_head(message.row, message.layer, message.head)

    @on(HeadMapPanel.RolesWanted)
    def roles_wanted(self) -> None:
        self.app.tabs.roles_wanted()

    @on(LogitLensPanel.Wanted)
    def logit_lens_wanted(self, message: LogitLensPanel.Wanted) -> None:
        self.app.tabs.logit_lens_wanted(message.key)

    @on(TreePanel.GrowWanted)
    def grow_wanted(self, message: TreePanel.GrowWanted) -> None:
        self.app.tabs.grow_wanted(message.options)

    @on(TreePanel.OpenPath)
    def open_path(self, message: TreePanel.OpenPath) -> None:
        self.app.tabs.open_path(message.text, message.node)

    @on(ConversationPanel.KeepWanted)
    def keep_wanted(self) -> None:
        self.app.conversations.keep()

    @on(ConversationPanel.TrackWanted)
    def track_wanted(self) -> None:
        self.app.conversations.track()

    @on(Checkbox.Changed, "#conversation-mode")
    def conversation_toggled(self, event: Checkbox.Changed) -> None:
        self.app.conversations.checkbox(event.checkbox.value)
