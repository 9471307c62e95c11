"""Tree-shaped generation: branch where the model hesitates, score the leaves, keep the best.

From the prompt, each open node generates (greedily, or at the given temperature) until its
next-token entropy passes `entropy` (or every `every` tokens); there it branches into the
`k` most likely tokens, each child starting with one of them. After each round the open
leaves are scored (batch/scores.py) and only the best `beam` stay open; the rest are kept in
the tree, marked pruned. The tree stops when `budget` tokens have been generated in all, or
no leaf is open. Every node says what made it branch, so the tree reads as an explanation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lenscope.batch.scores import Score
from lenscope.core.engine import Request
from lenscope.core.results import RowResult, RunResult
from lenscope.core.settings import TREE_PARAMS
from lenscope.errors import BadInput
from lenscope.lenses.base import Variant

if TYPE_CHECKING:
    from lenscope.core.engine import Engine

@dataclass
class Node:
    id: int
    parent: int | None
    token_ids: list[int]  # this node's own tokens (after its parent's)
    reason: str  # why it exists: the root, or the branch that made it
    text: str = ""  # the whole continuation from the prompt to the end of this node
    score: float | None = None
    parts: dict[str, float] = field(default_factory=dict)
    finished: bool = False  # reached EOS
    pruned: bool = False
    children: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "parent": self.parent, "token_ids": self.token_ids, "text": self.text,
                "reason": self.reason, "score": self.score, "parts": self.parts, "finished": self.finished,
                "pruned": self.pruned, "children": self.children}


@dataclass
class Tree:
    prompt: str
    nodes: list[Node]
    tokens_used: int
    options: dict[str, Any]

    def path(self, node_id: int) -> list[int]:
        """Token ids from the prompt to the end of this node."""
        ids: list[int] = []
        node: Node | None = self.nodes[node_id]
        while node is not None:
            ids = node.token_ids + ids
            node = self.nodes[node.parent] if node.parent is not None else None
        return ids

    def leaves(self) -> list[Node]:
        """Leaves, best score first (unscored last)."""
        leaves = [n for n in self.nodes if not n.children]
        return sorted(leaves, key=lambda n: -np.inf if n.score is None else -n.score)

    def to_json(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "options": self.options, "tokens_used": self.tokens_used,
                "best": [n.id for n in self.leaves()[: self.options["beam"]]],
                "nodes": [n.to_json() for n in self.nodes]}


def entropy(logits: np.ndarray) -> float:
    """Entropy (nats) of softmax(logits); -inf logits (banned tokens) count as probability 0."""
    z = logits.astype(np.float64) - np.max(logits)
    p = np.exp(z)
    p /= p.sum()
    nz = p > 0
    return float(-(p[nz] * np.log(p[nz])).sum())


def tree_progress(done: int, total: int, nodes: int, elapsed: float) -> str:
    """The status line while a tree grows: nodes, tokens, and the time left at the rate so far
    (a last branch may pass the budget: the count stops at it, the time at 0)."""
    done = min(done, total)
    left = f" · ~{max(0.0, elapsed / done * (total - done)):.0f} s left" if done else ""
    return f"growing a tree… {nodes} nodes · {done}/{total} tokens{left} · escape cancels"


def tree_done(tree: Tree, elapsed: float) -> str:
    """The status line once a tree has grown: what it holds and its best leaf."""
    leaves = tree.leaves()
    best = leaves[0] if leaves else None
    score = f" · best leaf scores {best.score:.3f}" if best is not None and best.score is not None else ""
    return (f"tree grown: {len(tree.nodes)} nodes, {len(leaves)} leaves, {tree.tokens_used} tokens in "
            f"{elapsed:.1f} s{score}")


def grow(engine: Engine, prompt: str, score: Score, options: dict[str, Any], temperature: float = 0.0, seed: int = 0,
         variant: Variant | None = None,
         progress: Callable[[int, int, int], None] = lambda done, total, nodes: None) -> Tree:
    """Grow the tree. `variant`: a lens stack every node runs under (none: the plain model)."""
    opts = {name: p.parse(options.get(name, p.default), "tree") for name, p in TREE_PARAMS.items()}
    unknown = set(options) - set(TREE_PARAMS)
    if unknown:
        raise BadInput(f"tree: unknown option '{min(unknown)}' (options: {', '.join(TREE_PARAMS)})")
    score.prepare(engine)
    prompt_ids = engine.encode(prompt)
    if not prompt_ids:
        raise BadInput("tree: the prompt is empty")
    tree = Tree(prompt, [Node(0, None, [], "the prompt")], 0, opts)
    open_ids = [0]
    while open_ids and tree.tokens_used < opts["budget"]:
        grown: list[int] = []
        for node_id in open_ids:
            if tree.tokens_used >= opts["budget"]:
                break
            grown += _extend(engine, tree, node_id, prompt_ids, temperature, seed, variant)
            progress(tree.tokens_used, opts["budget"], len(tree.nodes))
        _score(engine, tree, [i for i in grown if not tree.nodes[i].children], prompt, score)
        candidates = [i for i in grown if not tree.nodes[i].children and not tree.nodes[i].finished]
        candidates.sort(key=lambda i: -tree.nodes[i].score)
        for i in candidates[opts["beam"]:]:
            tree.nodes[i].pruned = True
        open_ids = candidates[: opts["beam"]]
    for n in tree.nodes:  # every node's text, not only the scored leaves'
        n.text = engine.tokenizer.decode([t for t in tree.path(n.id) if t not in engine.eos_ids])
    return tree


def _extend(engine: Engine, tree: Tree, node_id: int, prompt_ids: list[int], temperature: float, seed: int,
            variant: Variant | None) -> list[int]:
    """Generate from a node until a branch point, EOS, its segment or the budget; returns the
    nodes that changed (the node, and its children when it branched)."""
    opts = tree.options
    node = tree.nodes[node_id]
    room = min(opts["segment"], opts["budget"] - tree.tokens_used)
    start = prompt_ids + tree.path(node_id)
    req = Request(engine.tokenizer.decode(start), [variant] if variant else [], [], room, temperature, seed,
                  keep_logits=True, prompt_ids=start)
    comparison = engine.compare(req)
    r = len(comparison.variants) - 1  # the lensed row, or the baseline when there is none
    # the first token of a fresh child is its branch token: never branch again right there
    first = 1 if node.token_ids else 0
    cut = None
    row = comparison.result.rows[r]
    steps = comparison.steps()
    for step in steps:  # stop at the branch point: what would follow it is not kept
        t = step.index
        if t >= len(row.token_ids):  # the row ended here (EOS) or before: no branch point
            break
        logits_t = comparison.logits[t][r]
        due = opts["every"] and (len(node.token_ids) + t) % opts["every"] == 0 and len(node.token_ids) + t > 0
        if t >= first and (due or (not opts["every"] and entropy(logits_t) > opts["entropy"])):
            cut = t
            break
    steps.close()
    kept = row.token_ids if cut is None else row.token_ids[:cut]
    node.token_ids = node.token_ids + kept
    tree.tokens_used += len(kept)
    node.finished = row.finished and cut is None
    if cut is None:
        return [node_id]
    logits = comparison.logits[cut][r]
    order = np.argsort(-logits)[: opts["k"]]
    p = np.exp(logits - np.max(logits))
    p /= p.sum()
    why = f"every {opts['every']} tokens" if opts["every"] else f"entropy {entropy(logits):.2f} > {opts['entropy']:g}"
    for rank, tok in enumerate(order.tolist()):
        child = Node(len(tree.nodes), node_id, [int(tok)], f"{why}: #{rank + 1} {engine.token_text(tok)!r} "
                                                          f"p={p[tok]:.2f}")
        child.finished = int(tok) in engine.eos_ids
        tree.nodes.append(child)
        node.children.append(child.id)
        tree.tokens_used += 1
    return [node_id, *node.children]


def _score(engine: Engine, tree: Tree, node_ids: list[int], prompt: str, score: Score) -> None:
    """Score leaves as rows of one result (the parts read texts; row 0 stands in as baseline)."""
    if not node_ids:
        return
    rows = []
    for i in node_ids:
        ids = [t for t in tree.path(i) if t not in engine.eos_ids]
        tree.nodes[i].text = engine.tokenizer.decode(ids)
        rows.append(RowResult(name=f"node {i}", lens=None, token_ids=ids, text=tree.nodes[i].text))
    result = RunResult(model=engine.loaded.name, backend=engine.backend, precision=engine.loaded.precision, seed=0,
                       temperature=0.0, prompt=prompt, prompt_token_ids=engine.encode(prompt),
                       prompt_tokens=[], marked_token_indices=[], rows=rows)
    for i, scored in zip(node_ids, score.evaluate(engine, result, [Variant(r.name) for r in rows])):
        tree.nodes[i].score, tree.nodes[i].parts = scored["score"], scored["parts"]
