"""Small random-weight mlx-lm models of several architectures, for hook tests."""

import mlx.core as mx
from mlx_lm.utils import _get_classes

COMMON = dict(hidden_size=64, num_hidden_layers=2, intermediate_size=128, num_attention_heads=4,
              num_key_value_heads=2, rms_norm_eps=1e-5, vocab_size=1024, max_position_embeddings=128,
              rope_theta=10000.0, tie_word_embeddings=True)

CONFIGS = {
    "llama": dict(model_type="llama"),
    "qwen2": dict(model_type="qwen2"),
    "qwen3": dict(model_type="qwen3", head_dim=16),
    "gemma": dict(model_type="gemma", head_dim=16),
    "phi3": dict(model_type="phi3", num_key_value_heads=4),
    # gemma 3: sliding-window layers (window 4) beside global ones, as a GGUF converts to
    "gemma3_text": dict(model_type="gemma3_text", head_dim=16, sliding_window=4, sliding_window_pattern=2,
                        query_pre_attn_scalar=16),
}


def build(arch: str, seed: int = 0):
    config = {**COMMON, **CONFIGS[arch]}
    model_cls, args_cls = _get_classes(config)
    mx.random.seed(seed)
    model = model_cls(args_cls.from_dict(config))
    mx.eval(model.parameters())
    return model
