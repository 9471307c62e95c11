"""The layout is the architecture: which part of lenscope may import which, and no cycles.

Every import counts, also the ones inside functions (they are how a cycle hides). The
rules, lowest layer first (a package may import its own modules and the ones it names):

    lenses, metal      the lens maths and kernels: nothing of app/ or screens/
    app.errors         the one error type; every layer may import it
    app.models         where models come from and how they load
    app.core           the engine, hooks, comparisons, captures, settings, limits
    app.chat, app.views    chat templates and conversations; view maths and renderables
    app.io             the user's files and sessions
    app.reports        terminal, HTML, Markdown, SVG (records in, text out)
    app.batch          experiments, searches, trees, scores, sharding, diffs
    app.tui            the TUI's state (workspace) and its launcher
    app.lab            measurements of lenscope itself (measure, bench, doctor)
    app.cli            the command line: may import any of app/
    screens            the Textual app: may import app/ but not app.cli or app.lab

Nothing in app/ imports Textual or screens/, except the TUI launcher `app.tui.launch`.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import lenscope.app

ROOT = Path(lenscope.app.__file__).resolve().parent.parent  # the installed `lenscope` package

LENS = {"lenses", "metal", "app.errors"}
ALLOWED: dict[str, set[str]] = {
    "lenses": {"lenses", "metal"},
    "metal": {"metal", "lenses"},
    "app.errors": {"lenses"},
    "app.models": LENS,
    "app.core": LENS | {"app.models"},
    "app.chat": LENS | {"app.core"},
    "app.views": LENS | {"app.core"},
    "app.io": LENS | {"app.core", "app.chat"},
    "app.reports": LENS | {"app.core", "app.views", "app.io", "app.chat"},
    "app.batch": LENS | {"app.models", "app.core", "app.chat", "app.views", "app.io", "app.reports"},
    "app.tui": LENS | {"app.models", "app.core", "app.chat", "app.views", "app.io", "app.reports", "app.batch",
                       "screens"},
    "app.lab": LENS | {"app.models", "app.core", "app.chat", "app.views", "app.io", "app.reports", "app.batch"},
    "app.cli": LENS | {"app.models", "app.core", "app.chat", "app.views", "app.io", "app.reports", "app.batch",
                       "app.tui", "app.lab"},
    "screens": LENS | {"app.models", "app.core", "app.chat", "app.views", "app.io", "app.reports", "app.batch",
                       "app.tui"},
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


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module `name` imports (anywhere in it), as full names; `from pkg import mod`
    counts as an import of pkg.mod when that is a module."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {id(n) for block in ast.walk(tree) if _is_type_checking(block)
                   for stmt in block.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for a in node.names:
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
    return out


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


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: {i for i in imports(m, p, known) if i.startswith("lenscope")} for m, p in mods.items()}


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
    bad = violations(graph())
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
    TYPE_CHECKING is not), a core
    module importing a report breaks the rules, and a cycle through a function is found."""
    f = tmp_path / "x.py"
    f.write_text("import os\nif TYPE_CHECKING:\n    import lenscope.app.cli\n\n"
                 "def later():\n    from lenscope.app.reports import html\n")
    known = {"lenscope.app.reports.html"}
    assert imports("lenscope.app.core.x", f, known) == {"os", "lenscope.app.reports.html"}
    g = {"lenscope.app.core.x": {"lenscope.app.reports.html"}, "lenscope.app.reports.html": {"lenscope.app.core.x"}}
    assert violations(g) == ["lenscope.app.core.x imports lenscope.app.reports.html "
                             "(app.core may not import app.reports)"]
    assert cycles(g) == ["lenscope.app.core.x -> lenscope.app.reports.html -> lenscope.app.core.x"]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("command", [
    ["generate", "--max-tokens", "2"], ["score", "--continuation", " blue"], ["attention"], ["logit-lens"],
    ["geometry"]])
@pytest.mark.parametrize("spec, problem", [
    ("emphasis:heads=99", "emphasis: head 99 does not exist (heads are 0..7)"),
    ("emphasis:auto_heads=9", "emphasis: auto_heads=9, the model has 8 heads"),
    ("head-scale:heads=9,layers=0", "head-scale: head 9 does not exist"),
    ("steer:layers=40,token=happy", "steer: layer 40 does not exist (the model has 4 layers)")])
def test_every_entry_point_checks_the_fit_before_running(run_cli, monkeypatch, command, spec, problem):
    """Lens.fit_problems, called by Engine.prepare: one line naming the variant, and no
    forward of that lens ever starts."""
    from lenscope.app.core.comparison import Comparison

    monkeypatch.setattr(Comparison, "steps", lambda *a, **k: pytest.fail("generated with a lens that does not fit"))
    code, out, err = run_cli(*command, "--prompt", "the key is blue. the key is", "--mark", "blue", "--lens", spec)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and f"variant '{spec}': {problem}" in err, err
