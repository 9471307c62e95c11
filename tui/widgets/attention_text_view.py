"""Attention on the text, under the compare view's rows: the token under the cursor colours
the prompt and the tokens before it by how much its query attends to each, for the focused
row; marked tokens stay underlined.

Sources: the mean over layers and heads, one layer (mean of its heads), one head, or the
rollout through all layers; `d` shows the row minus the baseline (diverging colours).
"""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from lenscope.core.capture import RowCapture
from lenscope.core.results import RunResult
from lenscope.views.attention import head_means, token_weights
from lenscope.views.attention_text import AttentionText

SOURCES = ("mean", "layer", "head", "rollout")


class AttentionTextView(VerticalScroll):
    DEFAULT_CSS = """
    AttentionTextView { height: auto; max-height: 45%; border-top: solid $panel; padding: 0 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.body = Static("")
        self.source, self.attn_layer, self.head, self.diff = "mean", 0, 0, False
        self.captures: dict[int, RowCapture] = {}
        self.keys = ""  # the compare view's key hint for this pane
        self._means: dict[int, np.ndarray] = {}  # row -> head means, for rollout
        self.inherited: dict[int, list[int]] = {}  # row -> tokens its lens's propagation gave importance

    def compose(self):
        yield self.body

    def set_captures(self, captures: dict[int, RowCapture], inherited: dict[int, list[int]] | None = None) -> None:
        self.captures, self._means, self.inherited = captures, {}, inherited or {}

    def weights(self, row: int, query: int) -> np.ndarray:
        cap = self.captures[row]
        n_layers, n_heads = cap.attention.shape[:2]
        self.attn_layer %= n_layers
        self.head %= n_heads
        if self.source == "rollout":
            if row not in self._means:
                self._means[row] = head_means(cap.attention)
            return token_weights(cap.attention, query, use_rollout=True, means=self._means[row])
        return token_weights(cap.attention, query, layer=None if self.source == "mean" else self.attn_layer,
                             head=self.head if self.source == "head" else None)

    def describe(self) -> str:
        return {"mean": "mean of layers and heads", "layer": f"layer {self.attn_layer} (mean of heads)",
                "head": f"layer {self.attn_layer} head {self.head}", "rollout": "rollout through all layers"}[self.source]

    def show(self, result: RunResult | None, row: int, step: int) -> None:
        """Colour by output token `step` of `row` (its own query)."""
        cap = self.captures.get(row)
        if result is None or cap is None:
            self.body.update(Text("attention on the text appears once the run's attention is captured",
                                  style="dim italic"))
            return
        query = min(cap.prompt_len + step, len(cap.ids) - 1)
        w = self.weights(row, query)
        diff = self.diff and row > 0 and 0 in self.captures
        if diff:
            base = self.captures[0]
            n = min(len(w), len(base.ids))
            w = w[:n] - self.weights(0, min(query, n - 1))[:n]
        inherited = self.inherited.get(row, [])
        title = (f"{result.rows[row].name}: {cap.tokens[query]!r} @{query} attends to · {self.describe()}"
                 f"{' · minus baseline (red: more)' if diff else ''}"
                 f"{' · overlined: inherited importance' if inherited else ''}  {self.keys}")
        self.body.update(AttentionText(cap.tokens[: len(w)], w, min(query, len(w) - 1),
                                       result.marked_token_indices, diverging=diff, title=title, inherited=inherited))
