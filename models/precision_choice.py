"""`--precision auto`, chosen once per (model, machine, BLAS) and kept.

Timing paths at every load made the choice, and so the weights and possibly the tokens,
depend on how busy the machine was. Now the first load measures (`precision.measure_paths`),
drops every float path that changes the model's greedy answer on a fixed question against
its stored weights, picks among the rest, and writes the choice with its timings to
`<cache>/precision.json`; later loads read it. `lenscope doctor` shows the entries;
`lenscope doctor --remeasure` forgets them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlx.core as mx
from mlx import nn
from mlx.utils import tree_unflatten

from lenscope.errors import BadInput, user_path
from lenscope.models import chat_template, precision
from lenscope.models.blas import blas_in_use
from lenscope.models.sources import cache_root

CHECK_TOKENS = 16  # greedy tokens a float path must reproduce
QUESTION = "What is the capital of France?"


def cache_file() -> Path:
    return cache_root() / "precision.json"


def machine_key() -> str:
    """This machine and the BLAS that answers its matrix products."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    blas = blas_in_use()
    library = "reference" if blas.get("reference") else os.path.basename(str(blas.get("library")))
    return f"{cpu} x{os.cpu_count()} | {library} | mlx {mx.__version__}"


def model_key(path: Path) -> str:
    """A model folder by its weight files' names, sizes and times (not hashed: 1 s a GB)."""
    h = hashlib.sha256(str(user_path(path, "model").resolve()).encode())
    for f in sorted(user_path(path, "model").glob("*.safetensors")):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def read_all() -> dict[str, Any]:
    try:
        data = json.loads(cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(entries: dict[str, Any]) -> bool:
    """Whole or not at all (a temp file, then a rename): two processes may load at once.
    False when the cache cannot be written."""
    target = cache_file()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, target)
        return True
    except OSError:  # a read-only cache (or one that is a file): measured again next time, the same way
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        return False


def forget() -> int:
    """Drop every kept choice; how many there were."""
    n = len(read_all())
    try:
        cache_file().unlink()
    except OSError:
        pass
    return n


def _question_ids(tokenizer: Any) -> list[int]:
    """The question in the model's chat template when it has one (an instruct model answers
    there), else as plain text; BOS once."""
    if getattr(tokenizer, "chat_template", None):
        try:
            text = chat_template.render(tokenizer, [{"role": "user", "content": QUESTION}])
            return list(tokenizer.encode(text, add_special_tokens=False))
        except BadInput:  # a template that fails on a plain question: the plain text
            pass
    return list(tokenizer.encode(QUESTION))


def _greedy(model: nn.Module, ids: list[int]) -> list[int]:
    from mlx_lm.generate import generate_step  # lazy: startup

    return [int(t) for t, _ in generate_step(mx.array(ids), model, max_tokens=CHECK_TOKENS,
                                            sampler=lambda x: mx.argmax(x, axis=-1))]


def keeps_answer(model: nn.Module, ids: list[int], dtype: str, reference: list[int]) -> bool:
    """Whether the model dequantized to `dtype` gives `reference`'s greedy tokens; the model
    is put back as stored afterwards (its quantized layers and parameters)."""
    stored = [(p, m) for p, m in model.named_modules() if isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding))]
    params = model.parameters()
    precision.to_float(model, dtype)
    try:
        return _greedy(model, ids) == reference
    finally:
        model.update_modules(tree_unflatten(stored))
        model.update(params)


def _still_there(model: str) -> bool:
    """A kept entry's model folder still exists (a hub id is kept)."""
    path = user_path(model, "model")
    return not path.is_absolute() or path.exists()


def choose(model: nn.Module, tokenizer: Any, path: Path, memory: int,
           say: Callable[[str], None] = lambda message: None) -> tuple[str, dict[str, float], str]:
    """(precision, timings, how it was chosen) for `auto` on the CPU: the kept choice for this
    model on this machine, else measured, checked and kept (`say`: each step, as it starts)."""
    key = f"{model_key(path)} | {machine_key()}"
    entries = read_all()
    entry = entries.get(key)
    if isinstance(entry, dict) and entry.get("choice") in ("native", *precision.DTYPES):
        measured = {k: float(v) for k, v in (entry.get("measured") or {}).items() if isinstance(v, (int, float))}
        return entry["choice"], measured, f"kept since {entry.get('when', '?')}"
    if any(isinstance(m, nn.QuantizedLinear) for _, m in model.layers[0].named_modules()):
        say("choosing a precision, once for this model and machine: timing the ways to run it")
    measured = precision.measure_paths(model, memory=memory)
    dropped: list[str] = []
    rounded = [n for n in ("bfloat16", "float16") if n in measured]  # float32 dequantizes exactly
    if rounded and tokenizer is not None:  # the stored weights' own answer, read only when checked
        ids = _question_ids(tokenizer)
        say(f"choosing a precision: the stored weights' answer ({CHECK_TOKENS} tokens)")
        reference = _greedy(model, ids)
        for name in rounded:
            say(f"choosing a precision: does {name} give the same answer?")
            if not keeps_answer(model, ids, name, reference):
                dropped.append(name)
                del measured[name]
    choice = precision.pick_precision("auto", "cpu", measured)
    when = time.strftime("%Y-%m-%d %H:%M")
    entries = {k: e for k, e in entries.items() if isinstance(e, dict) and _still_there(str(e.get("model", "")))}
    entries[key] = {"choice": choice, "measured": measured, "changes_answer": dropped, "when": when,
                    "model": str(path)}
    kept = _write(entries)
    how = "measured now" + (f"; {', '.join(dropped)} changed the answer" if dropped else "") + \
        ("" if kept else f"; not kept: {cache_file()} cannot be written")
    return choice, measured, how
