"""The wheel installs one top-level package, `lenscope`, holding every module of the source
tree (a subpackage left out of pyproject.toml fails here), and each imports from there."""
import json
import os
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


SOURCE = ("batch", "chat", "cli", "core", "lab", "lenses", "metal", "models", "reports", "storage", "tui", "views")


def source_modules(root: Path) -> set[str]:
    files = [p for top in SOURCE for p in (root / top).rglob("*.py") if "__pycache__" not in p.parts]
    return {".".join(("lenscope", *p.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
            for p in [*files, root / "__init__.py", root / "errors.py"]}


def test_wheel_installs_only_lenscope(tmp_path):
    # Built from a copy without build/: setuptools would otherwise pack a stale build/lib too
    # (modules since moved away), and the wheel would look complete when it is not.
    # In a git checkout, only what git holds (tracked, or new and not ignored): a module
    # left out of git is then missing from the wheel, as it would be from a clean clone.
    src = tmp_path / "src"
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=False) if (ROOT / ".git").exists() else None
    if listed is not None and listed.returncode == 0:
        for rel in listed.stdout.splitlines():
            if (ROOT / rel).is_file() and not rel.startswith("examples/"):
                (src / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / rel, src / rel)
    else:
        shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__",
                                                                  "examples", ".pytest_cache"))
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(src)]
    subprocess.run(build, check=True, capture_output=True, cwd=tmp_path)
    wheel = next(wheels.glob("lenscope-*.whl"))

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    target = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 check=True, capture_output=True, text=True).stdout.strip())
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True)
    top = sorted(p.name for p in target.iterdir() if p.name != "__pycache__")
    assert [n for n in top if not n.startswith("lenscope")] == []
    assert "lenscope" in top and any(n.endswith(".dist-info") for n in top)
    installed = target / "lenscope"
    assert {*SOURCE, "errors.py", "__main__.py"} <= {p.name for p in installed.iterdir()}
    assert (installed / "models" / "demo" / "config.json").is_file()
    assert source_modules(installed) == source_modules(src)
    assert (installed / "tui" / "lenscope.tcss").is_file()

    # The installed copy runs: its dependencies come from this environment, through a folder
    # of links to everything here but lenscope itself (installed here too, editable or not).
    deps_dir = tmp_path / "deps"
    deps_dir.mkdir()
    for sp in site.getsitepackages():
        for entry in Path(sp).iterdir():
            if not entry.name.startswith(("lenscope", "__editable__")) and not (deps_dir / entry.name).exists():
                (deps_dir / entry.name).symlink_to(entry)
    deps = str(deps_dir)
    proc = subprocess.run([py, "-m", "lenscope", "lenses", "--json"], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": deps}, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "emphasis" in {k["kind"] for k in json.loads(proc.stdout)["kinds"]}
    where = subprocess.run([py, "-c", "import lenscope.core; print(lenscope.core.__file__)"], capture_output=True,
                           text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": deps}, check=True).stdout
    assert where.startswith(str(target))

    # every module imports from the installed copy (__main__ aside: it runs the command)
    mods = sorted(source_modules(installed))
    code = ("import importlib, sys\nfor m in sys.argv[1:]:\n    mod = importlib.import_module(m)\n"
            f"    assert mod.__file__.startswith({str(target)!r}), mod.__file__\nprint(len(sys.argv) - 1)")
    proc = subprocess.run([py, "-c", code, *mods], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": deps}, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout) == len(mods) > 90
