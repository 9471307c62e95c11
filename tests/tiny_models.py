"""Small random-weight mlx-lm models of several architectures, for hook tests."""

import mlx.core as mx
from mlx_lm.utils import _get_classes

COMMON = {"hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128, "num_attention_heads": 4,
              "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "vocab_size": 1024, "max_position_embeddings": 128,
              "rope_theta": 10000.0, "tie_word_embeddings": True}

CONFIGS = {
    "llama": {"model_type": "llama"},
    "qwen2": {"model_type": "qwen2"},
    "qwen3": {"model_type": "qwen3", "head_dim": 16},
    "gemma": {"model_type": "gemma", "head_dim": 16},
    "phi3": {"model_type": "phi3", "num_key_value_heads": 4},
    # gemma 3: sliding-window layers (window 4) beside global ones, as a GGUF converts to
    "gemma3_text": {"model_type": "gemma3_text", "head_dim": 16, "sliding_window": 4, "sliding_window_pattern": 2,
                        "query_pre_attn_scalar": 16},
}


def build(arch: str, seed: int = 0):
    config = {**COMMON, **CONFIGS[arch]}
    model_cls, args_cls = _get_classes(config)
    mx.random.seed(seed)
    model = model_cls(args_cls.from_dict(config))
    mx.eval(model.parameters())
    return model


# -- tokenizers of the three kinds real files have, rebuilt by lenscope's own GGUF tokenizer
# code from synthetic metadata (what a .gguf of each kind holds) ---------------------------

TOKENIZER_KINDS = ("bpe", "bpe-bos", "spm-bos")  # SmolLM2 / Llama 3 / Llama 2, Mistral, Gemma
NORMAL, UNKNOWN, CONTROL, BYTE = 1, 2, 3, 6
WORDS = ("the", "hat", "is", "green", "red", "blue", "tom", "saw", "a", "big", "dog", "happy", "sad", "question",
         "what", "color", "answer", "park", "day", "one", "went", "to", "cat", "sun", "purple")


def _demo_bpe() -> tuple[list[str], list[str]]:
    import json
    from pathlib import Path

    from lenscope.models.sources import DEMO_MODEL_DIR

    data = json.loads((Path(DEMO_MODEL_DIR) / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    tokens = [None] * (max(vocab.values()) + 1)
    for t, i in vocab.items():
        tokens[i] = t
    for added in data["added_tokens"]:
        tokens[added["id"]] = added["content"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    return tokens, merges


def tokenizer_meta(kind: str) -> dict:
    """GGUF tokenizer metadata of a small vocabulary of `kind` (< 1024 tokens)."""
    if kind == "bpe-bos":
        tokens, merges = _demo_bpe()
        tokens = tokens + ["<|begin_of_text|>"]
        types = [CONTROL if t.startswith("<|") else NORMAL for t in tokens]
        return {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "llama-bpe", "tokenizer.ggml.tokens": tokens,
                "tokenizer.ggml.token_type": types, "tokenizer.ggml.merges": merges,
                "tokenizer.ggml.bos_token_id": len(tokens) - 1, "tokenizer.ggml.eos_token_id": 0,
                "tokenizer.ggml.add_bos_token": True}
    if kind == "spm-bos":
        tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
        types = [UNKNOWN, CONTROL, CONTROL] + [BYTE] * 256
        pieces = ["\u2581"] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + list(".,?:!")
        pieces += ["\u2581" + c for c in "abcdefghijklmnopqrstuvwxyz"]
        for w in WORDS:  # each word's prefixes, with and without the word-start mark
            for start in ("", "\u2581"):
                pieces += [start + w[:k] for k in range(2, len(w) + 1)]
        pieces = list(dict.fromkeys(pieces))
        tokens += pieces
        types += [NORMAL] * len(pieces)
        scores = [0.0] * 259 + [-float(i) for i in range(len(pieces))]
        return {"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": types,
                "tokenizer.ggml.scores": scores, "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2,
                "tokenizer.ggml.unknown_token_id": 0, "tokenizer.ggml.add_bos_token": True,
                "tokenizer.ggml.add_space_prefix": True}
    raise ValueError(kind)


def tokenizer(kind: str, demo):
    """An mlx-lm TokenizerWrapper of `kind` ('bpe' is the demo model's own)."""
    if kind == "bpe":
        return demo
    from mlx_lm.tokenizer_utils import TokenizerWrapper
    from transformers import PreTrainedTokenizerFast

    from lenscope.models.gguf_tokenizer import build_tokenizer, tokenizer_config

    meta = tokenizer_meta(kind)
    tok, flags = build_tokenizer(meta)
    return TokenizerWrapper(PreTrainedTokenizerFast(tokenizer_object=tok, **tokenizer_config(meta, flags)))
