"""The plain model's KV cache of prompts it has read, reused by later runs that start with one.

A tree re-reads its prompt and path at every branch, a re-run of an unchanged prompt the
whole prompt: when no lens acts inside the model during a prefill (and nothing is marked,
whose attention the first step reports), the cache of the longest prompt already read
stands in for reading it again, and the rest is read on top. Only mlx-lm's plain KVCache
is kept (a rotating or quantized cache is not). Held per engine, under its lock.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import mlx.core as mx
from mlx_lm.models.cache import KVCache

MAX_BYTES = 256 * 2**20  # all entries together; least recently used go first


@dataclass
class Prefix:
    layers: list[tuple[mx.array, mx.array]]  # (keys, values) per layer, batch 1, exactly the prefix's length
    logits: mx.array  # (1, vocab) after its last token
    nbytes: int


def reusable(cache: list) -> bool:
    return all(type(c) is KVCache for c in cache)


class Prefixes:
    def __init__(self, max_bytes: int = MAX_BYTES):
        self.max_bytes = max_bytes
        self.entries: OrderedDict[tuple[int, ...], Prefix] = OrderedDict()

    def longest(self, ids: list[int]) -> tuple[int, Prefix] | None:
        """The longest stored prompt that `ids` starts with, and its length."""
        best = None
        for key in self.entries:
            if len(key) <= len(ids) and (best is None or len(key) > len(best)) and tuple(ids[: len(key)]) == key:
                best = key
        if best is None:
            return None
        self.entries.move_to_end(best)
        return len(best), self.entries[best]

    @staticmethod
    def load(cache: list[KVCache], prefix: Prefix) -> None:
        """Start a fresh batch-1 cache at the prefix (its next update allocates anew, so the
        stored arrays are never written)."""
        for c, (k, v) in zip(cache, prefix.layers):
            c.keys, c.values, c.offset = k, v, k.shape[2]

    @staticmethod
    def repeat_rows(cache: list[KVCache], rows: int) -> None:
        """A batch-1 cache made `rows` rows, each the same prompt."""
        for c in cache:
            k, v = c.keys_and_values()
            c.keys, c.values, c.offset = mx.repeat(k, rows, axis=0), mx.repeat(v, rows, axis=0), k.shape[2]

    def store(self, ids: list[int], cache: list[KVCache], logits: mx.array) -> None:
        # copies: the cache's own buffers are rounded up to 256 positions, and a view would keep them
        layers = [(mx.contiguous(k), mx.contiguous(v)) for k, v in (c.keys_and_values() for c in cache)]
        mx.eval(layers)
        nbytes = sum(k.nbytes + v.nbytes for k, v in layers) + logits.nbytes
        if nbytes > self.max_bytes:
            return
        self.entries[tuple(ids)] = Prefix(layers, logits, nbytes)
        self.entries.move_to_end(tuple(ids))
        while sum(p.nbytes for p in self.entries.values()) > self.max_bytes:
            self.entries.popitem(last=False)
