"""Experiment files (`lenscope run EXPERIMENT.toml`), checked whole without a model: `load`
reads every comparison, lens spec and setting into plain data (a conversation's turns
too), and `outputs` lists every file a run of it writes.

An experiment file holds optional top-level `model` and `[defaults]`, and one
`[[comparison]]` table per comparison with the options of `generate`:

    [defaults]
    max_tokens = 24
    [[comparison]]
    name = "recall"
    prompt = "the key is blue. ... answer: the key is"
    mark = ["blue"]
    lens = ["emphasis:strength=3", "lenses/focus.toml"]   # files relative to this file
"""


from __future__ import annotations

from pathlib import Path
from typing import Any

from lenscope.batch.scores import Score
from lenscope.chat import templates as chat
from lenscope.chat.conversation import MAX_TURNS, MODES
from lenscope.core import settings
from lenscope.errors import BadInput
from lenscope.lenses.spec import is_lens_file, parse
from lenscope.reports.conversation import CHARTS
from lenscope.storage import datafile

TOP_KEYS = {"model", "defaults", "comparison"}
KEYS = {"name", "prompt", "mark", "mark_tokens", "lens", "chat", "system", *settings.SETTINGS}
TURN_KEYS = {"turns", "track", "check", "mode", "keep"}  # a conversation (chat/conversation.py)
REPORTS = ("results.jsonl", "report.md", "report.html")


def load(path: str | Path) -> dict[str, Any]:
    """The whole experiment, checked: nothing needs a model or writes a file."""

    where = f"experiment '{path}'"
    data = datafile.read(path, where, "toml")
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise BadInput(f"{where}: unknown key '{min(unknown)}' (keys: {', '.join(sorted(TOP_KEYS))})")
    model = data.get("model")
    if model is not None and not (isinstance(model, str) and model.strip()):
        raise BadInput(f"{where}: 'model' must be a model folder or hub id (text)")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise BadInput(f"{where}: 'defaults' must be a table ([defaults])")
    comparisons = data.get("comparison")
    if not isinstance(comparisons, list) or not comparisons:
        raise BadInput(f"{where}: needs at least one [[comparison]] table")
    out = []
    for i, c in enumerate(comparisons):
        cwhere = f"{where} comparison {i + 1}"
        if not isinstance(c, dict):
            raise BadInput(f"{cwhere}: must be a table ([[comparison]])")
        merged = {**defaults, **c}
        unknown = set(merged) - KEYS - TURN_KEYS
        if unknown:
            raise BadInput(f"{cwhere}: unknown key '{min(unknown)}' (keys: {', '.join(sorted(KEYS | TURN_KEYS))})")
        name = merged.get("name", f"comparison {i + 1}")
        if not isinstance(name, str) or not name.strip():
            raise BadInput(f"{cwhere}: 'name' must be non-empty text")
        if "turns" in c:
            out.append(_conversation(path, name, merged, cwhere))
            continue
        extra = set(merged) & TURN_KEYS - set(defaults)
        if extra:
            raise BadInput(f"{cwhere}: '{min(extra)}' is for conversations (a comparison with 'turns')")
        prompt = merged.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise BadInput(f"{cwhere}: 'prompt' must be non-empty text")
        marks = _texts(merged.get("mark", []), "mark", cwhere)
        if any(not m for m in marks):
            raise BadInput(f"{cwhere}: 'mark' texts must not be empty")
        mark_tokens = merged.get("mark_tokens", [])
        mark_tokens = [mark_tokens] if _is_int(mark_tokens) else mark_tokens
        if not isinstance(mark_tokens, list) or not all(_is_int(t) for t in mark_tokens):
            raise BadInput(f"{cwhere}: 'mark_tokens' must be a list of token indices (integers)")
        specs, variants = _lenses(path, merged, cwhere)
        use_chat, system = chat.check_options(merged.get("chat", False), merged.get("system"), cwhere)
        out.append({"name": name, "prompt": prompt, "mark": marks, "mark_tokens": mark_tokens, "lens": specs,
                    "variants": variants, "chat": use_chat, "system": system, **settings.check_all(merged, cwhere)})
    return {"model": model, "comparisons": out}


def _conversation(path: str | Path, name: str, merged: dict[str, Any], where: str) -> dict[str, Any]:
    """A comparison with `turns`: a conversation, each user turn answered by every row.

        turns = ["Always answer in capital letters. What is 2+2?", "Name a fruit.", ...]
        mark = ["capital letters"]      # marked where they occur in the system and user messages
        track = ["atexit"]              # tracked: every occurrence, the model's replies included
        check = {kind = "regex", pattern = "^[^a-z]*$"}   # a score (batch/scores.py): > 0 passes
        mode = "keep"                   # or "branches"; keep = 0: the row whose reply is kept
    """
    turns = _texts(merged["turns"], "turns", where)
    if not turns or any(not t.strip() for t in turns):
        raise BadInput(f"{where}: 'turns' must be a non-empty list of user messages (non-empty texts)")
    if len(turns) > MAX_TURNS:
        raise BadInput(f"{where}: {len(turns)} turns; a conversation holds at most {MAX_TURNS}")
    if "prompt" in merged or "mark_tokens" in merged:
        raise BadInput(f"{where}: a conversation takes 'turns', not 'prompt' or 'mark_tokens'")
    marks = _texts(merged.get("mark", []), "mark", where)
    track = _texts(merged.get("track", []), "track", where)
    if any(not m for m in marks):
        raise BadInput(f"{where}: 'mark' texts must not be empty")
    if any(not t.split() for t in track):
        raise BadInput(f"{where}: 'track' texts must not be empty")
    specs, variants = _lenses(path, merged, where)
    mode = merged.get("mode", "keep")
    if mode not in MODES:
        raise BadInput(f"{where}: 'mode' must be one of {', '.join(MODES)}")
    keep = merged.get("keep", 0)
    if not _is_int(keep) or not 0 <= keep <= len(variants):
        raise BadInput(f"{where}: 'keep' must be a row number, 0 (the baseline) to {len(variants)}")
    system = merged.get("system")
    if system is not None and not isinstance(system, str):
        raise BadInput(f"{where}: 'system' must be text")
    if merged.get("chat", True) is not True:
        raise BadInput(f"{where}: a conversation always uses the chat template ('chat' cannot be false)")
    check = Score.from_data(merged["check"], where) if "check" in merged else None
    return {"name": name, "turns": turns, "mark": marks, "track": track, "lens": specs, "variants": variants,
            "mode": mode, "keep": keep, "system": system, "check": check, "chat": True,
            **settings.check_all(merged, where)}


def _lenses(path: str | Path, merged: dict[str, Any], where: str) -> tuple[list[str], list]:
    """A comparison's `lens` specs (files relative to the experiment) and the variants they make."""
    specs = [str(Path(path).parent / s) if is_lens_file(str(Path(path).parent / s)) else s
             for s in _texts(merged.get("lens", []), "lens", where)]
    try:
        return specs, [v for s in specs for v in parse(s)]
    except BadInput as exc:
        raise BadInput(f"{where}: {exc}") from None


def _texts(value: Any, key: str, where: str) -> list[str]:
    """A text or a list of texts."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise BadInput(f"{where}: '{key}' must be text or a list of texts")
    return values


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def outputs(experiment: dict[str, Any]) -> list[str]:
    """Every file a run of `experiment` writes, relative to its folder."""
    comparisons = experiment["comparisons"]
    svgs = [svg_name(i, r) for i, c in enumerate(comparisons) if c["capture_attention"] and "turns" not in c
            for r in range(1 + len(c["variants"]))]
    charts = list(CHARTS) if sum("turns" in c for c in comparisons) >= 2 else []  # over several conversations
    return [*svgs, *charts, *REPORTS]


def svg_name(i: int, r: int) -> str:
    return f"heatmaps/{i + 1:03d}-{r}.svg"
