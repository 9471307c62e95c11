"""The layout is the architecture: which part of lenscope may import which, and no cycles.

Every import counts, also the ones inside functions (they are how a cycle hides). The
rules, lowest layer first (a package may import its own modules and the layers named):

    lenses             metal                   (the lens maths: nothing of app/ or screens/)
    metal              nothing                 (kernels and their MLX-ops references)
    app.errors         lenses                  (the one error type, BadInput, is the lenses')
    app.models         errors                  (where models come from, how they load)
    app.core           errors, models, lenses, metal   (engine, comparison, hooks, records)
    app.chat           errors, models, core, lenses    (templates, conversations)
    app.views          errors, core, lenses    (view maths, pure renderables)
    app.io             errors, core, chat, lenses      (the user's files, sessions)
    app.reports        errors, core, chat, views, io, lenses   (records in, text out)
    app.batch          all of the above        (experiments, searches, trees, scores)
    app.tui            the above but reports; screens (its launcher only)
    app.lab            the above and batch, metal      (measure, bench, doctor)
    app.cli            all of app/ and metal
    screens            all of app/ but cli and lab

Nothing in app/ imports Textual or screens/, except the TUI launcher `app.tui.launch`.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import lenscope.app

ROOT = Path(lenscope.app.__file__).resolve().parent.parent  # the installed `lenscope` package

BELOW_BATCH = {"app.errors", "app.models", "app.core", "app.chat", "app.views", "app.io", "app.reports", "lenses"}
ALLOWED: dict[str, set[str]] = {
    "lenses": {"metal"},
    "metal": set(),
    "app.errors": {"lenses"},  # BadInput is the lenses' error type
    "app.models": {"app.errors"},
    "app.core": {"app.errors", "app.models", "lenses", "metal"},
    "app.chat": {"app.errors", "app.models", "app.core", "lenses"},
    "app.views": {"app.errors", "app.core", "lenses"},
    "app.io": {"app.errors", "app.core", "app.chat", "lenses"},
    "app.reports": {"app.errors", "app.core", "app.chat", "app.views", "app.io", "lenses"},
    "app.batch": BELOW_BATCH,
    "app.tui": BELOW_BATCH - {"app.reports"} | {"screens"},  # screens: the launcher only (below)
    "app.lab": BELOW_BATCH | {"app.batch", "metal"},
    "app.cli": BELOW_BATCH | {"app.batch", "app.tui", "app.lab", "metal"},
    "screens": BELOW_BATCH | {"app.batch", "app.tui"},
}
TEXTUAL_ALLOWED = {"lenscope.app.tui.launch"}  # starts the Textual app


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(("lenscope", *parts))


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))
            if {"tests", "training", "examples", "build", ".venv"}.isdisjoint(p.relative_to(ROOT).parts)
            and p.relative_to(ROOT).parts[0] in ("app", "lenses", "metal", "screens")}


def imports(name: str, path: Path, known: set[str], typing: bool = False) -> set[str]:
    """Every module `name` imports (anywhere in it), as full names; `from pkg import mod`
    counts as an import of pkg.mod when that is a module, and importing a module runs its
    packages' `__init__` first, so those count too. `typing`: also the imports under
    `if TYPE_CHECKING:` (they never run, but a layer still may not name a higher one)."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {id(n) for block in ast.walk(tree) if _is_type_checking(block)
                   for stmt in block.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in typing_only and not typing:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for a in node.names:
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
    parents = {".".join(m.split(".")[:k]) for m in out for k in range(2, m.count(".") + 1)}
    own = {".".join(name.split(".")[:k]) for k in range(1, name.count(".") + 1)}  # run before this module
    return out | {m for m in parents - own if m in known and m != name}


def _is_type_checking(node: ast.AST) -> bool:
    """`if TYPE_CHECKING:`: imports for annotations only, never run."""
    return isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING"


def layer(module: str) -> str | None:
    """The rule a module falls under: app.<package>, app.errors, lenses, metal, screens."""
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "lenscope":
        return None
    if parts[1] == "app":
        return ".".join(parts[1:3]) if len(parts) > 2 else "app"
    return parts[1]


def graph(typing: bool = False) -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: {i for i in imports(m, p, known, typing) if i.startswith("lenscope")} for m, p in mods.items()}


def test_every_app_module_is_in_a_layer():
    for m in modules():
        assert layer(m) in ALLOWED or m == "lenscope.app", f"{m}: in no layer (add it to a package of app/)"


def violations(g: dict[str, set[str]]) -> list[str]:
    bad = []
    for m, deps in g.items():
        mine = layer(m)
        for d in deps:
            theirs = layer(d)
            if theirs and theirs != mine and theirs != "app" and theirs not in ALLOWED.get(mine, set()):
                bad.append(f"{m} imports {d} ({mine} may not import {theirs})")
    return sorted(bad)


def cycles(g: dict[str, set[str]]) -> list[str]:
    """Each import cycle once it is met, as `a -> b -> a` (depth-first)."""
    state: dict[str, int] = {}
    stack: list[str] = []
    found: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(g.get(m, ())):
            if d not in g:
                continue
            if state.get(d) == 1:
                found.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for m in sorted(g):
        if m not in state:
            visit(m)
    return found


def test_layers_import_only_what_the_rules_allow():
    bad = violations(graph(typing=True))
    assert not bad, "\n".join(bad)


def test_app_imports_no_textual_and_no_screens():
    mods = modules()
    bad = [f"{m} imports {i}" for m in mods if m.startswith("lenscope.app") and m not in TEXTUAL_ALLOWED
           for i in imports(m, mods[m], set(mods)) if i.split(".")[0] == "textual" or i.startswith("lenscope.screens")]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    """Between modules, counting imports inside functions; a package's __init__ that
    re-exports its modules is an edge like any other."""
    found = cycles(graph())
    assert not found, "\n".join(found)


def test_the_checks_catch_what_they_look_for(tmp_path):
    """The checker itself, on made-up modules: an import inside a function is seen (one under
    TYPE_CHECKING only by the layer rules), a package's __init__ counts, a core
    module importing a report breaks the rules, and a cycle through a function is found."""
    f = tmp_path / "x.py"
    f.write_text("import os\nif TYPE_CHECKING:\n    import lenscope.app.cli\n\n"
                 "def later():\n    from lenscope.app.reports import html\n")
    known = {"lenscope.app.reports.html", "lenscope.app.reports", "lenscope.app.cli"}
    assert imports("lenscope.app.core.x", f, known) == {"os", "lenscope.app.reports.html", "lenscope.app.reports"}
    assert "lenscope.app.cli" in imports("lenscope.app.core.x", f, known, typing=True)
    g = {"lenscope.app.core.x": {"lenscope.app.reports.html"}, "lenscope.app.reports.html": {"lenscope.app.core.x"}}
    assert violations(g) == ["lenscope.app.core.x imports lenscope.app.reports.html "
                             "(app.core may not import app.reports)"]
    assert cycles(g) == ["lenscope.app.core.x -> lenscope.app.reports.html -> lenscope.app.core.x"]
    assert cycles({"a": {"b"}, "b": set()}) == []
