"""Two threads on one engine: runs wait for each other instead of swapping
each other's hooks in and out, and hooks never install over hooks already installed."""

import sys
import threading

import mlx.core as mx
import numpy as np
import pytest

from lenscope.core.comparison import head_on
from lenscope.core.engine import Engine, Request
from lenscope.core.hooks import SDPA_NAME, HookState, ModelBusy, attention_modules, find_embedding, hooked
from lenscope.core.model_lock import Unlocked
from lenscope.lenses.spec import parse

PROMPT = "the cup is red. anna saw a big dog. question: what color is the cup? answer: the cup is"


def _blocks(model):
    emb = find_embedding(model)
    return ([emb] if emb is not None else []) + list(model.layers)


def _hook_picture(model):
    """Everything `hooked` touches: each block's class and own attributes, each attention module's SDPA."""
    return ([(type(b), sorted(k for k in b.__dict__ if k.startswith("_lens"))) for b in _blocks(model)],
            [getattr(m, SDPA_NAME) for m in attention_modules(model)])


def _assert_unhooked(model, classes):
    assert [type(b) for b in _blocks(model)] == classes
    assert not any("_lens_state" in b.__dict__ for _, b in model.named_modules())
    assert not any(isinstance(getattr(getattr(m, SDPA_NAME), "__self__", None), HookState)
                   for m in attention_modules(model))


def test_comparison_and_capture_in_two_threads(engine):
    model = engine.model
    classes = [type(b) for b in _blocks(model)]
    ids = engine.encode(PROMPT)
    marks = engine.tokens.marks_from_text(PROMPT, ids, ["red"])
    variants = parse("emphasis:strength=3")

    def compare():
        res = engine.compare(Request(PROMPT, variants, marks, max_tokens=6, stop_at_eos=False)).run()
        return [row.token_ids for row in res.rows]

    def capture():
        return engine.capture_attention(ids)

    want_plain = engine.compare(Request(PROMPT, max_tokens=6)).run().rows[0].token_ids
    want_compare, want_capture = compare(), capture()

    barrier = threading.Barrier(2, timeout=60)
    errors: list[BaseException] = []
    results: dict[str, list] = {"compare": [], "capture": []}

    def loop(name, call):
        try:
            barrier.wait()
            for _ in range(6):
                results[name].append(call())
        except BaseException as exc:
            errors.append(exc)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, so the runs really interleave
    try:
        threads = [threading.Thread(target=loop, args=("compare", compare)),
                   threading.Thread(target=loop, args=("capture", capture))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    finally:
        sys.setswitchinterval(switch)
    assert not any(t.is_alive() for t in threads), "a thread never finished (deadlock?)"
    assert not errors, [f"{type(e).__name__}: {e}" for e in errors]
    assert results["compare"] == [want_compare] * 6
    assert len(results["capture"]) == 6
    for got in results["capture"]:
        np.testing.assert_array_equal(got, want_capture)
    _assert_unhooked(model, classes)
    assert engine.compare(Request(PROMPT, max_tokens=6)).run().rows[0].token_ids == want_plain


def test_abandoned_generation_releases_the_lock(engine):
    run = engine.compare(Request(PROMPT, parse("emphasis:strength=3"), [2], max_tokens=8, stop_at_eos=False))
    steps = run.steps()
    next(steps)  # suspended mid-generation: the engine is this thread's until the generator ends
    done = threading.Event()
    other = threading.Thread(target=lambda: (engine.capture_attention(engine.encode(PROMPT)), done.set()))
    other.start()
    assert not done.wait(0.5)  # the other thread waits for the generation
    steps.close()
    other.join(timeout=60)
    assert done.is_set()


def test_hooked_refuses_to_install_over_another_state(engine, monkeypatch):
    model = engine.model
    ids = engine.encode(PROMPT)
    classes = [type(b) for b in _blocks(model)]
    outer = HookState([[]], engine.n_layers, len(ids))
    outer.record_layers = {0}
    with engine.lock, hooked(model, outer):
        inside = _hook_picture(model)
        inner = HookState([parse("emphasis:strength=3")[0].lenses], engine.n_layers, len(ids), (2,))
        with pytest.raises(ModelBusy, match="already hooked by another run"), hooked(model, inner):
            pytest.fail("installed over the outer hooks")
        assert isinstance(ModelBusy("x"), RuntimeError)
        assert _hook_picture(model) == inside  # the refusal touched nothing
        outer.begin(mx.arange(len(ids)))
        model(mx.array([ids]))
        assert 0 in outer.recorded  # the outer hooks still run
    _assert_unhooked(model, classes)

    # an attention function another run swapped in (the module is shared by every model of its type)
    other = HookState([[]], engine.n_layers, len(ids))
    module = attention_modules(model)[0]
    monkeypatch.setattr(module, SDPA_NAME, other.attention)
    before = _hook_picture(model)
    with engine.lock, pytest.raises(ModelBusy, match="already hooked by another run"), \
            hooked(model, HookState([[]], engine.n_layers, len(ids))):
        pass
    assert _hook_picture(model) == before
    monkeypatch.undo()
    _assert_unhooked(model, classes)


def test_the_model_runs_and_is_patched_only_under_its_lock(engine):
    """The rule of core/model_lock.py, checked: a forward, hooks and the head wrapper outside
    `with engine.lock:` raise, on this thread and on a thread beside one that holds it."""
    ids = mx.array([engine.encode(PROMPT)])
    state = HookState([[]], engine.n_layers, ids.shape[1])
    with pytest.raises(Unlocked):
        engine.model(ids)
    with pytest.raises(Unlocked), hooked(engine.model, state):
        pass
    with pytest.raises(Unlocked), head_on(engine.model, slice(-1, None)):
        pass
    _assert_unhooked(engine.model, [type(b) for b in _blocks(engine.model)])
    seen = []
    with engine.lock:
        assert engine.model(ids).shape[1] == ids.shape[1]  # held: it runs (reentrant below)
        with engine.lock, head_on(engine.model, slice(-1, None)):
            assert engine.model(ids).shape[1] == 1
        other = threading.Thread(target=lambda: seen.append(_raises(lambda: engine.model(ids))))
        other.start()
        other.join(timeout=60)
    assert seen == [True]  # another thread is refused while this one holds the lock
    assert Engine(engine.loaded).lock is engine.lock  # the lock is the model's: a second engine shares it


def _raises(fn) -> bool:
    try:
        fn()
    except Unlocked:
        return True
    return False
