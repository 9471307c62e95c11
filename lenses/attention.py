"""Attention lenses: additive biases on a row's attention logits.

`emphasis` follows PASTA (Zhang et al. 2023): raising the logits of the marked key
tokens by `strength` is the same, after softmax, as scaling every other token's
attention by exp(-strength) and renormalising. `hold` chooses that bias per query and
head instead, so the marks keep a target share however far back they fall.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import numpy as np

from lenscope.lenses.base import Ctx, HookPoint, Hooks, Lens
from lenscope.lenses.errors import BadInput
from lenscope.lenses.params import Param
from lenscope.lenses.probe import Probe

FRESH_WINDOW = 4  # queries after the marks whose share is "fresh" (hold target=0)
LAYERS = Param("layers", "ints", None, "decoder layers to act on, e.g. 1|2 (default: all)")
HEADS = Param("heads", "ints", None, "attention heads to act on, e.g. 0|3 (default: all)")


class Emphasis(Lens):
    kind = "emphasis"
    summary = "attend more to the marked tokens: add `strength` to their attention logits (PASTA)"
    params = (
        Param("strength", "float", 3.0, "log-space boost of attention to marked keys", -50, 50, keyframes=True),
        LAYERS,
        HEADS,
        Param("auto_heads", "int", 0, "instead of `heads`: per layer, the k heads that attend least to the "
              "marks on this prompt (0 = off)", 0, 1024),
        Param("propagate", "float", 0.0, "importance propagation: each prompt token inherits `propagate` x its "
              "attention share on the marks (plain model, mean of layers and heads) of their boost, at most all "
              "of it (0 = off)", 0, 100),
    )

    def is_neutral(self) -> bool:
        return self.always("strength", 0)

    def depends_on_prompt(self) -> bool:
        return self.auto_heads > 0 or self.propagate > 0

    def needs_marks(self) -> bool:
        return True

    def hooks(self, n_layers: int) -> Hooks:
        return {HookPoint("attention_bias", self.layers_in(n_layers)): self.attention_bias}

    def prepare(self, probe: Probe, ids: list[int], marks: list[int]) -> None:
        """auto_heads: measure each head's attention on the marks (from the queries after
        the first mark) on this prompt, and keep the k lowest per layer."""
        self.auto, self.inherit = None, None
        if not marks or not (self.auto_heads or self.propagate):
            return
        probs = probe.capture_attention(ids)  # (layers, H, L, L)
        if self.propagate:
            self.inherit = inherited_importance(probs, marks, self.propagate)
        if not self.auto_heads:
            return
        share = probs[:, :, min(marks):, :][..., marks].sum(-1).mean(-1)  # (layers, H)
        self.auto = {layer: sorted(np.argsort(share[layer])[: self.auto_heads].tolist())
                     for layer in range(share.shape[0])}

    def prepared(self) -> dict[str, Any]:
        """The tokens propagation gave importance (per query row, weights over the prompt) and
        the heads auto_heads picked per layer, when this prompt made any."""
        found = (("inherited", getattr(self, "inherit", None)), ("auto_heads", getattr(self, "auto", None)))
        return {k: v for k, v in found if v is not None}

    def selected_heads(self, layer: int) -> tuple[int, ...] | None:
        if getattr(self, "auto", None):
            return tuple(self.auto[layer])
        return self.heads

    def attention_bias(self, ctx: Ctx, n_heads: int, n_keys: int) -> mx.array | None:
        memo = getattr(self, "_memo", None)
        # every layer of one forward asks for the same (L, S) bias: build it once per forward
        # (holding `positions` keeps its id from being reused by a later forward's array)
        if (memo is None or memo[0] is not ctx.positions or memo[1] != n_keys or memo[2] != ctx.marks
                or memo[3] is not ctx.keys):
            marks = ctx.mark_keys(n_keys)
            bias = None
            if marks:
                key_mask = mx.zeros((n_keys,)).at[mx.array(marks)].add(1.0)
                inherit = getattr(self, "inherit", None)
                if inherit is not None:  # the marks keep 1; other prompt tokens what they inherited
                    pos = ctx.key_positions(n_keys)
                    prompt = pos < len(inherit)
                    weights = np.zeros(n_keys, dtype=np.float32)
                    weights[prompt] = inherit[pos[prompt]]
                    key_mask = mx.array(weights)
                strength = mx.array(self.value_at("strength", ctx.steps), dtype=mx.float32)  # (L,)
                bias = strength[:, None] * key_mask[None, :]  # (L, S)
            self._memo = memo = (ctx.positions, n_keys, ctx.marks, ctx.keys, bias)
        bias = memo[4]
        if bias is None:
            return None
        heads = self.selected_heads(ctx.layer)
        if heads is None:
            return bias[None]
        return _head_mask(heads, ctx, n_heads, self.kind)[:, None, None] * bias[None]


class Hold(Lens):
    kind = "hold"
    summary = ("keep the marks' share of each head's attention at a target: per query, the bias on their "
               "attention logits that gives it, at most `ceiling`, never negative")
    params = (
        Param("target", "float", 0.0, "share of each head's attention to hold on the marks; 0 = fresh: what the "
              "plain model gives them from the tokens right after them, per layer and head", 0, 0.99),
        Param("ceiling", "float", 4.0, "largest bias added to the marks' attention logits (0 = off)", 0, 50),
        LAYERS,
        HEADS,
    )

    def is_neutral(self) -> bool:
        return self.ceiling == 0

    def depends_on_prompt(self) -> bool:
        return self.target == 0

    def needs_marks(self) -> bool:
        return True

    def hooks(self, n_layers: int) -> Hooks:
        return {HookPoint("attention_scores", self.layers_in(n_layers)): self.attention_scores}

    def prepare(self, probe: Probe, ids: list[int], marks: list[int]) -> None:
        """target 0: each head's mean share on the marks from the FRESH_WINDOW queries after the
        last mark (the last query when none follows), on the plain model."""
        self.fresh = None
        if not marks or self.target:
            return
        end = max(marks) + 1
        queries = list(range(end, min(len(ids), end + FRESH_WINDOW))) or [len(ids) - 1]
        # attention is causal: the prompt up to the last query is all those queries see (a long
        # conversation's whole prompt would cost its square in memory at every turn)
        probs = probe.capture_attention(ids[: queries[-1] + 1])  # (layers, H, L, L)
        self.fresh = probs[:, :, queries][..., marks].sum(-1).mean(-1)  # (layers, H)

    def prepared(self) -> dict[str, Any]:
        fresh = getattr(self, "fresh", None)
        return {} if fresh is None else {"fresh_share": np.round(fresh, 4).tolist()}

    def held(self) -> float | None:
        """The share held, as one number (the fresh target's mean over the layers and heads it
        acts on), for the fade chart; None before a fresh target was measured."""
        fresh = getattr(self, "fresh", None)
        if self.target or fresh is None:
            return float(self.target) if self.target else None
        fresh = fresh[sorted(self.layers_in(fresh.shape[0]))]
        return float((fresh if self.heads is None else fresh[:, list(self.heads)]).mean())

    def targets(self, ctx: Ctx, n_heads: int) -> mx.array:
        """(H,) the share held per head of the hook's `n_heads` at `ctx.layer`."""
        fresh = getattr(self, "fresh", None)
        target = np.full(n_heads, self.target) if fresh is None else fresh[ctx.layer, ctx.head_slice(n_heads)]
        return mx.array(np.clip(target, 1e-6, 1 - 1e-6), dtype=mx.float32)

    def attention_scores(self, ctx: Ctx, scores: mx.array) -> mx.array:
        """scores (1, H, L, S), causal mask applied. The marks' share is softmax(m) / (softmax(m)
        + softmax(rest)); adding b to the marks' logits moves its log-odds by exactly b, so
        b = logit(target) - logit(share), clipped to [0, ceiling]: one step, no search."""
        S, H = scores.shape[-1], scores.shape[1]
        marks = ctx.mark_keys(S)
        if not marks:
            return scores
        on = mx.zeros((S,)).at[mx.array(marks)].add(1.0) > 0
        lse_marks = mx.logsumexp(mx.where(on, scores, -mx.inf), axis=-1)  # (1, H, L)
        lse_rest = mx.logsumexp(mx.where(on, -mx.inf, scores), axis=-1)
        target = self.targets(ctx, H)[None, :, None]
        b = (mx.log(target) - mx.log1p(-target)) - (lse_marks - lse_rest)
        b = mx.where(mx.isnan(b), 0.0, mx.clip(b, 0.0, self.ceiling))  # no mark visible or nothing else: 0
        if self.heads is not None:
            b = b * _head_mask(self.heads, ctx, H, self.kind)[None, :, None]
        return scores + b[..., None] * on


def inherited_importance(probs: np.ndarray, marks: list[int], propagate: float) -> np.ndarray:
    """(L,) weight of each prompt token's emphasis: 1 for the marks, and for every other token
    `propagate` x its query's attention share on the marks (mean over layers and heads of
    `probs`, (layers, H, L, L)), capped at 1: tokens that read the marked fact inherit part of
    its importance, one hop."""
    share = probs.astype(np.float64).mean(axis=(0, 1))[:, marks].sum(-1)
    weights = np.clip(propagate * share, 0.0, 1.0)
    weights[marks] = 1.0
    return weights.astype(np.float32)


def _head_mask(heads: tuple[int, ...], ctx: Ctx, n_heads: int, kind: str) -> mx.array:
    """(n_heads,) over the hook's heads; `heads` are the model's indices (a tensor-parallel
    process holds a slice of the model's heads)."""
    total = ctx.model_heads or n_heads
    if any(not 0 <= h < total for h in heads):
        raise BadInput(f"{kind}: heads {list(heads)} outside 0..{total - 1}")
    return ctx.head_mask(heads, n_heads)


class Decay(Lens):
    kind = "decay"
    summary = "counter positional decay: a bias growing with query-key distance, so early tokens are not drowned"
    params = (
        Param("strength", "float", 0.5, "bias per unit of log(1 + distance) (or per 64 tokens, linear)", -10, 10,
              keyframes=True),
        Param("shape", "choice", "log", "how the bias grows with distance", choices=("log", "linear")),
        Param("scope", "choice", "marks", "which keys get it", choices=("marks", "all")),
        LAYERS,
        HEADS,
    )

    def is_neutral(self) -> bool:
        return self.always("strength", 0)

    def needs_marks(self) -> bool:
        return self.scope == "marks"

    def hooks(self, n_layers: int) -> Hooks:
        return {HookPoint("attention_bias", self.layers_in(n_layers)): self.attention_bias}

    def attention_bias(self, ctx: Ctx, n_heads: int, n_keys: int) -> mx.array | None:
        keys = mx.array(ctx.key_positions(n_keys))
        dist = mx.maximum(ctx.positions[:, None] - keys[None, :], 0).astype(mx.float32)  # (L, S)
        grow = mx.log1p(dist) if self.shape == "log" else dist / 64.0
        strength = mx.array(self.value_at("strength", ctx.steps), dtype=mx.float32)[:, None]
        bias = strength * grow
        if self.scope == "marks":
            marks = ctx.mark_keys(n_keys)
            if not marks:
                return None
            bias = bias * mx.zeros((n_keys,)).at[mx.array(marks)].add(1.0)[None, :]
        if self.heads is None:
            return bias[None]
        return _head_mask(self.heads, ctx, n_heads, self.kind)[:, None, None] * bias[None]


class TopKAttention(Lens):
    kind = "topk-attention"
    summary = "sparse attention: each query keeps only its n highest-scoring keys"
    params = (
        Param("n", "int", 8, "keys kept per query (0 = keep all)", 0, 1 << 20),
        LAYERS,
    )

    def is_neutral(self) -> bool:
        return self.n == 0

    def hooks(self, n_layers: int) -> Hooks:
        return {HookPoint("attention_scores", self.layers_in(n_layers)): self.attention_scores}

    def attention_scores(self, ctx: Ctx, scores: mx.array) -> mx.array:
        """scores (1, H, L, S) with the causal mask applied; keep the top n per query."""
        if self.n == 0 or self.n >= scores.shape[-1]:
            return scores
        kth = mx.sort(scores, axis=-1)[..., -self.n][..., None]
        return mx.where(scores >= kth, scores, -mx.inf)
