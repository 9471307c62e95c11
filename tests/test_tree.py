"""Tree-shaped generation: without pruning the leaves are exactly the exhaustive expansion
(checked token by token against the plain model), the best leaves are the best scored, and
pruning keeps the beam."""

import itertools
import json

import mlx.core as mx
import numpy as np
import pytest

from lenscope.batch.scores import Score
from lenscope.batch.tree import entropy, grow
from lenscope.errors import BadInput

PROMPT = "one day, tom went to the park. the sun was"
FLUENCY = Score.from_data([{"kind": "fluency"}], "test")


def test_unpruned_tree_is_the_exhaustive_expansion(engine):
    """Branch every 2 tokens into the top 2, beam wide enough to keep everything: each leaf
    path must be greedy except at its branch points, where it takes the rank its node says,
    and every combination of ranks must be there."""
    tree = grow(engine, PROMPT, FLUENCY, {"k": 2, "every": 2, "beam": 64, "budget": 40, "segment": 2})
    prompt_ids = engine.encode(PROMPT)
    leaves = [n for n in tree.nodes if not n.children]
    depth = {len([a for a in _ancestors(tree, n.id)]) for n in leaves}
    combos = set()
    for leaf in leaves:
        path = tree.path(leaf.id)
        with engine.lock:
            logits = np.array(engine.model(mx.array([prompt_ids + path]))[0].astype(mx.float32))
        branch_at, ranks = {}, []
        for node_id in _ancestors(tree, leaf.id)[::-1] + [leaf.id]:
            node = tree.nodes[node_id]
            if node.parent is not None:
                start = len(tree.path(node.parent))
                rank = int(node.reason.split("#")[1].split()[0]) - 1
                branch_at[start] = rank
                ranks.append(rank)
        for i, tok in enumerate(path):
            order = np.argsort(-logits[len(prompt_ids) - 1 + i])
            assert tok == order[branch_at.get(i, 0)], f"leaf {leaf.id} token {i}"
        combos.add(tuple(ranks))
    d = max(depth)
    full = [c for c in combos if len(c) == d]
    assert len(full) == len(set(full)) and set(full) == set(itertools.product(range(2), repeat=d))


def _ancestors(tree, node_id):
    out, node = [], tree.nodes[node_id]
    while node.parent is not None:
        out.append(node.parent)
        node = tree.nodes[node.parent]
    return out[:-1] if out else []  # without the root


def test_best_leaves_are_the_highest_scored_and_pruning_keeps_the_beam(engine):
    score = Score.from_data([{"kind": "contains", "text": "tom"}, {"kind": "fluency", "weight": 0.1}], "test")
    tree = grow(engine, PROMPT, score, {"k": 3, "entropy": 1.0, "beam": 2, "budget": 40, "segment": 6})
    data = tree.to_json()
    scored = [n for n in tree.nodes if not n.children and n.score is not None]
    best = sorted(scored, key=lambda n: -n.score)[:2]
    assert [n.id for n in best] == data["best"]
    for n in scored:  # scores are the score of each leaf's own text
        assert n.parts["contains:text=tom"] == float("tom" in n.text)
    assert any(n.pruned for n in tree.nodes)
    assert tree.tokens_used <= 40 + 3  # the last branch may add its k first tokens
    json.dumps(data)


def test_entropy_by_hand():
    assert entropy(np.array([0.0, 0.0])) == pytest.approx(np.log(2))
    assert entropy(np.array([0.0, -np.inf, 0.0, 0.0])) == pytest.approx(np.log(3))


def test_tree_cli(run_cli):
    code, out, err = run_cli("tree", "--prompt", PROMPT, "--budget", "12", "--entropy", "1", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["nodes"][0]["reason"] == "the prompt" and data["tokens_used"] <= 14
    code, _, err = run_cli("tree", "--prompt", PROMPT, "--k", "1")
    assert code == 2 and "--k" in err


def test_bad_tree_options(engine):
    with pytest.raises(BadInput, match="unknown option 'width'"):
        grow(engine, PROMPT, FLUENCY, {"width": 3})


def test_progress_line_says_nodes_tokens_and_time_left():
    from lenscope.batch.tree import tree_progress

    assert tree_progress(0, 64, 1, 0.0) == "growing a tree… 1 nodes · 0/64 tokens · escape cancels"
    assert tree_progress(16, 64, 5, 4.0) == "growing a tree… 5 nodes · 16/64 tokens · ~12 s left · escape cancels"
    # the last branch may pass the budget: never 65/64 and a negative time
    assert tree_progress(65, 64, 39, 9.0) == "growing a tree… 39 nodes · 64/64 tokens · ~0 s left · escape cancels"


def test_grow_reports_progress_with_node_counts(engine):
    seen = []
    tree = grow(engine, PROMPT, FLUENCY, {"k": 2, "every": 3, "beam": 64, "budget": 24, "segment": 4},
                progress=lambda done, total, nodes: seen.append((done, total, nodes)))
    assert seen and all(total == 24 for _, total, _ in seen) and seen[-1][2] == len(tree.nodes)
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen) and seen[-1][2] > 1
