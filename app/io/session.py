"""Sessions: prompt, marks, variants, settings and outputs as one plain JSON file.

Written atomically (temp file + rename next to the target) so a crash mid-save never
leaves a half-written session over a good one. Loading checks every field, so a corrupt
or hand-edited file is one BadInput line, never a traceback later in the TUI.
"""

from __future__ import annotations

import glob
import os
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lenscope.app.core import settings
from lenscope.app.errors import BadInput, user_path
from lenscope.app.io import datafile
from lenscope.lenses import directions
from lenscope.lenses.base import INT_LIMIT, Variant
from lenscope.lenses.spec import to_data, variants_from_data

FORMAT = "lenscope-session"
VERSION = 1
STALE_TEMP_S = 3600  # a temp older than this is a killed save's, even if its pid was reused


@dataclass
class Session:
    prompt: str = ""
    marks: list[int] = field(default_factory=list)
    variants: list[Variant] = field(default_factory=list)
    model: str | None = None
    seed: int = settings.SETTINGS["seed"].default
    temperature: float = settings.SETTINGS["temperature"].default
    max_tokens: int = settings.SETTINGS["max_tokens"].default
    result: dict[str, Any] | None = None  # RunResult.to_json() of the last run
    chat: bool = False  # the prompt is the user's text inside the model's chat template
    system: str | None = None  # the system message, in chat mode
    conversation: dict[str, Any] | None = None  # Conversation.to_json(): turns, marks, tracked concepts

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "version": VERSION, "model": self.model, "prompt": self.prompt,
            "marks": self.marks, "variants": to_data(self.variants)["variant"],
            "settings": {"seed": self.seed, "temperature": self.temperature, "max_tokens": self.max_tokens},
            "result": self.result, "chat": self.chat, "system": self.system,
        } | ({"conversation": self.conversation} if self.conversation is not None else {})


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


def save(session: Session, path: str | Path) -> Path:
    return atomic_write(path, datafile.dumps(session.to_json(), indent=1) + "\n")


def save_direction(path: str | Path, direction: np.ndarray) -> Path:
    """A direction file (.npy or .safetensors), written atomically like a session."""
    return atomic_write(path, directions.to_bytes(direction, Path(path).suffix))


def load(path: str | Path) -> Session:
    where = f"session '{path}'"
    data = datafile.read(path, where, "json")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BadInput(f"{where}: not a lenscope session (no \"format\": \"{FORMAT}\")")
    version = data.get("version", 0)
    if not _is_int(version):
        raise BadInput(f"{where}: 'version' must be an integer, got {version!r:.40}")
    if version > VERSION:
        raise BadInput(f"{where}: version {version} is newer than this lenscope reads ({VERSION})")
    marks = data.get("marks") or []
    if not isinstance(marks, list) or not all(_is_int(m) and 0 <= m <= INT_LIMIT for m in marks):
        raise BadInput(f"{where}: 'marks' must be numbers: a list of token indices")
    given = data.get("settings") or {}
    if not isinstance(given, dict):
        raise BadInput(f"{where}: 'settings' must be an object")
    values = {**settings.defaults(), **given}
    checked = {k: settings.check(k, values[k], f"{where} settings") for k in ("seed", "temperature", "max_tokens")}
    prompt = data.get("prompt", "")
    if not isinstance(prompt, str):
        raise BadInput(f"{where}: 'prompt' must be text")
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise BadInput(f"{where}: 'model' must be text")
    variants = variants_from_data({"variant": data["variants"]}, where) if data.get("variants") else []
    result = data.get("result")
    if result is not None:
        from lenscope.app.core.results import from_json

        if not (isinstance(result, dict) and isinstance(result.get("rows"), list)):
            raise BadInput(f"{where}: 'result' is not a comparison result")
        from_json(result, f"{where} result")  # check it now: the TUI replays it later
    chat, system = data.get("chat", False), data.get("system")
    if not isinstance(chat, bool):
        raise BadInput(f"{where}: 'chat' must be true or false")
    if system is not None and not isinstance(system, str):
        raise BadInput(f"{where}: 'system' must be text")
    conversation = data.get("conversation")
    if conversation is not None:
        from lenscope.app.chat.conversation import from_json as conversation_from_json

        conversation_from_json(conversation, f"{where} conversation")  # checked now, used later
    return Session(prompt=prompt, marks=marks, variants=variants, model=model, result=result, chat=chat,
                   system=system, conversation=conversation, **checked)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)
