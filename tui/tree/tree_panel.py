"""The tree tab: tree-shaped generation from the prompt (batch/tree.py) in Textual's Tree.

Each node shows its own text, its score and what made it branch; the best leaves are
marked ★ and pruned ones are dim. The options row sets k, entropy, beam and budget; `g`
grows a tree from the current prompt (the runner reports progress in the status line);
`o` on a node opens its path as a comparison row (a `force` lens with that text).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label, Static, Tree

from lenscope.batch.tree import Tree as GenTree
from lenscope.core.settings import TREE_PARAMS
from lenscope.errors import BadInput
from lenscope.tui.keys import Key, bindings, hint


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
    TreePanel #tree-options { height: 1; }
    TreePanel #tree-options Label { padding: 0 1; }
    TreePanel #tree-options Input { width: 8; height: 1; border: none; padding: 0 1; background: $boost; }
    TreePanel #tree-options Input:focus { background: $accent 30%; }
    """
    OPTIONS = ("k", "entropy", "beam", "budget")  # the options a person sets here; the rest keep their defaults
    KEYS = [
        Key("g", "grow", "grow a tree from the prompt with the options above: branch where the model hesitates, "
            "keep the best", "grow"),
        Key("o", "open_path", "open the highlighted node's path as a comparison row (a force lens)", "open as row"),
    ]
    BINDINGS = bindings(KEYS)

    @dataclass
    class GrowWanted(Message):
        """Grow a tree from the current prompt with these options (the runner runs it)."""

        options: dict
    @dataclass
    class OpenPath(Message):
        text: str
        node: int

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.grown: GenTree | None = None

    def compose(self) -> ComposeResult:
        yield Static(f"tree-shaped generation  [dim]{hint(self.KEYS)}[/]", id="tree-header")
        with Horizontal(id="tree-options"):
            for name in self.OPTIONS:
                param = TREE_PARAMS[name]
                yield Label(name)
                yield Input(f"{param.default:g}", id=f"tree-{name}", type="number", tooltip=param.help)
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
        widget.focus()  # the arrows move the highlight at once
        opts = tree.options
        self.query_one("#tree-header", Static).update(
            f"{len(tree.nodes)} nodes · {tree.tokens_used} tokens · k {opts['k']} · entropy > {opts['entropy']:g} · "
            f"beam {opts['beam']} · score: fluency  [dim]{hint(self.KEYS)}[/]")

    def focus_tree(self) -> None:
        self.query_one(Tree).focus()

    def options(self) -> dict:
        """The options as typed, checked as `lenscope tree` checks them (BadInput names a bad one)."""
        return {name: TREE_PARAMS[name].parse(self.query_one(f"#tree-{name}", Input).value.strip(), "tree")
                for name in self.OPTIONS}

    def action_grow(self) -> None:
        try:
            options = self.options()
        except BadInput as exc:
            self.notify(str(exc), severity="error")
            return
        self.post_message(self.GrowWanted(options))

    def growing(self) -> None:
        self.query_one("#tree-header", Static).update("growing a tree… (progress below · escape cancels)")

    def action_open_path(self) -> None:
        node = self.query_one(Tree).cursor_node
        if self.grown is None or node is None or node.data is None or node.data == 0:
            self.notify("highlight a node of a grown tree first (g grows one)", severity="warning")
            return
        self.post_message(self.OpenPath(self.grown.nodes[node.data].text, node.data))
