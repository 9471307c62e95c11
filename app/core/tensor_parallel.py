"""A model split across the ranks of an `mlx.launch` (tensor parallel), as `mlx_lm.generate`
runs models larger than one machine: the model's own `shard(group)` gives each rank a slice
of every block (q/k/v and the MLP's gate/up split by output rows, so each rank holds
n_heads / N heads; o_proj and down_proj split by input columns and summed across ranks).

After each block's all-reduce every rank holds the same full hidden state, so residual,
sampling and logits work is the same on every rank and needs no more communication. What
does differ per rank, and where lenscope puts it back together:

- attention: a rank sees its own heads, global heads `first .. first + local - 1`
  (`heads`); lenses pick heads by their global index, captures are gathered
  (`all_heads`), the marks' share is averaged over every rank's heads (`head_mean`);
- weights: lenses/weights.py gathers a sharded weight, edits it whole and keeps this
  rank's slice (a sharded-to-all layer's edit is summed across ranks like the layer).

Every rank runs the same forwards in the same order (collectives pair up by order), so
every code path that runs the model runs on every rank; rank 0 alone prints and writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.nn.layers import distributed

from lenscope.app.errors import BadInput

# model types whose shard() splits q/k/v/o and the MLP contiguously (segments=1), checked here
SHARDABLE = ("llama", "qwen2", "qwen3")
ATTR = "_lens_tensor_split"
TENSOR_PARALLEL_LINEAR = (distributed.AllToShardedLinear, distributed.ShardedToAllLinear,
                          distributed.QuantizedAllToShardedLinear, distributed.QuantizedShardedToAllLinear)


@dataclass(frozen=True)
class TensorSplit:
    rank: int
    size: int
    group: Any

    def heads(self, local: int) -> tuple[int, int]:
        """(global index of this rank's first head, heads in the whole model)."""
        return self.rank * local, self.size * local

    def all_heads(self, x: mx.array) -> mx.array:
        """(B, local heads, ...) on each rank -> (B, all heads, ...), in global head order."""
        y = mx.distributed.all_gather(mx.moveaxis(x, 1, 0), group=self.group)
        return mx.moveaxis(y, 0, 1)

    def head_mean(self, x: mx.array) -> mx.array:
        """A mean over this rank's heads -> the mean over every head (ranks hold equal counts)."""
        return mx.distributed.all_sum(x, group=self.group) / self.size


def split_of(model: nn.Module) -> TensorSplit | None:
    return model.__dict__.get(ATTR)


def shard(model: nn.Module, rank: int, size: int, group: Any) -> TensorSplit:
    """Split `model` across the group with its own shard(); refuses (one line) a model that
    cannot be split evenly or whose split lenscope has not checked."""
    model_type = getattr(getattr(model, "args", None), "model_type", type(model).__module__.rsplit(".", 1)[-1])
    if model_type not in SHARDABLE or not hasattr(model, "shard"):
        raise BadInput(f"--shard tensor: model type '{model_type}' is not supported (supported: "
                       f"{', '.join(SHARDABLE)}); without --shard each rank loads the whole model")
    attn = model.layers[0].self_attn
    sizes = {"attention heads": attn.n_heads, "KV heads": attn.n_kv_heads,
             "MLP columns": model.layers[0].mlp.gate_proj.weight.shape[0]}
    uneven = [f"{n} {what}" for what, n in sizes.items() if n % size]
    if uneven:
        listed = " and ".join([", ".join(uneven[:-1]), uneven[-1]] if len(uneven) > 1 else uneven)
        raise BadInput(f"--shard tensor: the model's {listed} do not split evenly over {size} processes")
    model.shard(group)
    split = TensorSplit(rank, size, group)
    object.__setattr__(model, ATTR, split)
    return split
