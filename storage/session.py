"""Sessions: prompt, marks, variants, settings and outputs as one plain JSON file.

Written atomically (`files.atomic_write`) so a crash mid-save never leaves a
half-written session over a good one. Loading checks every field, so a corrupt
or hand-edited file is one BadInput line, never a traceback later in the TUI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lenscope.chat.conversation import from_json as conversation_from_json
from lenscope.core import settings
from lenscope.core.results import RunResult, from_json
from lenscope.errors import BadInput, user_path
from lenscope.lenses.base import Variant
from lenscope.lenses.params import INT_LIMIT
from lenscope.lenses.spec import to_data, variants_from_data
from lenscope.storage import datafile
from lenscope.storage.files import atomic_write

FORMAT = "lenscope-session"
VERSION = 1


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

    def run_result(self) -> RunResult | None:
        """The saved result as the runs make it (checked when the session was loaded)."""
        return from_json(self.result, "session result") if self.result else None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "version": VERSION, "model": self.model, "prompt": self.prompt,
            "marks": self.marks, "variants": to_data(self.variants)["variant"],
            "settings": {"seed": self.seed, "temperature": self.temperature, "max_tokens": self.max_tokens},
            "result": self.result, "chat": self.chat, "system": self.system,
        } | ({"conversation": self.conversation} if self.conversation is not None else {})


def save(session: Session, path: str | Path) -> Path:
    return atomic_write(path, datafile.dumps(session.to_json(), indent=1) + "\n")


def load(path: str | Path) -> Session:
    """A session with every field checked before any of it is used (one BadInput line)."""
    where = f"session '{path}'"
    if user_path(path, where).is_dir():
        raise BadInput(f"{where}: is a folder")
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
        conversation_from_json(conversation, f"{where} conversation")  # checked now, used later
    s = Session(prompt=prompt, marks=[int(m) for m in marks], variants=variants, model=model, result=result,
                chat=chat, system=system, conversation=conversation, **checked)
    # text the screen cannot draw or write back (a lone surrogate) fails here, not mid-render
    try:
        json.dumps(s.to_json(), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadInput(f"{where}: text that cannot be written back ({exc.reason})") from None
    return s


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)
