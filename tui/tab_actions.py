"""What the tabs ask for and get: the captures of the result on screen, head roles,
logit-lens windows and trees (computed by the runner), and moving between tabs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from lenscope.core.capture import RowCapture
from lenscope.errors import BadInput
from lenscope.lenses.base import Variant
from lenscope.lenses.constrain import Force
from lenscope.tui.compare.compare_panel import ComparePanel
from lenscope.tui.compose.compose_pane import ComposePane
from lenscope.tui.heads.head_map_panel import HeadMapPanel
from lenscope.tui.heatmap.heatmap_panel import HeatmapPanel
from lenscope.tui.logits.logit_lens_panel import LogitLensPanel
from lenscope.tui.tabs import TABS, Shown, tab
from lenscope.tui.tree.tree_panel import TreePanel

if TYPE_CHECKING:
    from lenscope.tui.app import LenscopeApp


WAITING = "capturing after the run… the views fill in when it ends"


class TabActions:
    def __init__(self, app: LenscopeApp) -> None:
        self.app = app
        self.ws = app.ws
        self.waiting = False  # a run is going and its capture follows: what an empty view says

    def empty_note(self, otherwise: str) -> str:
        """What an empty view says: that the capture follows the run, or `otherwise`."""
        return WAITING if self.waiting else otherwise

    def _q(self, widget: type) -> Any:
        return self.app.main.query_one(widget)

    def focus(self, tab_id: str) -> None:
        shown = tab(tab_id)
        shown.focus(self._q(shown.widget))

    def attention_text(self) -> None:
        self.app.action_tab("compare")
        self._q(ComparePanel).action_attention_text()

    def toggle_charts(self) -> None:
        self.app.action_tab("heatmap")
        self._q(HeatmapPanel).action_charts()

    def set_stale(self, stale: bool) -> None:
        self._q(ComparePanel).set_stale(stale)
        self._q(HeatmapPanel).set_stale(stale)

    # -- captures ----------------------------------------------------------------------------------
    def clear_captures(self) -> None:
        """A run starts: no view keeps showing the last result's attention; each says the
        capture follows."""
        self.waiting = True
        self.show_captures({})

    def stop_waiting(self) -> None:
        """A run or its capture failed: the views say again that nothing is captured."""
        if self.waiting:
            self.waiting = False
            self.show_captures({})

    def show_captures(self, captures: dict[int, RowCapture], empty: str = "") -> None:
        """Every view reads the same captures of the result on screen."""
        self.ws.captures = captures
        if captures or empty:
            self.waiting = False
        shown = Shown(self.ws.result, captures, empty, self)
        for t in TABS:
            if t.show is not None:
                t.show(self._q(t.widget), shown)

    def _lens_state(self, name: str) -> dict[int, list[Any]]:
        """Per row, what its lenses prepared for this prompt under `name` (Lens.prepared)."""
        out: dict[int, list[Any]] = {}
        for r, v in enumerate(self.ws.variants, start=1):
            for lens in v.lenses:
                value = lens.prepared().get(name)
                if value is not None:
                    out.setdefault(r, []).append(value)
        return out

    def inherited_tokens(self, at_least: float = 0.05) -> dict[int, list[int]]:
        """Per row, the prompt tokens its emphasis lens's propagation gave importance (the
        attention-on-text view's second marker)."""
        return {r: [int(j) for w in weights for j in np.flatnonzero(np.asarray(w) >= at_least)]
                for r, weights in self._lens_state("inherited").items()}

    def auto_head_flags(self) -> dict[int, dict[tuple[int, int], str]]:
        """Per row, the heads an emphasis lens with auto_heads picked on this prompt (flagged •)."""
        return {r: {(int(layer), int(h)): "•" for picked in picks for layer, heads in picked.items() for h in heads}
                for r, picks in self._lens_state("auto_heads").items()}

    # -- what the panels ask for ---------------------------------------------------------------------
    def open_head(self, row: int, layer: int, head: int) -> None:
        panel = self._q(HeatmapPanel)
        panel.row, panel.layer_index, panel.head_index = row, layer, head
        self.app.action_tab("heatmap")
        panel.redraw()

    def roles_wanted(self) -> None:
        if self.ws.head_roles is not None:
            self._q(HeadMapPanel).set_roles(self.ws.head_roles)
        elif self.app.engine is not None:
            self.app.set_status("measuring head roles on a repeated random sequence…")

            def apply(roles) -> None:
                self.ws.head_roles = roles
                self._q(HeadMapPanel).set_roles(roles)
                self.app.set_status("head roles measured · m cycles the head map's modes")

            self.app.runner.head_roles(apply)

    def logit_lens_wanted(self, key) -> None:
        row, positions, pinned = key
        captures = self.ws.captures
        cap = captures.get(row)
        if self.app.engine is None or cap is None:
            return
        panel = self._q(LogitLensPanel)

        def apply(lens) -> None:
            if captures is self.ws.captures:  # still the result on screen
                panel.asked = set(panel.lenses) | {key}  # asks that were dropped while waiting are asked again
                panel.set_lens(key, lens)

        self.app.runner.logit_lens(cap, list(positions), pinned, apply)

    def grow_wanted(self, options: dict[str, Any]) -> None:
        app = self.app
        if app.engine is None:
            app.notify("the model is still loading: try again in a moment", severity="warning")
            return
        try:
            if not self.ws.prompt.strip():
                raise BadInput("prompt: empty")
            prompt, _ = self.ws.model_prompt(app.engine.tokens)
        except BadInput as exc:
            app.notify(str(exc), severity="error")
            return
        panel = self._q(TreePanel)
        if app.runner.tree(prompt, options, panel.show_tree):
            panel.growing()

    def open_path(self, text: str, node: int) -> None:
        self.ws.set_variant(None, Variant(f"tree node {node}", [Force(text=text)]))
        self._q(ComposePane).show_variants(len(self.ws.variants) - 1)
        self.app.notify(f"added 'tree node {node}': its path forced from the first step (ctrl+r runs)")
