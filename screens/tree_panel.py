"""The tree tab: tree-shaped generation from the prompt (app/tree.py) in Textual's Tree.

Each node shows its own text, its score and what made it branch; the best leaves are
marked ★ and pruned ones are dim. `g` grows a tree from the current prompt (in a worker);
`enter` on a node opens its path as a comparison row (a `force` lens with that text).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static, Tree

from lenscope.app.tree import Tree as GenTree
from lenscope.screens.keys import Key, bindings, hint


def node_label(tree: GenTree, node_id: int, best: set[int]) -> Text:
    node = tree.nodes[node_id]
    own = tree.nodes[node.parent].text if node.parent is not None else ""
    text = Text(("★ " if node_id in best else "") + (node.text[len(own):].replace("\n", "⏎") or "(prompt)"),
                style="bold green" if node_id in best else "dim" if node.pruned else "")
    if node.score is not None:
        text.append(f"  {node.score:.3f}", style="cyan")
    text.append(f"  {node.reason}", style="dim")
    return text


class TreePanel(Vertical, can_focus=True):
    DEFAULT_CSS = """
    TreePanel { height: 1fr; }
    TreePanel #tree-header { height: 1; background: $boost; padding: 0 1; }
    TreePanel Tree { height: 1fr; }
    """
    KEYS = [
        Key("g", "grow", "grow a tree from the prompt: branch where the model hesitates, keep the best", "grow"),
        Key("o", "open_path", "open the highlighted node's path as a comparison row (a force lens)", "open as row"),
    ]
    BINDINGS = bindings(KEYS)

    @dataclass
    class GrowWanted(Message):
        """Grow a tree from the current prompt (the app runs it in a worker)."""

    @dataclass
    class OpenPath(Message):
        text: str
        node: int

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.grown: GenTree | None = None

    def compose(self) -> ComposeResult:
        yield Static(f"tree-shaped generation  [dim]{hint(self.KEYS)}[/]", id="tree-header")
        widget: Tree[int] = Tree("press g to grow a tree from the prompt")
        widget.show_root = True
        yield widget

    def show_tree(self, tree: GenTree) -> None:
        self.grown = tree
        data = tree.to_json()
        best = set(data["best"])
        widget = self.query_one(Tree)
        widget.clear()
        widget.root.set_label(node_label(tree, 0, best))
        widget.root.data = 0

        def add(parent, node_id: int) -> None:
            for c in tree.nodes[node_id].children:
                child = parent.add(node_label(tree, c, best), data=c, expand=True)
                add(child, c)

        add(widget.root, 0)
        widget.root.expand_all()
        opts = tree.options
        self.query_one("#tree-header", Static).update(
            f"{len(tree.nodes)} nodes · {tree.tokens_used} tokens · k {opts['k']} · entropy > {opts['entropy']:g} · "
            f"beam {opts['beam']} · score: fluency  [dim]{hint(self.KEYS)}[/]")

    def action_grow(self) -> None:
        self.query_one("#tree-header", Static).update("growing a tree…")
        self.post_message(self.GrowWanted())

    def action_open_path(self) -> None:
        node = self.query_one(Tree).cursor_node
        if self.grown is None or node is None or node.data is None or node.data == 0:
            self.notify("highlight a node of a grown tree first (g grows one)", severity="warning")
            return
        self.post_message(self.OpenPath(self.grown.nodes[node.data].text, node.data))
