"""The comparison engine: baseline and lens rows in one batched generation.

Row 0 is the plain model, rows 1..K apply one lens stack each. All rows share the
prompt, one KV cache of batch K+1 and one prefill. With a temperature every row draws
the same Gumbel noise at each step (common random numbers), so rows differ only where
a lens changed the distribution. Knows nothing of Textual: the UI consumes `steps()`.

One thread at a time runs the model: hooks swap the classes of the shared model's
blocks, so every region that hooks or runs it holds `Engine.lock` (reentrant: lenses
prepare through the engine's own probes while it is held).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Sequence

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx_lm.models.cache import make_prompt_cache

from lenscope.app.core import budget
from lenscope.app.core.hooks import HookState, check_hookable, collect, find_embedding, hooked
from lenscope.app.core.marks import overlapping
from lenscope.app.core.results import Alternative, RowResult, RunResult, Step
from lenscope.app.core.settings import SETTINGS
from lenscope.app.errors import BadInput
from lenscope.app.models import LoadedModel
from lenscope.lenses.base import Lens, Variant

TOP_K = 5
PREFILL_CHUNK = 512
CAPTURE_MAX_BYTES = 1 << 30


@dataclass
class Request:
    prompt: str
    variants: Sequence[Variant] = ()
    marks: Sequence[int] = ()
    max_tokens: int = SETTINGS["max_tokens"].default
    temperature: float = SETTINGS["temperature"].default
    seed: int = SETTINGS["seed"].default
    stop_at_eos: bool = True
    keep_logits: bool = False  # keep each step's (rows, vocab) logits, for tests and analysis
    prompt_ids: list[int] | None = None  # token ids to start from instead of encoding `prompt` (tree branches)
    mark_groups: Sequence[Sequence[int]] = ()  # marked spans measured apart (a conversation's fade chart)


class Engine:
    """Runs one model with lenses; also the `Probe` lenses read while they prepare."""

    def __init__(self, loaded: LoadedModel):
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        inner = getattr(self.model, "model", None)
        if any(layer is None for layer in self.model.layers) or getattr(inner, "pipeline_size", 1) > 1:
            # mlx-lm's pipeline sharding leaves each process a slice of the layers
            raise BadInput("this model is pipeline-sharded across processes (mlx-lm sharded_load): lenscope needs "
                           "every layer in each process (hooks, captures, the logit lens); under mlx.launch each "
                           "rank loads the whole model instead")
        self.n_layers = len(self.model.layers)
        self.eos_ids = set(getattr(self.tokenizer, "eos_token_ids", None) or [])
        self._token_texts: dict[int, str] = {}
        self._module_paths: dict[int, str] | None = None
        self._others: dict[str, Engine] = {}
        # taken around every forward and every hooked region: a second thread (the TUI's view
        # workers next to a run) waits instead of installing its hooks over this one's (issue 20)
        self.lock = threading.RLock()

    @property
    def backend(self) -> str:
        return "gpu" if mx.default_device() == mx.gpu else "cpu"

    # -- tokens ------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        # a chat-templated text already starts with the BOS token: do not add a second (as mlx_lm does)
        bos = getattr(self.tokenizer, "bos_token", None)
        if bos and text.startswith(bos):
            return list(self.tokenizer.encode(text, add_special_tokens=False))
        return list(self.tokenizer.encode(text))

    def token_text(self, token_id: int) -> str:
        text = self._token_texts.get(token_id)
        if text is None:  # decoding is slow next to a small model's step: cache per id
            text = self._token_texts[token_id] = self.tokenizer.decode([int(token_id)])
        return text

    def token_spans(self, prompt: str, ids: list[int]) -> list[tuple[int, int]]:
        """Character span of each prompt token (empty for special tokens)."""
        hf = getattr(self.tokenizer, "_tokenizer", None)
        try:
            enc = hf(prompt, return_offsets_mapping=True)
            if list(enc["input_ids"]) == ids:
                return [tuple(o) for o in enc["offset_mapping"]]
        except Exception:  # slow tokenizers have no offsets: decode prefixes instead
            pass
        spans, prev = [], 0
        for i in range(len(ids)):
            end = len(self.tokenizer.decode(ids[: i + 1]))
            spans.append((prev, end))
            prev = end
        return spans

    def marks_from_text(self, prompt: str, ids: list[int], texts: Sequence[str],
                        region: tuple[int, int] | None = None) -> list[int]:
        """Every prompt token overlapping each occurrence of each text (within `region`, the
        user's own text in a chat template, when given)."""
        spans = self.token_spans(prompt, ids)
        lo, hi = region or (0, len(prompt))
        marked: set[int] = set()
        for text in texts:
            if not text:
                raise BadInput("--mark: empty text")
            hits = [i for i in range(lo, hi - len(text) + 1) if prompt.startswith(text, i)]
            if not hits:
                raise BadInput(f"--mark '{text}': does not occur in the prompt")
            for start in hits:
                marked |= overlapping(spans, start, start + len(text))
        return sorted(marked)

    def check_marks(self, indices: Sequence[int], n_prompt: int) -> list[int]:
        bad = [i for i in indices if not 0 <= i < n_prompt]
        if bad:
            raise BadInput(f"--mark-tokens: index {bad[0]} is outside the prompt (0..{n_prompt - 1})")
        return sorted(set(indices))

    @property
    def n_heads(self) -> int:
        return _n_heads(self.model)

    @property
    def vocab_size(self) -> int:
        return int(self.unembedding_matrix().shape[0])

    @property
    def model(self):
        return self.loaded.model

    @property
    def hidden_size(self) -> int:
        return int(self.embedding_matrix().shape[-1])

    def embedding_matrix(self) -> mx.array:
        emb = find_embedding(self.model)
        if isinstance(emb, nn.QuantizedEmbedding):
            return mx.dequantize(emb.weight, emb.scales, emb.biases, emb.group_size, emb.bits)
        return emb.weight

    def unembedding_matrix(self) -> mx.array:
        head = getattr(self.model, "lm_head", None)
        if head is None:
            return self.embedding_matrix()
        if isinstance(head, nn.QuantizedLinear):
            return mx.dequantize(head.weight, head.scales, head.biases, head.group_size, head.bits)
        return head.weight

    def linear(self, layer: int, name: str) -> tuple[str, nn.Module] | None:
        module = self.model.layers[layer]
        for part in name.split("."):
            module = getattr(module, part, None)
        if not isinstance(module, (nn.Linear, nn.QuantizedLinear)):
            return None
        if self._module_paths is None:  # module identities never change; hooks swap classes only
            self._module_paths = {id(m): p for p, m in self.model.named_modules()}
        return self._module_paths[id(module)], module

    def other_model(self, spec: str) -> Engine:
        """Another model for a lens to read (patching across models), loaded once per engine."""
        with self.lock:
            if spec not in self._others:
                from lenscope.app import models

                other = Engine(models.load(spec))
                # one lock for both: models of one type share the attention function hooks swap
                other.lock = self.lock
                self._others[spec] = other
            return self._others[spec]

    # -- probes for lenses -----------------------------------------------------------------
    def hidden_states(self, ids: list[int], layers: Sequence[int]) -> dict[int, mx.array]:
        """Residual stream (L, D) after each requested block (-1: embeddings), plain model."""
        state = HookState([[]], self.n_layers, len(ids))
        state.record_layers = set(layers)
        with self.lock, hooked(self.model, state):
            state.begin(mx.arange(len(ids)))
            self.model(mx.array([ids]))
            mx.eval(list(state.recorded.values()))
        return {k: v[0] for k, v in state.recorded.items()}

    def check_fit(self, variants: Sequence[Variant]) -> None:
        """Every lens fits this model (its layers and heads exist); BadInput names the first that does not."""
        for v in variants:
            if problem := v.fit_problem(self.n_layers, self.n_heads):
                raise BadInput(problem)

    def prepare(self, variants: Sequence[Variant], ids: Sequence[int] = (), marks: Sequence[int] = ()) -> None:
        """Each lens's prepare, with this engine as its probe and the prompt it will run on;
        every entry point that runs lenses comes through here, so the fit is checked here."""
        self.check_fit(variants)
        for v in variants:
            for lens in v.lenses:
                lens.ensure_prepared(self, list(ids), list(marks))

    # -- generation --------------------------------------------------------------------
    def compare(self, request: Request, capture: bool = False) -> "Comparison":
        """Validate and prepare a run; refuses (BadInput) what cannot fit before anything runs.

        `capture`: the caller will capture attention over each row afterwards, so its size
        is checked now rather than after generating."""
        if not request.prompt.strip() and not request.prompt_ids:
            raise BadInput("prompt: empty")
        ids = list(request.prompt_ids) if request.prompt_ids else self.encode(request.prompt)
        marks = self.check_marks(request.marks, len(ids))
        rows = 1 + len(request.variants)
        warnings = budget.check_comparison(self.model, rows, len(ids), request.max_tokens, PREFILL_CHUNK)
        if capture:
            self.check_capture(len(ids) + request.max_tokens)
        if not marks:
            idle = sorted({lens.kind for v in request.variants for lens in v.lenses if lens.needs_marks()})
            if idle:
                warnings.append(f"{', '.join(idle)}: nothing is marked, so {'it acts' if len(idle) == 1 else 'they act'}"
                                " on nothing (mark tokens with --mark, or space in the TUI)")
        self.prepare(request.variants, ids, marks)
        hooks = collect([list(v.lenses) for v in request.variants], self.n_layers)  # checks layers now
        if marks or hooks["attention_bias"] or hooks["attention_scores"]:
            check_hookable(self.model)
        comparison = Comparison(self, request, ids, marks)
        comparison.warnings = warnings
        return comparison

    def check_capture(self, n_tokens: int, layers: int | None = None) -> None:
        size = budget.capture_bytes(budget.model_sizes(self.model), n_tokens, layers)
        if size > CAPTURE_MAX_BYTES:
            n = self.n_layers if layers is None else layers
            raise BadInput(f"attention capture of {n_tokens} tokens x {n} layers needs {budget.gib(size)} per row "
                           f"(limit {budget.gib(CAPTURE_MAX_BYTES)}); use a shorter prompt, fewer tokens or one --layer")

    def capture_attention(self, ids: list[int], lenses: Sequence[Lens] = (), prompt_len: int | None = None,
                          marks: Sequence[int] = (), layers: Sequence[int] | None = None) -> np.ndarray:
        """Attention probabilities (layers, heads, L, L) over `ids`, with `lenses` applied.

        One extra forward, never during decoding: the fused kernel returns no weights."""
        return self.inspect(ids, lenses, prompt_len, marks, layers, hidden=False)[0]

    def inspect(self, ids: list[int], lenses: Sequence[Lens] = (), prompt_len: int | None = None,
                marks: Sequence[int] = (), layers: Sequence[int] | None = None,
                hidden: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """One forward over `ids` with `lenses` applied, capturing what the views read:
        attention (layers, heads, L, L) and, with `hidden`, the residual stream
        (n_layers + 1, L, D): the embeddings, then the output of each block."""
        check_hookable(self.model)
        layers = list(range(self.n_layers)) if layers is None else list(layers)
        self.check_capture(len(ids), len(layers))
        with self.lock:  # from prepare on: lenses run as prepared for this prompt
            name = "+".join(lens.label() for lens in lenses) or "baseline"  # as a spec names its variant
            self.prepare([Variant(name, list(lenses))], ids[: prompt_len or len(ids)], marks)
            state = HookState([list(lenses)], self.n_layers, prompt_len or len(ids), tuple(marks))
            state.track_marks = False
            state.capture = True
            if hidden:
                state.record_layers = set(range(-1, self.n_layers))
            with hooked(self.model, state):
                state.begin(mx.arange(len(ids)))
                self.model(mx.array([ids]))
                mx.eval(list(state.captured.values()) + list(state.recorded.values()))
        attention = np.stack([np.array(state.captured[i][0]) for i in layers])
        states = np.stack([np.array(state.recorded[i][0].astype(mx.float32)) for i in range(-1, self.n_layers)]) \
            if hidden else None
        return attention, states

    def decode_hidden(self, h: mx.array) -> mx.array:
        """Logits the model would give if decoding stopped at hidden state(s) `h` (..., D):
        its final norm and unembedding (the logit lens). At the last block it is the model's output."""
        inner = getattr(self.model, "model", self.model)
        norm = getattr(inner, "norm", None)
        if norm is not None:
            h = norm(h)
        head = getattr(self.model, "lm_head", None)
        return head(h) if head is not None else find_embedding(self.model).as_linear(h)


def _n_heads(model) -> int:
    attn = getattr(model.layers[0], "self_attn", None)
    for name in ("n_heads", "num_heads", "num_attention_heads"):
        if attn is not None and hasattr(attn, name):
            return int(getattr(attn, name))
    return int(getattr(model.args, "num_attention_heads"))


class Comparison:
    """One run: iterate `steps()` to generate; `result` fills in as it goes."""

    def __init__(self, engine: Engine, request: Request, ids: list[int], marks: list[int]):
        self.engine = engine
        self.request = request
        self.ids = ids
        self.marks = marks
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
        rows = [list(v.lenses) for v in self.variants]
        state = HookState(rows, eng.n_layers, P, tuple(self.marks))
        state.mark_groups = [[m for m in g if m < P] for g in req.mark_groups]
        logit_hooks = [state.step_hooks("logits", r) for r in range(B)]
        temp_hooks = [state.step_hooks("temperature", r) for r in range(B)]
        keys = mx.random.split(mx.random.key(req.seed), max(req.max_tokens, 1))
        cache = make_prompt_cache(eng.model)
        raw: list[list[int]] = [[] for _ in range(B)]  # chosen token per step, EOS included
        active = [True] * B

        def forward(tokens: mx.array, positions: mx.array) -> mx.array:
            # hooks live only while this forward's graph is built: a suspended generator
            # (API use, two comparisons interleaved) never leaves its lenses on the model
            state.begin(positions)
            if state.idle:  # plain rows only: the stock model, no classes swapped
                return eng.model(tokens, cache=cache)[:, -1, :]
            with hooked(eng.model, state):
                return eng.model(tokens, cache=cache)[:, -1, :]

        t0 = time.perf_counter()
        x = mx.array([self.ids] * B)
        for start in range(0, P, PREFILL_CHUNK):
            logits = forward(x[:, start : start + PREFILL_CHUNK], mx.arange(start, min(P, start + PREFILL_CHUNK)))
            mx.eval(logits)  # one chunk's (B, chunk, vocab) logits at a time, not all of them
        res.timing["prefill_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        steps_done = 0
        for t in range(req.max_tokens):
            if self._cancel or should_stop():
                res.cancelled = True
                break
            ctx = state.ctx(eng.n_layers)
            logits = logits.astype(mx.float32)
            row_ctx = [replace(ctx, generated=tuple(raw[r])) for r in range(B)]
            if any(logit_hooks):
                logits = mx.concatenate([_chain(row_ctx[r], logit_hooks[r], logits[r : r + 1]) for r in range(B)],
                                        axis=0)
            if req.keep_logits:
                self.logits.append(np.array(logits))
            temps = [_chain(row_ctx[r], temp_hooks[r], req.temperature) for r in range(B)]
            tokens, metrics = _choose(logits, temps, keys[t], len(self.marks) > 0 and state.mark_attention,
                                      state.group_attention)
            if t + 1 < req.max_tokens:
                # start the next forward now and do the bookkeeping while it runs; rows that
                # stopped are fed their last token and ignored (rows never mix in a batch)
                next_logits = forward(mx.array(tokens)[:, None], mx.array([P + t]))
                mx.async_eval(next_logits)
            step_ids: list[int | None] = [None] * B
            for r in range(B):
                if not active[r]:
                    continue
                row = res.rows[r]
                if not metrics["finite"][r]:
                    row.finite = False
                    active[r] = False
                    continue
                tid = tokens[r]
                raw[r].append(tid)
                same_prefix = r == 0 or raw[r][:-1] == raw[0][: len(raw[r]) - 1] and len(raw[0]) >= len(raw[r])
                row.kl_from_baseline.append(metrics["kl"][r] if same_prefix else None)
                if row.first_divergence is None and r > 0 and same_prefix and raw[r][-1] != raw[0][t]:
                    row.first_divergence = t
                if self.marks:
                    row.attention_to_marks.append(metrics["marks"][r])
                if "groups" in metrics:
                    row.attention_to_groups.append(metrics["groups"][r])
                row.top.append([Alternative(i, eng.token_text(i), p) for i, p in metrics["top"][r]])
                if req.stop_at_eos and tid in eng.eos_ids:
                    row.finished = True
                    active[r] = False
                    continue
                row.token_ids.append(tid)
                row.tokens.append(eng.token_text(tid))
                step_ids[r] = tid
            steps_done = t + 1
            yield Step(t, step_ids, [None if i is None else eng.token_text(i) for i in step_ids])
            if not any(active) or t + 1 == req.max_tokens:
                break
            logits = next_logits
        decode_s = time.perf_counter() - t1 if req.max_tokens else 0.0
        res.timing["decode_s"] = decode_s
        res.timing["decode_tokens_per_s"] = steps_done / decode_s if decode_s > 0 else 0.0
        for row in res.rows:
            row.text = eng.tokenizer.decode(row.token_ids)


def _chain(ctx, fns: list[Callable], x):
    """A row's logits or temperature through its hooks, in stack order."""
    for fn in fns:
        x = fn(ctx, x)
    return x


def _choose(logits: mx.array, temps: list[float], key: mx.array, mark_parts, group_parts=()) -> tuple[list[int], dict]:
    """Pick each row's token (greedy, or Gumbel-max with shared noise) and its metrics."""
    logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
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
    kl = mx.sum(mx.where(p0 > 0, p0 * (logprobs[0:1] - logprobs), 0.0), axis=-1)
    top_ids = mx.argpartition(-logprobs, kth=TOP_K - 1, axis=-1)[:, :TOP_K]
    top_lp = mx.take_along_axis(logprobs, top_ids, axis=-1)
    outs = [chosen, finite, kl, top_ids, top_lp]
    if mark_parts:
        outs.append(mx.mean(mx.stack(mark_parts), axis=0))
    if group_parts:
        outs.append(mx.mean(mx.stack(group_parts), axis=0))  # (B, groups), mean over layers
    mx.eval(outs)
    ids_np, lp_np = np.array(top_ids), np.array(top_lp)
    top = []
    for r in range(logits.shape[0]):
        order = np.argsort(-lp_np[r])
        top.append([(int(ids_np[r, j]), float(np.exp(lp_np[r, j]))) for j in order])
    metrics = {"finite": np.array(finite).tolist(), "kl": [max(0.0, float(v)) for v in np.array(kl)], "top": top}
    if mark_parts:
        metrics["marks"] = np.array(outs[5]).tolist()
    if group_parts:
        metrics["groups"] = np.array(outs[-1]).tolist()
    return np.array(chosen).tolist(), metrics
