"""Writing the user's files: whole or not at all (`atomic_write`), refused in one line
before any work when the target cannot be written (`check_writable`)."""

from __future__ import annotations

import glob
import os
import secrets
import stat
import time
from pathlib import Path

import numpy as np

from lenscope.errors import BadInput, user_path
from lenscope.lenses import directions

STALE_TEMP_S = 3600  # a temp older than this is a killed save's, even if its pid was reused


def check_writable(path: str | Path, where: str) -> Path:
    """The real file a write to `path` lands on (symlinks followed), refused (BadInput)
    when it cannot be written: checked before any work, so none is wasted or half-saved."""
    if not str(path).strip():
        raise BadInput(f"{where}: empty path")
    try:
        target = Path(os.path.realpath(user_path(path, where)))
        if target.is_dir():
            raise BadInput(f"{where}: is a folder")
        if not target.parent.is_dir():
            raise BadInput(f"{where}: folder {target.parent} does not exist")
        if not os.access(target.parent, os.W_OK | os.X_OK):
            raise BadInput(f"{where}: folder {target.parent} is not writable")
    except (OSError, ValueError) as exc:
        raise BadInput(f"{where}: {exc}") from None
    return target


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write a whole file or nothing: a temp file beside the target, then rename.

    Through a symlink the link's target is replaced (the link stays); an existing file
    keeps its mode, a new one gets the umask's, as `open` would give it. Temps that a
    killed save left (ours: `.NAME.PID.RANDOM.tmp`) are removed on the next save."""
    p = user_path(path, f"'{path}'")
    target = check_writable(p, f"'{path}'")
    _remove_stale_temps(target)
    tmp = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    except OSError as exc:
        raise BadInput(f"'{path}': cannot write in {target.parent} ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            try:
                os.fchmod(f.fileno(), stat.S_IMODE(os.stat(target).st_mode))
            except FileNotFoundError:
                pass
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p


def _remove_stale_temps(target: Path) -> None:
    for name in glob.glob(f".{glob.escape(target.name)}.*.tmp", root_dir=target.parent):
        tmp = target.parent / name
        pid = name[len(target.name) + 2 : -len(".tmp")].split(".")[0]
        try:
            gone = pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid))
            if gone or time.time() - tmp.lstat().st_mtime > STALE_TEMP_S:
                tmp.unlink()
        except OSError:  # raced with its owner finishing, or not ours to remove
            pass


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs (another user's counts); an id no process can
    have (past the C long a PID is) does not."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def save_direction(path: str | Path, direction: np.ndarray) -> Path:
    """A direction file (.npy or .safetensors), written atomically like a session."""
    return atomic_write(path, directions.to_bytes(direction, Path(path).suffix))
