"""A model's shape checked against its architecture before anything runs.

mlx-lm builds whatever a config.json says and fails later, at generation, with a reshape
error or an index past a list, or runs silently wrong (a token id past the embedding table
gathers garbage). Every folder lenscope loads, converted from a GGUF or not, passes here
first, so a bad shape is one line naming the model and the field.
"""

from __future__ import annotations

from typing import Any

from lenscope.errors import BadInput

# fields every supported architecture has, as mlx-lm names them
SIZES = ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")


def check_config(config: Any, name: str) -> None:
    """Refuse a config.json mlx-lm would build a broken model from."""
    where = f"model '{name}': config.json"
    if not isinstance(config, dict):
        raise BadInput(f"{where} is not a JSON object")
    text = config.get("text_config")
    cfg = {**config, **text} if isinstance(text, dict) else config  # gemma3's multimodal layout
    for key in SIZES:
        _positive(cfg, key, where, required=key in config or not isinstance(text, dict))
    for key in ("num_key_value_heads", "intermediate_size", "head_dim", "sliding_window", "sliding_window_pattern"):
        _positive(cfg, key, where, required=False)
    heads, kv = cfg.get("num_attention_heads"), cfg.get("num_key_value_heads")
    if isinstance(heads, int) and isinstance(kv, int) and heads % kv:
        raise BadInput(f"{where}: {kv} key/value heads do not divide {heads} attention heads")
    layers, pattern = cfg.get("num_hidden_layers"), cfg.get("sliding_window_pattern")
    if cfg.get("model_type") in ("gemma3", "gemma3_text") and isinstance(layers, int) and isinstance(pattern, int) \
            and layers < pattern:
        raise BadInput(f"{where}: {layers} layers, fewer than its sliding-window pattern of {pattern} "
                       f"(gemma 3 needs at least one global layer)")


def _positive(cfg: dict, key: str, where: str, required: bool) -> None:
    value = cfg.get(key)
    if value is None and not required:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadInput(f"{where}: {key} is {value!r:.40}, not a positive whole number")


def check_vocabulary(tokenizer: Any, rows: int, name: str) -> None:
    """Every token the tokenizer can produce must have an embedding row."""
    try:
        largest = max(tokenizer.get_vocab().values(), default=-1)
    except Exception:  # a tokenizer without a vocabulary map: nothing to check
        return
    if largest >= rows:
        raise BadInput(f"model '{name}': the tokenizer has token id {largest} but the embedding table only "
                       f"{rows} rows")
