"""The engine: one loaded model, what lenses read from it while they prepare (the `Probe`),
and the checked start of a comparison (`compare`; the generation is core/comparison.py).

One thread at a time runs the model: every forward and every hooked region holds
`Engine.lock`, and the model checks it (core/model_lock.py says why and how).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import mlx.core as mx
import numpy as np
from mlx import nn

from lenscope import models
from lenscope.core import budget
from lenscope.core.comparison import PREFILL_CHUNK, Comparison
from lenscope.core.hooks import (
    HookState,
    attention_modules,
    check_hookable,
    collect,
    find_embedding,
    hooked,
)
from lenscope.core.model_lock import ModelLock, guard
from lenscope.core.prefixes import Prefixes
from lenscope.core.settings import SETTINGS
from lenscope.core.tensor_parallel import TENSOR_PARALLEL_LINEAR, agreed, split_of
from lenscope.core.tokens import Tokens
from lenscope.errors import BadInput
from lenscope.lenses.base import Lens, Variant
from lenscope.models import LoadedModel

CAPTURE_MAX_BYTES = 1 << 30
LINEAR = (nn.Linear, nn.QuantizedLinear, *TENSOR_PARALLEL_LINEAR)  # what weight lenses edit


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

    def __init__(self, loaded: LoadedModel, lock: ModelLock | None = None):
        self.loaded = loaded
        self.tokens = Tokens(loaded.tokenizer)
        self.tokenizer = loaded.tokenizer
        inner = getattr(self.model, "model", None)
        if any(layer is None for layer in self.model.layers) or getattr(inner, "pipeline_size", 1) > 1:
            # mlx-lm's pipeline sharding leaves each process a slice of the layers
            raise BadInput("this model is pipeline-sharded across processes (mlx-lm sharded_load): lenscope needs "
                           "every layer in each process (hooks, captures, the logit lens); under mlx.launch each "
                           "rank loads the whole model, or its slice of every layer with --shard tensor")
        self.n_layers = len(self.model.layers)
        self.eos_ids = set(getattr(self.tokenizer, "eos_token_ids", None) or [])
        self._module_paths: dict[int, str] | None = None
        self._others: dict[str, Engine] = {}
        self.prefixes = Prefixes()  # the plain model's caches of prompts read, for runs that start with them
        # the model's own lock, taken around every forward and every hooked region: a second
        # thread (the TUI's view workers next to a run) waits instead of hooking over this one
        self.lock = guard(self.model, lock)

    @property
    def backend(self) -> str:
        return "gpu" if mx.default_device() == mx.gpu else "cpu"

    # -- the Probe's tokenizer half (the rest of the tokenizer is `self.tokens`) ----------
    def encode(self, text: str) -> list[int]:
        return self.tokens.encode(text)

    def token_text(self, token_id: int) -> str:
        return self.tokens.token_text(token_id)

    @property
    def n_heads(self) -> int:
        """Heads per layer in the whole model (a tensor-parallel rank holds a slice of them)."""
        split = split_of(self.model)
        return _n_heads(self.model) * (split.size if split else 1)

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
        if not isinstance(module, LINEAR):
            return None
        if self._module_paths is None:  # module identities never change; hooks swap classes only
            self._module_paths = {id(m): p for p, m in self.model.named_modules()}
        return self._module_paths[id(module)], module

    def other_model(self, spec: str) -> Engine:
        """Another model for a lens to read (patching across models), loaded once per engine."""
        if split_of(self.model):
            raise BadInput(f"model={spec}: a second model (patch, judge) next to a model split across processes "
                           "(--shard tensor) would load whole in every process; not supported")
        with self.lock:
            if spec not in self._others:
                # one lock for both: models of one type share the attention function hooks swap
                self._others[spec] = Engine(models.load(spec), self.lock)
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
    def compare(self, request: Request, capture: bool = False) -> Comparison:
        """Validate and prepare a run; refuses (BadInput) what cannot fit before anything runs.

        `capture`: the caller will capture attention over each row afterwards, so its size
        is checked now rather than after generating."""
        # the checks a process of a split model may meet alone (its machine's free memory): all
        # stop together; a lens's prepare may run the model, so it is not in the agreed block
        with agreed(split_of(self.model)):
            if not request.prompt.strip() and not request.prompt_ids:
                raise BadInput("prompt: empty")
            ids = list(request.prompt_ids) if request.prompt_ids else self.encode(request.prompt)
            marks = self.tokens.check_marks(request.marks, len(ids))
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
        if hooks["attention_bias"] or hooks["attention_scores"]:
            check_hookable(self.model)
        measured = not marks or bool(attention_modules(self.model))
        if not measured:  # marks still steer lenses that read them (steer positions=marked, patch span)
            warnings.append("marks: this model's attention cannot be hooked, so their attention share is not measured")
        comparison = Comparison(self, request, ids, marks, measure_marks=measured)
        comparison.warnings = warnings
        return comparison

    def check_capture(self, n_tokens: int, layers: int | None = None) -> int:
        """A capture's bytes per row; BadInput when one row's would pass the limit."""
        size = budget.capture_bytes(budget.model_sizes(self.model), n_tokens, layers)
        if size > CAPTURE_MAX_BYTES:
            n = self.n_layers if layers is None else layers
            raise BadInput(f"attention capture of {n_tokens} tokens x {n} layers needs {budget.gib(size)} per row "
                           f"(limit {budget.gib(CAPTURE_MAX_BYTES)}); use a shorter prompt, fewer tokens or one --layer")
        return size

    def capture_attention(self, ids: list[int], lenses: Sequence[Lens] = (), prompt_len: int | None = None,
                          marks: Sequence[int] = (), layers: Sequence[int] | None = None) -> np.ndarray:
        """Attention probabilities (layers, heads, L, L) over `ids`, with `lenses` applied.

        One extra forward, never during decoding: the fused kernel returns no weights."""
        return self.inspect(ids, lenses, prompt_len, marks, layers, hidden=False)[0]

    def inspect(self, ids: list[int], lenses: Sequence[Lens] = (), prompt_len: int | None = None,
                marks: Sequence[int] = (), layers: Sequence[int] | None = None,
                hidden: bool = True, name: str = "") -> tuple[np.ndarray, np.ndarray | None]:
        """One forward over `ids` with `lenses` applied, capturing what the views read:
        attention (layers, heads, L, L) and, with `hidden`, the residual stream
        (n_layers + 1, L, D): the embeddings, then the output of each block."""
        name = name or "+".join(lens.label() for lens in lenses) or "baseline"  # as a spec names it
        return self.inspect_rows([(ids, Variant(name, list(lenses)))], prompt_len, marks, layers, hidden)[0]

    def inspect_rows(self, rows: Sequence[tuple[list[int], Variant]], prompt_len: int | None = None,
                     marks: Sequence[int] = (), layers: Sequence[int] | None = None,
                     hidden: bool = True) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """`inspect` for several (ids, variant) rows in one batched forward: shorter rows are
        padded at the end, which causal attention keeps from reaching their own positions.
        `layers=[]`: hidden states only (attention is None), also on a model whose attention
        cannot be hooked."""
        layers = list(range(self.n_layers)) if layers is None else list(layers)
        if layers:
            check_hookable(self.model)
        lengths = [len(ids) for ids, _ in rows]
        T = max(lengths)
        fit = max(1, CAPTURE_MAX_BYTES // max(1, self.check_capture(T, len(layers))))
        if len(rows) > fit:  # all rows at once would hold more than one capture's limit: in groups that fit
            return [out for start in range(0, len(rows), fit)
                    for out in self.inspect_rows(rows[start : start + fit], prompt_len, marks, layers, hidden)]
        P = prompt_len or min(lengths)
        with self.lock:  # from prepare on: lenses run as prepared for this prompt
            for ids, variant in rows:
                self.prepare([variant], ids[:P], marks)
            state = HookState([list(v.lenses) for _, v in rows], self.n_layers, P, tuple(marks))
            state.track_marks = False
            state.capture = bool(layers)
            state.capture_layers = set(layers)  # only these are computed, held (and gathered when split)
            if hidden:
                state.record_layers = set(range(-1, self.n_layers))
            batch = mx.array([ids + [ids[-1]] * (T - len(ids)) for ids, _ in rows])
            with hooked(self.model, state):
                state.begin(mx.arange(T))
                self.model(batch)
                mx.eval(list(state.captured.values()) + list(state.recorded.values()))
        out = []
        for r, n in enumerate(lengths):
            attention = np.stack([np.array(state.captured[i][r, :, :n, :n]) for i in layers]) if layers else None
            states = np.stack([np.array(state.recorded[i][r, :n].astype(mx.float32))
                               for i in range(-1, self.n_layers)]) if hidden else None
            out.append((attention, states))
        return out

    def decode_hidden(self, h: mx.array) -> mx.array:
        """Logits the model would give if decoding stopped at hidden state(s) `h` (..., D):
        its final norm and unembedding (the logit lens). At the last block it is the model's output.
        Under the lock: a prefill elsewhere wraps the final norm while it runs (comparison.head_on)."""
        with self.lock:
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
    return int(model.args.num_attention_heads)
