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

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import numpy as np
from mlx import nn

from lenscope.errors import BadInput
from lenscope.lenses.weights import BY_COLUMNS, BY_ROWS

# model types whose shard() splits q/k/v/o and the MLP contiguously (segments=1), checked here
SHARDABLE = ("llama", "qwen2", "qwen3")
ATTR = "_lens_tensor_split"
TENSOR_PARALLEL_LINEAR = BY_ROWS + BY_COLUMNS  # the linear layers of a split model


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

    def rank0(self, values: list[int]) -> list[int]:
        """Rank 0's values on every rank: the tokens each step continues with, so ranks whose
        logits differ in a last bit (two kinds of machine) still feed the same tokens."""
        mine = mx.array(values if self.rank == 0 else [0] * len(values), dtype=mx.int32)
        return mx.distributed.all_sum(mine, group=self.group, stream=mx.cpu).tolist()

    def agree(self, problem: str | None) -> None:
        """Every rank says whether it can go on; when any cannot, all stop together: rank 0
        raises that rank's line (BadInput), the others leave quietly (exit status 2)."""
        failed = [(r, p) for r, p in enumerate(exchange(problem, self.group)) if p]
        if not failed:
            return
        if self.rank:
            raise SystemExit(2)
        rank, problem = failed[0]
        raise BadInput(problem if rank == 0 else f"process {rank}: {problem}")


def exchange(item: Any, group: Any) -> list[Any]:
    """Every rank's JSON `item`, in rank order, on every rank (an all-gather of its bytes,
    on the CPU stream: the ring and MPI backends do not run on the GPU)."""
    data = np.frombuffer(json.dumps(item, separators=(",", ":")).encode("utf-8"), dtype=np.uint8)
    lengths = np.array(mx.distributed.all_gather(mx.array([len(data)], dtype=mx.int64), group=group,
                                                 stream=mx.cpu)).tolist()
    padded = np.zeros(max(lengths), dtype=np.uint8)
    padded[: len(data)] = data
    blob = np.array(mx.distributed.all_gather(mx.array(padded), group=group, stream=mx.cpu)).reshape(len(lengths), -1)
    return [json.loads(blob[r, :n].tobytes().decode("utf-8")) for r, n in enumerate(lengths)]


@contextmanager
def agreed(split: TensorSplit | None) -> Iterator[None]:
    """On a split model, a refusal (BadInput) inside this block stops every rank together,
    whichever rank met it (free memory differs between machines), said once by rank 0.
    The block must hold no collective: a rank that fails goes straight to the exchange
    at its end, so the others may not meet any other on their way there."""
    if split is None:
        yield
        return
    problem = None
    try:
        yield
    except BadInput as exc:
        problem = str(exc)
    split.agree(problem)


def split_of(model: nn.Module) -> TensorSplit | None:
    return model.__dict__.get(ATTR)


def shard(model: nn.Module, split: TensorSplit) -> TensorSplit:
    """Split `model` across the group with its own shard() (lazily: what a process holds is
    read and sliced when its parameters are evaluated)."""
    check_shardable(model, split.size)
    model.shard(split.group)
    object.__setattr__(model, ATTR, split)
    return split


def check_shardable(model: nn.Module, size: int) -> None:
    """Refuses (one line) a model that cannot be split evenly over `size` processes or whose
    split lenscope has not checked; reads shapes only, no weight."""
    model_type = getattr(getattr(model, "args", None), "model_type", type(model).__module__.rsplit(".", 1)[-1])
    if model_type not in SHARDABLE or not hasattr(model, "shard"):
        raise BadInput(f"--shard tensor: model type '{model_type}' is not supported (supported: "
                       f"{', '.join(SHARDABLE)}); without --shard each rank loads the whole model")
    attn = model.layers[0].self_attn
    sizes = {"attention heads": attn.n_heads, "KV heads": attn.n_kv_heads,
             "MLP columns": model.layers[0].mlp.gate_proj.weight.shape[0]}
    for name, m in (("o_proj", attn.o_proj), ("down_proj", model.layers[0].mlp.down_proj)):
        if "scales" in m:  # split by input columns: each slice must hold whole quantization groups
            sizes[f"quantization groups per {name} row"] = m.scales.shape[-1]
    uneven = [f"{n} {what}" for what, n in sizes.items() if n % size]
    if uneven:
        listed = " and ".join([", ".join(uneven[:-1]), uneven[-1]] if len(uneven) > 1 else uneven)
        raise BadInput(f"--shard tensor: the model's {listed} do not split evenly over {size} processes")
