"""The output folder of a run (`lenscope run`, `lenscope search`): checked before the model
loads, locked while a run writes (DIR/.lenscope.lock: a second run into DIR is refused,
naming the first's pid), filled through a temp folder inside it whose files are moved in
with os.replace (a file of the same name is replaced whole, other files are left alone),
and read back for `--resume`."""


from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lenscope.app.errors import BadInput

LOCK = ".lenscope.lock"
TEMP_PREFIX = ".lenscope-run-"


def check_out(out: str, names: list[str]) -> Path:
    """Refuse (BadInput) an output folder that cannot take `names`, before the model loads."""
    where = f"--out '{out}'"
    if not out.strip():
        raise BadInput("--out: empty (name a folder)")
    p = Path(out).expanduser()
    try:
        if p.is_symlink() and not p.exists():
            raise BadInput(f"{where}: is a broken symlink")
        if p.exists():
            if not p.is_dir():
                raise BadInput(f"{where}: exists and is not a folder")
            if not os.access(p, os.W_OK | os.X_OK):
                raise BadInput(f"{where}: the folder is not writable")
            for name in [LOCK, *names]:
                q = p / name
                if q.is_dir() or (q.parent != p and q.parent.exists() and not q.parent.is_dir()):
                    raise BadInput(f"{where}: '{name}' in it is in the way (a folder where a file goes, or "
                                   "a file where a folder goes)")
        else:
            ancestor = p.parent
            while not ancestor.exists() and ancestor != ancestor.parent:
                ancestor = ancestor.parent
            if not ancestor.is_dir():
                raise BadInput(f"{where}: '{ancestor}' is not a folder")
            if not os.access(ancestor, os.W_OK | os.X_OK):
                raise BadInput(f"{where}: cannot create it, '{ancestor}' is not writable")
    except (OSError, ValueError) as exc:
        raise BadInput(f"{where}: {exc}") from None
    return p


def finished(out: Path, names: list[str]) -> dict[int, dict]:
    """The comparisons an earlier run of this experiment finished, by index: the records of
    DIR/results.jsonl whose name is the experiment's at that position."""
    path = out / "results.jsonl"
    if not path.exists():
        return {}
    done = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
            i = names.index(rec["comparison"])
        except (ValueError, KeyError, TypeError):
            raise BadInput(f"--resume: {path} holds a line that is not a comparison of this experiment") from None
        done[i] = rec
    return done


@contextmanager
def output_folder(out: Path) -> Iterator[Path]:
    """A temp folder inside `out` (made if missing) while holding its lock; on failure,
    the temp folder goes, and so does `out` if this run made it."""
    created = _make_dirs(out)
    lock_existed = (out / LOCK).exists()
    try:
        lock = _lock(out)
    except BaseException:
        _remove_dirs(created)
        raise
    try:
        for stale in out.glob(TEMP_PREFIX + "*"):  # a killed run's; none is live while we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=out))
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        if not lock_existed:  # leave DIR as it was
            (out / LOCK).unlink(missing_ok=True)
        _remove_dirs(created)
        raise
    finally:
        lock.close()


def _make_dirs(out: Path) -> list[Path]:
    """Make `out` and its missing parents; return those made, deepest first."""
    missing = []
    d = out
    while not d.exists() and d != d.parent:
        missing.append(d)
        d = d.parent
    made: list[Path] = []
    try:
        for d in reversed(missing):
            d.mkdir()
            made.insert(0, d)
    except OSError as exc:
        _remove_dirs(made)
        raise BadInput(f"--out '{out}': cannot create {d} ({exc.strerror or exc})") from None
    return made


def _remove_dirs(dirs: list[Path]) -> None:
    for d in dirs:
        try:
            d.rmdir()
        except OSError:
            break


def _lock(out: Path):
    try:
        f = open(out / LOCK, "a+")  # noqa: SIM115 (held open for the run: the lock lives as long as it)
    except OSError as exc:
        raise BadInput(f"--out '{out}': cannot write there ({exc.strerror or exc})") from None
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        pid = f.read().strip()[:20] or "?"
        f.close()
        raise BadInput(f"--out '{out}': another lenscope run (pid {pid}) is writing there") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def publish(tmp: Path, out: Path) -> None:
    """Move the finished files into `out`, each whole (os.replace), heatmaps before the
    reports that link them; a file of the same name keeps its mode."""
    files = sorted((p.relative_to(tmp) for p in tmp.rglob("*") if p.is_file()),
                   key=lambda rel: (rel.parts[0] != "heatmaps", str(rel)))
    for rel in files:
        if (out / rel).is_dir():
            raise BadInput(f"--out '{out}': '{rel}' in it is a folder")
    try:
        for rel in files:
            dst = out / rel
            dst.parent.mkdir(exist_ok=True)
            try:
                os.chmod(tmp / rel, stat.S_IMODE(os.stat(dst).st_mode))
            except FileNotFoundError:
                pass
            os.replace(tmp / rel, dst)
    except OSError as exc:
        raise BadInput(f"--out '{out}': cannot write there ({exc.strerror or exc})") from None
