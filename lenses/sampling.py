"""Sampling lenses: temperature schedules, exploring below the top tokens, logit bias.

They act on one row's next-token distribution; with common random numbers every row
still sees the same noise, so differences come from the lens alone.
"""

from __future__ import annotations

import math

import mlx.core as mx

from lenscope.lenses import words
from lenscope.lenses.base import Ctx, HookPoint, Hooks, Lens
from lenscope.lenses.errors import BadInput
from lenscope.lenses.params import Param
from lenscope.lenses.probe import Probe


class Temperature(Lens):
    kind = "temperature"
    summary = "a temperature schedule over the steps (annealing): start -> end over `steps`"
    params = (
        Param("start", "float", 1.0, "temperature at step 0 (0 = greedy)", 0, 10),
        Param("end", "float", 0.2, "temperature from step `steps` on", 0, 10),
        Param("steps", "int", 32, "steps to go from start to end", 1, 1 << 20),
        Param("shape", "choice", "linear", "interpolation", choices=("linear", "cosine", "exponential")),
    )

    def value(self, step: int) -> float:
        f = min(max(step, 0) / self.steps, 1.0)
        if self.shape == "cosine":
            f = 0.5 - 0.5 * math.cos(math.pi * f)
        if self.shape == "exponential" and self.start > 0 and self.end > 0:
            return self.start * (self.end / self.start) ** f
        return self.start + (self.end - self.start) * f

    def hooks(self, n_layers: int) -> Hooks:
        return {HookPoint("temperature"): self.temperature}

    def temperature(self, ctx: Ctx, t: float) -> float:
        return self.value(ctx.step)


class Explore(Lens):
    kind = "explore"
    summary = "sample below the top: ban the top-k tokens and/or flatten the distribution"
    params = (
        Param("exclude_top", "int", 1, "ban this many most likely tokens (0 = none)", 0, 1000),
        Param("flatten", "float", 0.0, "0 keeps the distribution, 1 makes it uniform (log-space)", 0, 1),
    )

    def is_neutral(self) -> bool:
        return self.exclude_top == 0 and self.flatten == 0

    def hooks(self, n_layers: int) -> Hooks:
        return {HookPoint("logits"): self.logits}

    def logits(self, ctx: Ctx, logits: mx.array) -> mx.array:
        if self.flatten:
            logits = logits * (1.0 - self.flatten)
        if self.exclude_top:
            kth = mx.sort(logits, axis=-1)[..., -self.exclude_top][..., None]
            logits = mx.where(logits >= kth, -mx.inf, logits)
        return logits


class Bias(Lens):
    kind = "bias"
    summary = "logit bias on words or token ids (positive favours, negative discourages)"
    params = (
        Param("words", "strs", (), "words to bias, e.g. happy|glad (the first token of each word mid-"
              "sentence and at the start of a text; never a special token)"),
        Param("tokens", "ints", None, "token ids to bias"),
        Param("value", "float", 5.0, "added to those logits (-inf-like below -100 bans them)", -1000, 1000),
    )

    def is_neutral(self) -> bool:
        return self.value == 0 or (not self.words and not self.tokens)

    def hooks(self, n_layers: int) -> Hooks:
        return {HookPoint("logits"): self.logits}

    def prepare(self, probe: Probe, ids: list[int], marks: list[int]) -> None:
        ids = set(self.tokens or ()) | set(words.first_ids(probe.tokenizer, self.words, "bias"))
        if not ids:
            raise BadInput("bias: needs words or tokens")
        vocab = probe.vocab_size
        bad = [i for i in ids if not 0 <= i < vocab]
        if bad:
            raise BadInput(f"bias: token {bad[0]} outside the vocabulary (0..{vocab - 1})")
        self.ids = sorted(ids)

    def logits(self, ctx: Ctx, logits: mx.array) -> mx.array:
        add = mx.zeros((logits.shape[-1],)).at[mx.array(self.ids)].add(self.value)
        return logits + add
