"""The layout is the architecture: which part of lenscope may import which, and no cycles.

Every import counts, also the ones inside functions (they are how a cycle hides). The
rules, lowest layer first (a package may import its own modules and the layers named):

    lenses      metal                               (the lens maths)
    metal       nothing                             (kernels and their MLX-ops references)
    errors      lenses                              (the one error type, BadInput, is the lenses')
    models      errors                              (where models come from, how they load)
    core        errors, models, lenses, metal       (engine, generation, hooks, records)
    chat        errors, models, core, lenses        (templates, conversations)
    views       errors, core, lenses                (view maths, pure renderables)
    storage     errors, core, chat, lenses          (the user's files, sessions)
    reports     errors, core, chat, views, storage, lenses   (records in, text out)
    batch       all of the above                    (experiments, searches, trees, fits)
    lab         the above and batch, metal          (measure, bench, doctor)
    cli         all but tui, and tui.launch         (the command line)
    tui         all but cli and lab                 (the Textual app)

Nothing outside tui/ imports Textual or tui/, except the command line starting the TUI
through `tui.launch`; `tui.workspace` (the app's state) imports no Textual either.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import lenscope

ROOT = Path(lenscope.__file__).resolve().parent  # the installed `lenscope` package
PACKAGES = ("batch", "chat", "cli", "core", "lab", "lenses", "metal", "models", "reports", "storage", "tui", "views")

BELOW_BATCH = {"errors", "models", "core", "chat", "views", "storage", "reports", "lenses"}
ALLOWED: dict[str, set[str]] = {
    "lenses": {"metal"},
    "metal": set(),
    "errors": {"lenses"},  # BadInput is the lenses' error type
    "models": {"errors"},
    "core": {"errors", "models", "lenses", "metal"},
    "chat": {"errors", "models", "core", "lenses"},
    "views": {"errors", "core", "lenses"},
    "storage": {"errors", "core", "chat", "lenses"},
    "reports": {"errors", "core", "chat", "views", "storage", "lenses"},
    "batch": BELOW_BATCH,
    "lab": BELOW_BATCH | {"batch", "metal"},
    "cli": BELOW_BATCH | {"batch", "lab", "metal", "tui"},  # tui: its launcher only (below)
    "tui": BELOW_BATCH | {"batch"},
}
NO_TEXTUAL_IN_TUI = {"lenscope.tui.workspace", "lenscope.tui.launch"}  # launch: Textual only once it starts


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(("lenscope", *parts))


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))
            if p.relative_to(ROOT).parts[0] in (*PACKAGES, "errors.py")}


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
    """The rule a module falls under: its top-level package (or `errors`)."""
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "lenscope":
        return None
    return parts[1]


def graph(typing: bool = False) -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: {i for i in imports(m, p, known, typing) if i.startswith("lenscope")} for m, p in mods.items()}


def test_every_module_is_in_a_layer():
    for m in modules():
        assert layer(m) in ALLOWED, f"{m}: in no layer (add its package to ALLOWED)"


def violations(g: dict[str, set[str]]) -> list[str]:
    bad = []
    for m, deps in g.items():
        mine = layer(m)
        for d in deps:
            theirs = layer(d)
            if theirs and theirs != mine and theirs not in ALLOWED.get(mine, set()):
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


def test_only_the_tui_imports_textual():
    """Outside tui/ nothing imports Textual or tui/ but the launcher; the workspace (state) and
    the launcher import no Textual at module level (the CLI loads them without starting it)."""
    mods = modules()
    bad = [f"{m} imports {i}" for m in mods if layer(m) != "tui"
           for i in imports(m, mods[m], set(mods))
           if i.split(".")[0] == "textual" or (i.startswith("lenscope.tui") and i != "lenscope.tui.launch"
                                                and i != "lenscope.tui")]
    for m in NO_TEXTUAL_IN_TUI:
        for n in ast.parse(mods[m].read_text()).body:  # module level only
            names = [a.name for a in n.names] if isinstance(n, ast.Import) else \
                [n.module or ""] if isinstance(n, ast.ImportFrom) else []
            bad += [f"{m} imports {x} at module level" for x in names
                    if x.split(".")[0] == "textual" or x.startswith("lenscope.tui.")]
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
    f.write_text("import os\nif TYPE_CHECKING:\n    import lenscope.cli\n\n"
                 "def later():\n    from lenscope.reports import html\n")
    known = {"lenscope.reports.html", "lenscope.reports", "lenscope.cli"}
    assert imports("lenscope.core.x", f, known) == {"os", "lenscope.reports.html", "lenscope.reports"}
    assert "lenscope.cli" in imports("lenscope.core.x", f, known, typing=True)
    g = {"lenscope.core.x": {"lenscope.reports.html"}, "lenscope.reports.html": {"lenscope.core.x"}}
    assert violations(g) == [("lenscope.core.x imports lenscope.reports.html "
                             "(core may not import reports)")]
    assert cycles(g) == ["lenscope.core.x -> lenscope.reports.html -> lenscope.core.x"]
    assert cycles({"a": {"b"}, "b": set()}) == []


# -- the TUI: one runner, a small App, tokens on the UI thread -------------------------------------------------------------
ENGINE_NAMES = {"Engine", "grow", "capture_row", "capture_rows", "measure", "logit_lens", "run_turn", "load"}
ENGINE_CALLS = {"compare", "capture_attention", "inspect", "inspect_rows", "hidden_states", "prepare", "run_turn",
                "capture_row", "capture_rows",
                "grow", "logit_lens", "measure"}
TOKENIZER_CALLS = {"encode", "token_text"}  # the Probe's; the UI thread holds `Tokens`, not the engine


def test_only_the_runner_runs_the_model_and_modules_stay_small():
    for path in sorted((ROOT / "tui").rglob("*.py")):
        text = path.read_text()
        assert len(text.splitlines()) <= (350 if path.name == "app.py" else 400), f"{path.name} is too long"
        if path.name == "runner.py":
            continue
        tree = ast.parse(text)
        typing_only = {id(n) for block in ast.walk(tree)  # `if TYPE_CHECKING:` imports are for annotations
                       if isinstance(block, ast.If) and getattr(block.test, "id", "") == "TYPE_CHECKING"
                       for stmt in block.body for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lenscope.") and not (node.module or "").startswith("lenscope.tui") \
                    and id(node) not in typing_only:
                names = {a.name for a in node.names} & ENGINE_NAMES
                assert not names, f"{path.name} imports {names} from {node.module}: only the runner runs the model"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                receiver = node.func.value
                on_engine = getattr(receiver, "attr", getattr(receiver, "id", "")) == "engine"
                assert not (on_engine and node.func.attr in ENGINE_CALLS), \
                    f"{path.name}:{node.lineno} runs the model (engine.{node.func.attr}): ask the runner"
                assert not (on_engine and node.func.attr in TOKENIZER_CALLS), \
                    f"{path.name}:{node.lineno} tokenizes through the engine: use engine.tokens (core/tokens.py)"


# -- imports: where a function-level import is kept, and why ---------------------------------------
LAZY = re.compile(r"#.*\blazy: (blas|startup|optional)\b")
WHY = """blas: the command line loads MLX only after it has chosen the BLAS (models/blas.py re-execs);
startup: a slow import only one path needs (Textual from the CLI, llguidance's tokenizer glue);
optional: an optional extra that may not be installed (llama-cpp-python, torch)"""


def test_imports_inside_functions_say_why():
    bad = []
    for name, path in modules().items():
        lines = path.read_text().split("\n")
        for fn in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                bad += [f"{name}:{n.lineno}: {lines[n.lineno - 1].strip()}" for n in ast.walk(fn)
                        if isinstance(n, (ast.Import, ast.ImportFrom)) and not LAZY.search(lines[n.lineno - 1])]
    assert not bad, "an import inside a function needs a reason (`# lazy: WHY`), or moves to the top:\n" \
        + WHY + "\n" + "\n".join(bad)


def test_help_loads_no_mlx_and_no_textual():
    """`lenscope --help` (and building the parser every command uses) stays MLX-free: options
    come from MLX-free declarations (lenses/params.py, core/settings.py)."""
    code = ("import sys\nfrom lenscope.cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'mlx', 'mlx_lm', 'textual', 'transformers'}),"
            " file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and "usage: lenscope" in proc.stdout, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "[]", proc.stderr
