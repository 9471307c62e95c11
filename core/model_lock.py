"""The shared model's rules, in one place.

An engine's mlx-lm model is one object shared by every thread that runs it (the TUI's run
and its view workers, a search's rows, a lens preparing through the engine's probes).
While a region runs, lenscope patches it in place:

- `hooks.hooked` swaps the class of each block (and of each linear a weight lens edits) for
  a subclass that calls the lens hooks, and replaces `scaled_dot_product_attention` in every
  mlx-lm module the model's classes come from (shared by all models of that type);
- `comparison.head_on` wraps the final norm so a prefill computes the head only at the
  positions asked for.

Both restore what they found on exit. So one rule: every forward and every patched region
runs inside `with engine.lock:` (a `ModelLock`, reentrant: lenses prepare through the
engine's own probes while it is held). `guard` makes the rule checked rather than only
written: a guarded model's forward, `hooked` and `head_on` raise `Unlocked` on a thread
that does not hold the lock. A second model a lens loads (patching across models) shares
the first engine's lock, since both share the swapped attention function.

The UI thread never needs the lock: it tokenizes through `Engine.tokens`, which holds the
tokenizer alone.
"""

from __future__ import annotations

import threading
from typing import Any, Self


class Unlocked(RuntimeError):
    """The model ran, or was patched, on a thread that does not hold its engine's lock."""


class ModelLock:
    """A reentrant lock that knows which thread holds it."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._owner: int | None = None
        self._depth = 0

    def __enter__(self) -> Self:
        self._lock.acquire()
        self._owner = threading.get_ident()
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
        self._lock.release()

    def held(self) -> bool:
        return self._owner == threading.get_ident()


def guard(model: Any, lock: ModelLock | None = None) -> ModelLock:
    """The model's lock: from now on `model(...)` raises Unlocked unless the calling thread
    holds it. The lock belongs to the model object, so every engine made on one model shares
    it; `lock` is the one to use when the model has none yet (a second model a lens loads)."""
    cls = type(model)
    if getattr(cls, "_model_lock", None) is not None:
        return cls._model_lock
    lock = lock or ModelLock()
    base = cls

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        require(self)
        return base.__call__(self, *args, **kwargs)

    # the same name and module: hooks find mlx-lm's modules from the model's classes
    model.__class__ = type(base.__name__, (base,), {"__call__": __call__, "__module__": base.__module__,
                                                    "_model_lock": lock})
    return lock


def require(model: Any) -> None:
    """Raise Unlocked when `model` is guarded and this thread does not hold its lock."""
    lock = getattr(type(model), "_model_lock", None)
    if lock is not None and not lock.held():
        raise Unlocked(f"{type(model).__name__} ran or was patched outside its engine's lock "
                       "(`with engine.lock:`, core/model_lock.py)")
