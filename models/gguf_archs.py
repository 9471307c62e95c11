"""GGUF architectures -> mlx-lm's own model classes: config.json and tensor names.

Each architecture says how llama.cpp's tensor names map onto the mlx-lm module tree and
what llama.cpp does that mlx-lm spells differently: llama's Q/K rows are permuted for
ggml's adjacent-pair rope (mlx-lm's traditional rope), gemma's norm weights carry the +1
that mlx-lm's gemma RMSNorm adds itself, gemma 2 has attention and final soft-capping,
gemma 3 alternates sliding-window layers with their own rope base, phi3 fuses qkv and
gate/up.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lenscope.errors import BadInput

TOP_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
LLAMA_LAYER = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",  # qwen3
    "attn_k_norm": "self_attn.k_norm",  # qwen3
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
GEMMA_LAYER = {  # gemma 2/3 norm the input and the output of both attention and MLP
    **LLAMA_LAYER,
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
}
PHI3_LAYER = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_qkv": "self_attn.qkv_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_up": "mlp.gate_up_proj",  # llama.cpp's phi3 ffn_up is [gate; up], as mlx-lm's gate_up_proj
    "ffn_down": "mlp.down_proj",
}
LAYER_NAMES = {"llama": LLAMA_LAYER, "qwen2": LLAMA_LAYER, "qwen3": LLAMA_LAYER,
               "gemma2": GEMMA_LAYER, "gemma3": GEMMA_LAYER, "phi3": PHI3_LAYER}
ARCHITECTURES = tuple(LAYER_NAMES)
MODEL_TYPES = {"gemma3": "gemma3_text"}  # mlx-lm's text-only gemma 3
GEMMA = ("gemma2", "gemma3")
CONFIG_ONLY = ("rope_freqs.weight",)  # become config.json entries, not weights


def mlx_name(arch: str, gguf_name: str) -> str | None:
    """llama.cpp tensor name -> mlx-lm's (None when there is no counterpart)."""
    stem, _, suffix = gguf_name.rpartition(".")
    parts = stem.split(".")
    layer = LAYER_NAMES.get(arch, LLAMA_LAYER)
    if len(parts) == 3 and parts[0] == "blk" and parts[2] in layer:
        return f"model.layers.{parts[1]}.{layer[parts[2]]}.{suffix}"
    if stem in TOP_NAMES:
        return f"{TOP_NAMES[stem]}.{suffix}"
    return None


def is_norm(gguf_name: str) -> bool:
    return gguf_name.endswith("norm.weight")


def unfold_norm(arch: str, gguf_name: str, weight: np.ndarray) -> np.ndarray:
    """llama.cpp's converter stores gemma's norm weights as 1 + w; mlx-lm adds the 1 itself."""
    return weight - np.float32(1.0) if arch in GEMMA and is_norm(gguf_name) else weight


def config(path: Path, meta: dict, tensors: dict) -> dict:
    """config.json for mlx-lm from the metadata; `tensors`: GGUF name -> reader tensor."""
    arch = meta.get("general.architecture")
    if arch not in ARCHITECTURES:
        raise BadInput(f"model '{path}': GGUF architecture '{arch}' is not supported "
                       f"(supported: {', '.join(ARCHITECTURES)})")

    def key(name, default=None):
        return meta.get(f"{arch}.{name}", default)

    hidden, heads, layers = key("embedding_length"), key("attention.head_count"), key("block_count")
    head_dim = key("attention.key_length") or hidden // heads
    if key("rope.dimension_count", head_dim) != head_dim:
        raise BadInput(f"model '{path}': partial rotary embeddings are not supported")
    embed = tensors.get("token_embd.weight")
    if embed is None:
        raise BadInput(f"model '{path}': GGUF has no token_embd.weight (not a language model)")
    cfg = {
        "model_type": MODEL_TYPES.get(arch, arch),
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "intermediate_size": key("feed_forward_length"),
        "num_attention_heads": heads,
        "num_key_value_heads": key("attention.head_count_kv") or heads,
        "head_dim": head_dim,
        "rms_norm_eps": key("attention.layer_norm_rms_epsilon", 1e-6),
        "rope_theta": key("rope.freq_base", 10000.0),
        "vocab_size": int(embed.shape[-1]),  # GGML order: (hidden, vocab)
        "max_position_embeddings": key("context_length", 4096),
        "tie_word_embeddings": "output.weight" not in tensors,
        # llama.cpp's converter permutes llama's Q/K rows so rotary pairs are adjacent (ggml's
        # "normal" rope, MLX's traditional one); every other architecture here is stored as is
        "rope_traditional": arch == "llama",
    }
    if arch == "llama":
        cfg["attention_bias"] = "blk.0.attn_q.bias" in tensors
        cfg["mlp_bias"] = "blk.0.ffn_up.bias" in tensors
    if arch in GEMMA:
        # llama.cpp scales queries by 1/sqrt(head_dim), except for the 27B models (46/62 layers)
        big = (arch == "gemma2" and layers == 46) or (arch == "gemma3" and layers == 62)
        cfg["query_pre_attn_scalar"] = hidden // heads if big else head_dim
    if arch == "gemma2":
        cfg["attn_logit_softcapping"] = key("attn_logit_softcapping", 50.0)
        cfg["final_logit_softcapping"] = key("final_logit_softcapping", 30.0)
        cfg["sliding_window"] = key("attention.sliding_window", 4096)
    if arch == "gemma3":
        if key("final_logit_softcapping"):
            raise BadInput(f"model '{path}': gemma3 with final logit soft-capping is not supported")
        cfg["sliding_window"] = key("attention.sliding_window", 512)
        cfg["sliding_window_pattern"] = 6  # llama.cpp's default for gemma 3; it stores no key
        cfg["rope_local_base_freq"] = key("rope.freq_base_swa", 10000.0)
        cfg["rope_theta"] = key("rope.freq_base", 1_000_000.0)
    if arch == "phi3":
        cfg.pop("head_dim")
        if "rope_factors_long.weight" in tensors or "rope_freqs.weight" in tensors or key("rope.scaling.type"):
            raise BadInput(f"model '{path}': phi3 with scaled rope (longrope) is not supported")
    if "rope_freqs.weight" in tensors:
        cfg["rope_scaling"] = _llama3_scaling(path, np.asarray(tensors["rope_freqs.weight"].data, np.float64), cfg,
                                              key("rope.scaling.original_context_length", 8192))
    scaling = key("rope.scaling.type")
    if scaling == "linear":
        factor = key("rope.scaling.factor")
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor <= 1024:
            raise BadInput(f"model '{path}': linear rope scaling with factor {factor!r:.20}")
        cfg["rope_scaling"] = {"type": "linear", "rope_type": "linear", "factor": factor}
    elif scaling not in (None, "none"):
        raise BadInput(f"model '{path}': rope scaling '{scaling}' is not supported (supported: linear)")
    for name in ("bos", "eos"):
        if f"tokenizer.ggml.{name}_token_id" in meta:
            cfg[f"{name}_token_id"] = meta[f"tokenizer.ggml.{name}_token_id"]
    return cfg


def _llama3_scaling(path: Path, factors: np.ndarray, cfg: dict, context: int) -> dict:
    """Llama 3.1+ files carry per-frequency rope factors (rope_freqs) instead of the
    parameters; mlx-lm wants the parameters. Recover them, and check they give the same factors
    (the formula llama.cpp's converter used to write them)."""
    scaling = {"rope_type": "llama3", "factor": float(factors.max()), "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": context}
    d = cfg["head_dim"]
    wavelen = 2 * np.pi * cfg["rope_theta"] ** (np.arange(0, d, 2) / d)
    smooth = (context / wavelen - 1.0) / (4.0 - 1.0)
    expected = np.where(wavelen < context / 4.0, 1.0, np.where(
        wavelen > context, scaling["factor"], 1 / ((1 - smooth) / scaling["factor"] + smooth)))
    if factors.shape != expected.shape or not np.allclose(factors, expected, rtol=1e-3):
        raise BadInput(f"model '{path}': rope_freqs.weight is not llama3 rope scaling (the only kind supported)")
    return scaling
