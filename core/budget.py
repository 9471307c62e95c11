"""What a run will cost before it starts: rows, memory, context length.

A comparison holds one KV cache row per variant, and its prefill materialises logits
for a whole chunk of every row; a lens file of thousands of variants or a prompt far
past the model's context would otherwise run until the machine swaps or dies. These
estimates are upper bounds in the model's own sizes, checked before anything runs.
"""

from __future__ import annotations

from typing import Any

from lenscope.core.tensor_parallel import split_of
from lenscope.errors import BadInput
from lenscope.models.precision import physical_bytes

MAX_ROWS = 128  # a comparison is read side by side; larger sweeps belong in `lenscope run`
MEMORY_SHARE = 0.8  # refuse a run estimated above this share of the memory available now
FLOAT_BYTES = 4  # activations, logits and captures are float32 on every path we take


def model_sizes(model: Any) -> dict[str, int]:
    """Layers, heads, KV heads, head size, hidden size and vocabulary of an mlx-lm model."""
    args = getattr(model, "args", None)
    get = lambda *names, default=None: next(
        (int(getattr(args, n)) for n in names if getattr(args, n, None) is not None), default)
    heads = get("num_attention_heads", "n_heads", default=1)
    hidden = get("hidden_size", "dim", default=0)
    return {
        "layers": len(model.layers),
        "heads": heads,
        "kv_heads": get("num_key_value_heads", "n_kv_heads", default=heads),
        "head_dim": get("head_dim", default=hidden // max(heads, 1)),
        "hidden": hidden,
        "vocab": get("vocab_size", default=0),
        "processes": split.size if (split := split_of(model)) else 1,  # a tensor-parallel split's
    }


def context_length(model: Any) -> int | None:
    """The longest sequence the model was configured for, when its config says."""
    args = getattr(model, "args", None)
    for name in ("max_position_embeddings", "max_seq_len", "n_positions", "context_length"):
        value = getattr(args, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def comparison_bytes(sizes: dict[str, int], rows: int, prompt_len: int, max_tokens: int, chunk: int) -> int:
    """Peak memory of one comparison in one process: the KV cache, one prefill chunk's logits
    and hidden states (float32 upper bound), and each step's logits. A process of a model
    split across `processes` holds its share of the heads, so of the cache and scores."""
    tokens = prompt_len + max_tokens
    share = sizes.get("processes", 1)
    kv = rows * sizes["layers"] * 2 * sizes["kv_heads"] // share * sizes["head_dim"] * tokens * FLOAT_BYTES
    width = min(prompt_len, chunk)
    prefill = rows * width * (sizes["vocab"] + 8 * sizes["hidden"]) * FLOAT_BYTES
    scores = rows * sizes["heads"] // share * width * tokens * FLOAT_BYTES  # explicit attention rows
    return kv + prefill + scores


def capture_bytes(sizes: dict[str, int], tokens: int, layers: int | None = None) -> int:
    """Captured attention probabilities of one row: (layers, heads, T, T) float32."""
    return (sizes["layers"] if layers is None else layers) * sizes["heads"] * tokens * tokens * FLOAT_BYTES


def available_bytes() -> int | None:
    """Memory the OS says is available now (Linux MemAvailable; else physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return physical_bytes() or None  # macOS has no /proc: physical memory is the bound Metal shares


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**28 else f"{n / 2**20:.0f} MiB"


def check_comparison(model: Any, rows: int, prompt_len: int, max_tokens: int, chunk: int,
                     available: int | None = None) -> list[str]:
    """Refuse (BadInput) a comparison that cannot fit; return warnings for one that runs
    but past what the model was made for."""
    if rows > MAX_ROWS:
        raise BadInput(f"{rows} rows (baseline + {rows - 1} variants) is more than one comparison holds "
                       f"({MAX_ROWS}); split the variants over comparisons of an experiment (`lenscope run`)")
    sizes = model_sizes(model)
    need = comparison_bytes(sizes, rows, prompt_len, max_tokens, chunk)
    have = available_bytes() if available is None else available
    if have is not None and need > MEMORY_SHARE * have:
        raise BadInput(f"{rows} rows x {prompt_len + max_tokens} tokens x {sizes['layers']} layers need about "
                       f"{gib(need)}, and {gib(have)} is available; use fewer variants, a shorter prompt "
                       f"or fewer --max-tokens")
    warnings = []
    context = context_length(model)
    if context is not None and prompt_len + max_tokens > context:
        warnings.append(f"prompt ({prompt_len} tokens) + max tokens ({max_tokens}) exceed the model's context "
                        f"of {context} tokens: expect degraded output past it")
    return warnings
