"""Activation patching: hidden states from another prompt (or another model), or the
prompt's own hidden states swapped or reversed between segments."""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from lenscope.lenses.base import Ctx, HookPoint, Hooks, Lens
from lenscope.lenses.errors import BadInput
from lenscope.lenses.params import Param
from lenscope.lenses.probe import Probe


def parse_span(text: str, n: int, what: str) -> tuple[int, int]:
    """'a:b' (python-style, negatives from the end) -> [a, b) within n positions."""
    try:
        a_txt, _, b_txt = text.partition(":")
        a = int(a_txt) if a_txt.strip() else 0
        b = int(b_txt) if b_txt.strip() else n
    except ValueError:
        raise BadInput(f"patch: {what} '{text}' is not a span like 3:7") from None
    a, b = (a + n if a < 0 else a), (b + n if b < 0 else b)
    if not 0 <= a < b <= n:
        raise BadInput(f"patch: {what} '{text}' is empty or outside 0..{n}")
    return a, b


class Patch(Lens):
    kind = "patch"
    summary = "replace hidden states at a layer, on a span of prompt positions, with another prompt's"
    params = (
        Param("mode", "choice", "replace", "replace from `source`; swap two spans; or reverse a span",
              choices=("replace", "swap", "reverse")),
        Param("source", "str", "", "the source prompt (mode=replace)"),
        Param("span", "str", ":", "target prompt positions a:b (default: all; 'marked' = the marks)"),
        Param("source_span", "str", "", "source positions a:b (default: the last positions matching span)"),
        Param("other", "str", "", "mode=swap: the second span a:b"),
        Param("layers", "ints", None, "layers whose output is patched (default: the middle layer; "
              "-1 alone: the token embeddings)"),
        Param("model", "str", "", "take the source from this model folder (same hidden size)"),
    )

    default_layers = "middle"

    def depends_on_prompt(self) -> bool:
        return True

    def layers_in(self, n_layers: int) -> set[int]:
        if self.layers == (-1,):  # before every block: what a one-layer copy head reads
            return {-1}
        return super().layers_in(n_layers)

    def hooks(self, n_layers: int) -> Hooks:
        return {HookPoint("residual", self.layers_in(n_layers)): self.residual}

    def prepare(self, probe: Probe, ids: list[int], marks: list[int]) -> None:
        n = len(ids)
        if n == 0:
            raise BadInput("patch: needs a prompt")
        if self.span == "marked":
            if not marks:
                raise BadInput("patch: span=marked but nothing is marked")
            self.positions = np.array(sorted(marks))
        else:
            a, b = parse_span(self.span, n, "span")
            self.positions = np.arange(a, b)
        layers = sorted(self.layers_in(probe.n_layers))
        if self.mode == "replace":
            self.sources = self._source_states(probe, layers)
        elif self.mode == "swap":
            if not self.other:
                raise BadInput("patch: mode=swap needs other=a:b")
            c, d = parse_span(self.other, n, "other")
            if d - c != len(self.positions):
                raise BadInput("patch: swap spans must have the same length")
            self.other_positions = np.arange(c, d)

    def _source_states(self, probe: Probe, layers: list[int]) -> dict[int, mx.array]:
        if not self.source:
            raise BadInput("patch: mode=replace needs source=TEXT")
        src_probe = probe
        if self.model:
            src_probe = probe.other_model(self.model)
            if src_probe.hidden_size != probe.hidden_size or src_probe.n_layers < max(layers) + 1:
                raise BadInput(f"patch: model '{self.model}' has hidden size {src_probe.hidden_size}, "
                               f"this model {probe.hidden_size}")
        ids = src_probe.encode(self.source)
        states = src_probe.hidden_states(ids, layers)
        k = len(self.positions)
        if self.source_span:
            a, b = parse_span(self.source_span, len(ids), "source_span")
        else:
            a, b = max(0, len(ids) - k), len(ids)
        if b - a != k:
            raise BadInput(f"patch: source span has {b - a} positions, target span {k}")
        return {layer: states[layer][a:b] for layer in layers}

    def residual(self, ctx: Ctx, h: mx.array) -> mx.array:
        pos = np.array(ctx.positions)
        if pos.min() >= ctx.prompt_len:  # decoding: the prompt's states are already in the cache
            return h
        out = np.array(h.astype(mx.float32))  # (1, L, D); prompt chunks are small enough to edit here
        index = {p: i for i, p in enumerate(pos)}
        if self.mode == "replace":
            src = np.array(self.sources[ctx.layer].astype(mx.float32))  # numpy has no bfloat16
            for j, p in enumerate(self.positions):
                if p in index:
                    out[0, index[p]] = src[j]
        elif self.mode == "reverse":
            cur = out.copy()
            for p, q in zip(self.positions, self.positions[::-1]):
                if p in index and q in index:
                    out[0, index[p]] = cur[0, index[q]]
        else:
            cur = out.copy()
            for p, q in zip(self.positions, self.other_positions):
                if p in index and q in index:
                    out[0, index[p]], out[0, index[q]] = cur[0, index[q]], cur[0, index[p]]
        return mx.array(out).astype(h.dtype)
