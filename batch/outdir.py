"""The output folder of a run (`lenscope run`, `lenscope search`): checked before the model
loads, locked while a run writes (DIR/.lenscope.lock: a second run into DIR is refused,
naming the first's pid), filled through a temp folder inside it whose files are moved in
with os.replace (a file of the same name is replaced whole, other files are left alone),
and read back for `--resume`."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lenscope.chat.conversation import from_json
from lenscope.core.records import ResultLine, problem
from lenscope.errors import BadInput, user_path
from lenscope.storage.datafile import json_lines, read_text

LOCK = ".lenscope.lock"
TEMP_PREFIX = ".lenscope-run-"


def check_out(out: str, names: list[str]) -> Path:
    """Refuse (BadInput) an output folder that cannot take `names`, before the model loads."""
    where = f"--out '{out}'"
    if not out.strip():
        raise BadInput("--out: empty (name a folder)")
    p = user_path(out, where)
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


MANIFEST = ".lenscope-folder.json"  # which command's folder this is, and for what work


def work_id(definition: Any, model: str) -> str:
    """What identifies a piece of work: a hash of its definition (prompt, lenses, settings:
    the checked data, so formatting does not count) and the model. Resume and search keep
    a record only when it was made for the same work, whatever its name."""
    text = json.dumps([definition, model], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def check_kind(out: Path, kind: str, identity: str | None = None) -> bool:
    """Whether `out` is already this command's folder (`kind`: run or search) for this work
    (`identity`, for a search); False when it holds no lenscope output yet. A folder another
    kind made, another search's, or one holding a results.jsonl that no run or search marked
    as its own, is refused (BadInput) before anything in it is read or written."""
    where = f"--out '{out}'"
    results = out / "results.jsonl"
    if results.is_symlink():  # appending to it (a search does) would write outside the folder
        raise BadInput(f"{where}: its results.jsonl is a symlink; use another folder")
    mark = out / MANIFEST
    if mark.exists() or mark.is_symlink():
        try:
            data = json.loads(read_text(mark, f"{where}: {MANIFEST}", 1 << 16))
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict) or data.get("kind") not in ("run", "search"):
            raise BadInput(f"{where}: its {MANIFEST} is not lenscope's; use another folder")
        if data["kind"] != kind:
            raise BadInput(f"{where}: holds a `lenscope {data['kind']}`, not a {kind}; use another folder")
        if identity is not None and data.get("identity") != identity:
            raise BadInput(f"{where}: holds another search (from {str(data.get('made_from'))[:80]!r}); "
                           "use another folder")
        return True
    if results.exists():  # someone else's results.jsonl: never read as ours, nor replaced
        raise BadInput(f"{where}: holds a results.jsonl that no lenscope {kind} marked as its own; "
                       "use another folder")
    return False


def manifest(kind: str, identity: str | None = None, made_from: str = "") -> str:
    """The text of DIR/.lenscope-folder.json."""
    return json.dumps({"kind": kind, "identity": identity, "made_from": made_from}) + "\n"


def finished(out: Path, works: list[str]) -> tuple[dict[int, dict], int]:
    """The comparisons an earlier run finished that this run would make again, by index (the
    records of DIR/results.jsonl whose `work`, work_id of name, prompt, lenses, settings and
    model, is the one at that position), and how many lines were left out: a record of other
    work, or a damaged one, is run again."""
    path = out / "results.jsonl"
    if not path.exists() and not path.is_symlink():
        return {}, 0
    done, lines = {}, json_lines(path, f"--resume: {path}")
    for rec in lines:
        work = rec.get("work") if isinstance(rec, dict) else None
        if work in works and made_for(rec, work):
            done[works.index(work)] = rec
    return done, len(lines) - len(done)


def made_for(rec: Any, work: str) -> bool:
    """A results line a run wrote for `work`, whole: its `work` hash, its declaration
    (records.ResultLine), and for a conversation its transcript and turns, which the
    reports read. Anything else is made again."""
    if not isinstance(rec, dict) or rec.get("work") != work or problem(rec, ResultLine) is not None:
        return False
    if "conversation" in rec:
        try:
            from_json(rec["conversation"], "conversation")
        except BadInput:
            return False
    return True


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
        f = open(out / LOCK, "a+")  # noqa: SIM115 (held while the run writes)
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
