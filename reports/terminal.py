"""Human-readable output of a comparison for the terminal (the JSON is in results.py)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree as RichTree

from lenscope.core.results import RunResult
from lenscope.errors import one_line


def row_text(result: RunResult, r: int) -> Text:
    """A row's tokens, those that differ from the baseline at the same step highlighted."""
    base = result.rows[0].token_ids
    text = Text()
    for t, (tid, tok) in enumerate(zip(result.rows[r].token_ids, result.rows[r].tokens)):
        differs = r > 0 and (t >= len(base) or base[t] != tid)
        text.append(_printable(tok), style="bold magenta" if differs else "")
    return text


def print_comparison(result: RunResult, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"{result.model} · {result.backend} · T={result.temperature:g} · seed {result.seed}",
                  show_lines=True, expand=True)
    table.add_column("row", style="bold", ratio=1)
    table.add_column("output", ratio=4)
    table.add_column("diverges", justify="right")
    for r, row in enumerate(result.rows):
        status = "" if row.finite else " [red](NaN)[/]"
        div = "-" if row.first_divergence is None else str(row.first_divergence)
        # names come from lens specs and files: escape controls so none reaches the terminal raw
        table.add_row(Text(one_line(row.name)) + Text.from_markup(status), row_text(result, r), div)
    console.print(Text("prompt: ", style="dim") + Text(_printable(result.prompt)))
    console.print(table)
    t = result.timing
    console.print(f"[dim]prefill {t.get('prefill_s', 0):.3f}s · decode {t.get('decode_tokens_per_s', 0):.1f} steps/s[/]")


def _printable(text: str) -> str:
    """Multi-line text for the terminal: line breaks and tabs kept, other controls escaped."""
    return "\n".join("\t".join(map(one_line, line.split("\t"))) for line in text.split("\n"))


def print_logit_lens(data: dict, console: Console | None = None) -> None:
    """Per row and position: the top token at every layer, with its probability."""
    console = console or Console()
    for row in data["rows"]:
        for pos in row["positions"]:
            table = Table(title=f"{one_line(row['name'])} · position {pos['position']} "
                                f"({one_line(pos['input'])!r} → {one_line(pos['prediction'])!r}, "
                                f"top-1 from {pos['first_top1_layer']})", expand=False)
            table.add_column("layer", style="dim")
            table.add_column("top tokens")
            for pin in pos["pinned"]:
                table.add_column(f"p({one_line(pin['token'])!r})", justify="right")
            for i, layer in enumerate(pos["layers"]):
                tops = "  ".join(f"{one_line(t['token'])!r} {t['prob']:.2f}" for t in layer["top"])
                table.add_row(layer["layer"], tops, *(f"{pin['probs'][i]:.3f}" for pin in pos["pinned"]))
            console.print(table)


def print_geometry(data: dict, console: Console | None = None) -> None:
    """Per lens row: cosine to the baseline at each hidden state (mean over positions), and
    the smallest; 1.00 everywhere means the lens did not move the residual stream."""
    console = console or Console()
    table = Table(title="cosine to the baseline, mean over positions (min)", expand=False)
    table.add_column("layer", style="dim")
    rows = data["rows"][1:]
    for row in rows:
        table.add_column(one_line(row["name"]), justify="right")
    for i, layer in enumerate(data["layers"]):
        cells = []
        for row in rows:
            values = [v for v in row["cosine"][i] if v is not None]
            cells.append(f"{sum(values) / len(values):.3f} ({min(values):.3f})" if values else "-")
        table.add_row(layer, *cells)
    console.print(table)
    console.print(f"[dim]PCA at {data['pca_layer']}: axes explain "
                  f"{', '.join(f'{100 * v:.0f}%' for v in data['pca_explained'])} of the variance[/]")


def print_tree(tree, console: Console | None = None) -> None:
    """The tree as nested lines: each node its own text, score and why it branched."""
    console = console or Console()
    ranks = {node_id: k + 1 for k, node_id in enumerate(tree.to_json()["best"])}
    best = set(ranks)

    def label(node) -> Text:
        own = tree.nodes[node.parent].text if node.parent is not None else ""
        text = Text(_printable(node.text[len(own):]) or "(prompt)", style="bold green" if node.id in best else "")
        if node.score is not None:
            text.append(f"  {node.score:.3f}", style="cyan")
        text.append(f"  {node.reason}", style="dim")
        if node.pruned:
            text.append("  pruned", style="dim red")
        if node.id in best:  # said in words too: piped, or without colour, green is not seen
            text.append(f"  ★ best {ranks[node.id]}", style="bold green")
        return text

    root = RichTree(label(tree.nodes[0]))

    def add(parent, node) -> None:
        for c in node.children:
            add(parent.add(label(tree.nodes[c])), tree.nodes[c])

    add(root, tree.nodes[0])
    console.print(Text("prompt: ", style="dim") + Text(_printable(tree.prompt)))
    console.print(root)
    console.print(f"[dim]{tree.tokens_used} tokens generated; the best leaves are marked ★ best 1, 2, ...[/]")
