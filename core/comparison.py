"""A comparison's generation: baseline and lens rows in one batched decode.

Row 0 is the plain model, rows 1..K apply one lens stack each. All rows share the
prompt, one KV cache of batch K+1 and one prefill. With a temperature every row draws
the same Gumbel noise at each step (common random numbers), so rows differ only where
a lens changed the distribution. Knows nothing of Textual: the UI consumes `steps()`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

import mlx.core as mx
import numpy as np
from mlx import nn
from mlx_lm.models.cache import make_prompt_cache

from lenscope.core.hooks import HookState, hooked
from lenscope.core.model_lock import require
from lenscope.core.numerics import log_softmax, vocab_sum
from lenscope.core.prefixes import reusable
from lenscope.core.results import Alternative, RowResult, RunResult, Step
from lenscope.core.tensor_parallel import split_of
from lenscope.lenses.base import Variant

if TYPE_CHECKING:
    from lenscope.core.engine import Engine, Request

TOP_K = 5  # alternatives kept per step
PREFILL_CHUNK = 512  # prompt tokens per prefill forward: bounds the (rows, chunk, vocab) logits


class Comparison:
    """One run: iterate `steps()` to generate; `result` fills in as it goes.

    A step: the rows' logits go through their logit and temperature lenses (`_shape`), each
    row picks its token and the step's metrics are computed in one evaluation (`_choose`),
    the next forward starts, and each row's result takes its token and metrics (`_record`)."""

    def __init__(self, engine: Engine, request: Request, ids: list[int], marks: list[int], measure_marks: bool = True):
        self.engine = engine
        self.request = request
        self.ids = ids
        self.marks = marks
        self.measure_marks = measure_marks  # False where the model's attention cannot be hooked
        self.variants = [Variant("baseline")] + list(request.variants)
        tok = engine.token_text
        self.result = RunResult(
            model=engine.loaded.name, backend=engine.backend, precision=engine.loaded.precision, seed=request.seed,
            temperature=request.temperature, prompt=request.prompt, prompt_token_ids=ids,
            prompt_tokens=[tok(i) for i in ids], marked_token_indices=marks,
            rows=[RowResult(name=v.name, lens=v.normalized()) for v in self.variants],
        )
        self._cancel = False
        self.logits: list[np.ndarray] = []
        self.warnings: list[str] = []  # said before running: context overflow, lenses with nothing marked

    def cancel(self) -> None:
        self._cancel = True

    def run(self, on_step: Callable[[Step], None] | None = None) -> RunResult:
        for step in self.steps():
            if on_step:
                on_step(step)
        return self.result

    def steps(self, should_stop: Callable[[], bool] = lambda: False) -> Iterator[Step]:
        # The engine is this generation's from its first step to its last: a thread waiting to
        # run the model waits for the whole generation, not just one forward. Also released when
        # the generator is closed early (close() or garbage collection raise GeneratorExit here).
        with self.engine.lock:
            try:
                yield from self._generate(should_stop)
            finally:
                mx.synchronize()  # the forward started ahead of its step (async_eval) ends under the lock

    def _generate(self, should_stop: Callable[[], bool]) -> Iterator[Step]:
        eng, req, res = self.engine, self.request, self.result
        B, P = len(self.variants), len(self.ids)
        state = HookState([list(v.lenses) for v in self.variants], eng.n_layers, P, tuple(self.marks))
        state.mark_groups = [[m for m in g if m < P] for g in req.mark_groups]
        state.track_marks = state.track_marks and self.measure_marks
        keys = mx.random.split(mx.random.key(req.seed), max(req.max_tokens, 1))
        split = split_of(eng.model)  # a model split across processes: every process feeds rank 0's tokens
        cache = make_prompt_cache(eng.model)
        self._raw: list[list[int]] = [[] for _ in range(B)]  # chosen token per step, EOS included
        self._active = [True] * B

        def forward(tokens: mx.array, positions: mx.array) -> mx.array:
            # hooks live only while this forward's graph is built: a suspended generator
            # (API use, two comparisons interleaved) never leaves its lenses on the model
            state.begin(positions)
            with head_on(eng.model, slice(-1, None) if tokens.shape[1] > 1 else None):
                if state.idle:  # plain rows only: the stock model, no classes swapped
                    return eng.model(tokens, cache=cache)[:, -1, :]
                with hooked(eng.model, state):
                    return eng.model(tokens, cache=cache)[:, -1, :]

        logits = self._prefill(forward, cache, state)
        t1 = time.perf_counter()
        steps_done = 0
        for t in range(req.max_tokens):
            if self._cancel or should_stop():
                res.cancelled = True
                break
            logits, temps = self._shape(state, logits)
            tokens, metrics = _choose(logits, temps, keys[t], *_shares(state, state.track_marks))
            if split:
                tokens = split.rank0(tokens)
            if t + 1 < req.max_tokens:
                # start the next forward now and do the bookkeeping while it runs; rows that
                # stopped are fed their last token and ignored (rows never mix in a batch)
                next_logits = forward(mx.array(tokens)[:, None], mx.array([P + t]))
                mx.async_eval(next_logits)
            step_ids = self._record(t, tokens, metrics)
            steps_done = t + 1
            yield Step(t, step_ids, [None if i is None else eng.token_text(i) for i in step_ids])
            if not any(self._active) or t + 1 == req.max_tokens:
                break
            logits = next_logits
        decode_s = time.perf_counter() - t1 if req.max_tokens else 0.0
        res.timing["decode_s"] = decode_s
        res.timing["decode_tokens_per_s"] = steps_done / decode_s if decode_s > 0 else 0.0
        for row in res.rows:
            row.text = eng.tokenizer.decode(row.token_ids)

    def _prefill(self, forward: Callable[[mx.array, mx.array], mx.array], cache: list, state: HookState) -> mx.array:
        """Every row over the prompt, a chunk at a time; the last position's logits. With
        nothing inside the model (`state.idle`) the rows' prefills are one: read once, from the
        longest prompt the engine has read before on, then repeated for each row."""
        t0 = time.perf_counter()
        P, B = len(self.ids), len(self.variants)
        prefixes = self.engine.prefixes if state.idle and reusable(cache) else None
        start, logits = 0, None
        if prefixes is not None and (hit := prefixes.longest(self.ids)):
            start, prefix = hit
            prefixes.load(cache, prefix)
            logits = prefix.logits
            state.begin(mx.arange((P - 1) // PREFILL_CHUNK * PREFILL_CHUNK, P))  # as the last chunk would
        x = mx.array([self.ids] * (1 if prefixes is not None else B))
        for s in range(start, P, PREFILL_CHUNK):
            logits = forward(x[:, s : s + PREFILL_CHUNK], mx.arange(s, min(P, s + PREFILL_CHUNK)))
            mx.eval(logits)  # one chunk's (B, chunk, vocab) logits at a time, not all of them
        if prefixes is not None:
            if start < P:
                prefixes.store(self.ids, cache, logits)
            prefixes.repeat_rows(cache, B)
            logits = mx.repeat(logits, B, axis=0)
        self.result.timing["prefill_s"] = time.perf_counter() - t0
        self.result.timing["prefill_reused_tokens"] = start
        return logits

    def _shape(self, state: HookState, logits: mx.array) -> tuple[mx.array, list[float]]:
        """Each row's logits through its logit lenses, and its temperature through its
        temperature lenses (sampling schedules), each seeing that row's tokens so far."""
        B = len(self.variants)
        ctx = state.ctx(self.engine.n_layers)
        row_ctx = [replace(ctx, generated=tuple(self._raw[r])) for r in range(B)]
        logits = logits.astype(mx.float32)
        logit_hooks = [state.step_hooks("logits", r) for r in range(B)]
        if any(logit_hooks):
            logits = mx.concatenate([_chain(row_ctx[r], logit_hooks[r], logits[r : r + 1]) for r in range(B)], axis=0)
        if self.request.keep_logits:
            self.logits.append(np.array(logits))
        temps = [_chain(row_ctx[r], state.step_hooks("temperature", r), self.request.temperature) for r in range(B)]
        return logits, temps

    def _record(self, t: int, tokens: list[int], metrics: dict) -> list[int | None]:
        """Step `t` into each active row's result: its token (unless EOS), KL from the baseline
        while the two share a prefix, the first divergence, attention on the marks and the
        spans, the top alternatives; a row stops at a non-finite distribution or EOS. The
        token each row showed this step (None for a row that stopped)."""
        eng, raw, base = self.engine, self._raw, self._raw[0]
        step_ids: list[int | None] = [None] * len(self.variants)
        for r, row in enumerate(self.result.rows):
            if not self._active[r]:
                continue
            if not metrics["finite"][r]:
                row.finite = False
                self._active[r] = False
                continue
            tid = tokens[r]
            raw[r].append(tid)
            same_prefix = r == 0 or raw[r][:-1] == base[: len(raw[r]) - 1] and len(base) >= len(raw[r])
            row.kl_from_baseline.append(metrics["kl"][r] if same_prefix else None)
            if row.first_divergence is None and r > 0 and same_prefix and raw[r][-1] != base[t]:
                row.first_divergence = t
            if "marks" in metrics:
                row.attention_to_marks.append(metrics["marks"][r])
            if "groups" in metrics:
                row.attention_to_groups.append(metrics["groups"][r])
            row.top.append([Alternative(i, eng.token_text(i), p) for i, p in metrics["top"][r]])
            if self.request.stop_at_eos and tid in eng.eos_ids:
                row.finished = True
                self._active[r] = False
                continue
            row.token_ids.append(tid)
            row.tokens.append(eng.token_text(tid))
            step_ids[r] = tid
        return step_ids


class _Positions(nn.Module):
    def __init__(self, norm: nn.Module, positions: slice):
        super().__init__()
        self.norm = norm
        self.positions = positions

    def __call__(self, x: mx.array) -> mx.array:
        return self.norm(x[:, self.positions, :])


@contextmanager
def head_on(model: nn.Module, positions: slice | None):
    """The model's final norm, so its head, on `positions` only (None: all): a prefill needs
    the last position's logits, a teacher-forced score the continuation's, and the others'
    ((rows, tokens, vocab), a fifth of SmolLM2's prefill) are never computed. Everything
    after the final norm is per position in every family we load. Yields `pick`, which takes
    the model's output to `positions` (slicing it where the model had no final norm to wrap)."""
    require(model)
    inner = getattr(model, "model", None)
    norm = getattr(inner, "norm", None)
    if positions is None or not isinstance(norm, nn.Module):
        yield (lambda out: out) if positions is None else (lambda out: out[:, positions])
        return
    inner.norm = _Positions(norm, positions)
    try:
        yield lambda out: out
    finally:
        inner.norm = norm


def _chain(ctx, fns: list[Callable], x):
    """A row's logits or temperature through its hooks, in stack order."""
    for fn in fns:
        x = fn(ctx, x)
    return x


def _shares(state: HookState, marked: bool) -> tuple[mx.array | None, mx.array | None]:
    """The last forward's attention share on the marks (B,) and on each marked span (B, groups),
    means over layers and heads (every rank's heads, on a tensor-parallel model: one all-reduce)."""
    parts = [mx.mean(mx.stack(p), axis=0) if p else None
             for p in (state.mark_attention if marked else [], state.group_attention)]
    if not any(p is not None for p in parts):
        return None, None
    flat = state.head_mean(mx.concatenate([p.reshape(p.shape[0], -1) for p in parts if p is not None], axis=1))
    marks = flat[:, 0] if parts[0] is not None else None
    groups = flat[:, int(parts[0] is not None):] if parts[1] is not None else None
    return marks, groups


def _choose(logits: mx.array, temps: list[float], key: mx.array, marks: mx.array | None = None,
            groups: mx.array | None = None) -> tuple[list[int], dict]:
    """Pick each row's token (greedy, or Gumbel-max with shared noise) and its metrics."""
    logprobs = log_softmax(logits)
    greedy = mx.argmax(logprobs, axis=-1)
    if any(t > 0 for t in temps):
        gumbel = -mx.log(-mx.log(mx.random.uniform(low=1e-20, high=1.0, shape=logits.shape[-1:], key=key)))
        temp = mx.array([max(t, 1e-6) for t in temps])[:, None]
        sampled = mx.argmax(logprobs / temp + gumbel, axis=-1)
        chosen = mx.where(mx.array([t > 0 for t in temps]), sampled, greedy)
    else:
        chosen = greedy
    finite = mx.all(mx.isfinite(logits) | (logits == -mx.inf), axis=-1) & mx.any(mx.isfinite(logits), axis=-1)
    p0 = mx.exp(logprobs[0:1])
    kl = vocab_sum(mx.where(p0 > 0, p0 * (logprobs[0:1] - logprobs), 0.0))[:, 0]
    top_ids = mx.argpartition(-logprobs, kth=TOP_K - 1, axis=-1)[:, :TOP_K]
    top_lp = mx.take_along_axis(logprobs, top_ids, axis=-1)
    outs = [chosen, finite, kl, top_ids, top_lp]
    outs += [a for a in (marks, groups) if a is not None]
    mx.eval(outs)
    ids_np, lp_np = np.array(top_ids), np.array(top_lp)
    top = []
    for r in range(logits.shape[0]):
        order = np.argsort(-lp_np[r])
        top.append([(int(ids_np[r, j]), float(np.exp(lp_np[r, j]))) for j in order])
    metrics = {"finite": np.array(finite).tolist(), "kl": [max(0.0, float(v)) for v in np.array(kl)], "top": top}
    if marks is not None:
        metrics["marks"] = np.array(marks).tolist()
    if groups is not None:
        metrics["groups"] = np.array(groups).tolist()
    return np.array(chosen).tolist(), metrics
