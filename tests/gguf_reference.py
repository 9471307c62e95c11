"""An independent reference for GGUF models, written from llama.cpp's semantics in numpy.

Weights come from the `gguf` package (llama.cpp's own reader and dequantizer), never
from MLX, so a match means the conversion (names, layout, rope pairing, quantization)
is right. Also: a writer for tiny random GGUF files with a byte-level BPE vocabulary.
"""

from __future__ import annotations

import numpy as np

gguf = __import__("pytest").importorskip("gguf")
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

from lenscope.lab.convert_bench import F16_FIELDS, random_blocks


def load_reference(path) -> tuple[dict, dict]:
    """(float64 weights by GGUF name, hyper-parameters) via llama.cpp's reader."""
    r = gguf.GGUFReader(path)

    def field(key, default=None):
        return r.fields[key].contents() if key in r.fields else default

    arch = field("general.architecture")
    weights = {t.name: dequantize(t.data, t.tensor_type).astype(np.float64) for t in r.tensors}
    cfg = {
        "arch": arch,
        "layers": field(f"{arch}.block_count"),
        "heads": field(f"{arch}.attention.head_count"),
        "kv_heads": field(f"{arch}.attention.head_count_kv"),
        "eps": field(f"{arch}.attention.layer_norm_rms_epsilon"),
        "base": field(f"{arch}.rope.freq_base", 10000.0),
        "attn_cap": field(f"{arch}.attn_logit_softcapping"),
        "final_cap": field(f"{arch}.final_logit_softcapping"),
        "window": field(f"{arch}.attention.sliding_window"),
        "base_swa": field(f"{arch}.rope.freq_base_swa", 10000.0),
    }
    return weights, cfg


def rope(x: np.ndarray, base: float, neox: bool, factors=None) -> np.ndarray:
    """x: (T, H, D). ggml's 'normal' rope rotates adjacent pairs, 'neox' the two halves;
    factors (rope_freqs, llama 3.1+) divide each frequency."""
    t, _, d = x.shape
    angle = np.arange(t)[:, None] * (base ** (-np.arange(0, d, 2) / d) / (1.0 if factors is None else factors))[None]
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    if neox:
        a, b = x[..., : d // 2], x[..., d // 2 :]
        return np.concatenate([a * c - b * s, a * s + b * c], -1)
    out = np.empty_like(x)
    a, b = x[..., 0::2], x[..., 1::2]
    out[..., 0::2], out[..., 1::2] = a * c - b * s, a * s + b * c
    return out


def forward(weights: dict, cfg: dict, ids) -> np.ndarray:
    """Logits (T, vocab) in float64 for one sequence, as llama.cpp computes them for llama,
    qwen2/3, gemma2/3 and phi3 (written from llama.cpp's graphs, not from mlx-lm)."""
    w, arch = weights, cfg["arch"]
    gemma = arch in ("gemma2", "gemma3")

    def rms(x, g):  # gemma's stored norm weights already hold the +1
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + cfg["eps"]) * g

    def gelu(x):  # ggml_gelu: the tanh approximation
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))

    x = w["token_embd.weight"][np.asarray(ids)]
    if gemma:
        x = x * np.sqrt(x.shape[-1])
    n, heads, kv = len(ids), cfg["heads"], cfg["kv_heads"]
    neox = arch != "llama"  # llama.cpp: LLAMA_ROPE_TYPE_NORM for llama, NEOX for the others
    for i in range(cfg["layers"]):
        p = f"blk.{i}."
        h = rms(x, w[p + "attn_norm.weight"])
        if p + "attn_qkv.weight" in w:  # phi3
            qkv = h @ w[p + "attn_qkv.weight"].T
            d = qkv.shape[-1] // (heads + 2 * kv)
            q, k, v = np.split(qkv, [heads * d, (heads + kv) * d], axis=-1)
        else:
            q, k, v = (h @ w[p + f"attn_{c}.weight"].T + w.get(p + f"attn_{c}.bias", 0.0) for c in "qkv")
            d = q.shape[-1] // heads
        q, k, v = q.reshape(n, heads, d), k.reshape(n, kv, d), v.reshape(n, kv, d)
        if p + "attn_q_norm.weight" in w:  # qwen3, gemma3
            q, k = rms(q, w[p + "attn_q_norm.weight"]), rms(k, w[p + "attn_k_norm.weight"])
        local = arch == "gemma2" and i % 2 == 0 or arch == "gemma3" and i % 6 < 5
        base = cfg["base_swa"] if arch == "gemma3" and local else cfg["base"]
        factors = w.get("rope_freqs.weight")
        q, k = rope(q, base, neox, factors), rope(k, base, neox, factors)
        k, v = np.repeat(k, heads // kv, axis=1), np.repeat(v, heads // kv, axis=1)
        s = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(d)
        if cfg["attn_cap"] and arch == "gemma2":
            s = np.tanh(s / cfg["attn_cap"]) * cfg["attn_cap"]
        gap = np.arange(n)[:, None] - np.arange(n)[None]
        hidden = gap < 0
        if gemma and local and cfg["window"]:
            hidden |= gap >= cfg["window"]
        s = np.where(hidden, -np.inf, s)
        a = np.exp(s - s.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        out = np.einsum("hqk,khd->qhd", a, v).reshape(n, heads * d) @ w[p + "attn_output.weight"].T
        if gemma:
            out = rms(out, w[p + "post_attention_norm.weight"])
        x = x + out
        h = rms(x, w[p + "ffn_norm.weight"])
        if p + "ffn_gate.weight" in w:
            g, u = h @ w[p + "ffn_gate.weight"].T, h @ w[p + "ffn_up.weight"].T
        else:  # phi3: ffn_up holds [gate; up]
            g, u = np.split(h @ w[p + "ffn_up.weight"].T, 2, axis=-1)
        out = ((gelu(g) if gemma else g / (1 + np.exp(-g))) * u) @ w[p + "ffn_down.weight"].T
        if gemma:
            out = rms(out, w[p + "post_ffw_norm.weight"])
        x = x + out
    logits = rms(x, w["output_norm.weight"]) @ w.get("output.weight", w["token_embd.weight"]).T
    if cfg["final_cap"]:
        logits = np.tanh(logits / cfg["final_cap"]) * cfg["final_cap"]
    return logits


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (the byte-level BPE alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + len(cs) - 188)
    return dict(zip(bs, map(chr, cs)))


SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = ["Ġ t", "h e", "Ġt he", "Ġ a", "i n", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld", "1 2"]
TEMPLATE = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}" \
           "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"


def llama3_rope_factors(head_dim: int, base: float, factor: float, context: int = 8192) -> np.ndarray:
    """rope_freqs as llama.cpp's converter writes them for rope_type llama3 (low 1, high 4)."""
    factors = []
    for freq in 1.0 / base ** (np.arange(0, head_dim, 2) / head_dim):
        wavelen = 2 * np.pi / freq
        if wavelen < context / 4:
            factors.append(1.0)
        elif wavelen > context:
            factors.append(factor)
        else:
            smooth = (context / wavelen - 1) / 3
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)


def byte_level_vocab() -> tuple[list[str], list[int], list[str]]:
    """(tokens, token types, merges): three control tokens, the 256 bytes, a few merges."""
    tokens = SPECIALS + sorted(bytes_to_unicode().values()) + ["".join(m.split(" ")) for m in MERGES]
    return tokens, [3] * len(SPECIALS) + [1] * (len(tokens) - len(SPECIALS)), MERGES


def write_tiny(path, arch="llama", qtype=T.F32, embed_qtype=None, layers=2, hidden=64, ffn=96, heads=4,
               kv_heads=2, head_dim=None, tied=True, biases=False, qk_norm=False, pre="smollm", seed=0,
               extra_tensors=(), spm=None, output_qtype=None, metadata=None, scale=0.2):
    """A tiny random model as a GGUF file (llama.cpp names and layout). spm: (tokens, scores,
    types) for a SentencePiece ("llama") vocabulary instead of the byte-level one."""
    rng = np.random.default_rng(seed)
    tokens, types, merges = byte_level_vocab() if spm is None else (spm[0], spm[2], None)
    head_dim = head_dim or hidden // heads
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(layers)
    w.add_context_length(256)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("gpt2" if spm is None else "llama")
    w.add_token_list(tokens)
    w.add_token_types(types)
    if spm is None:
        w.add_tokenizer_pre(pre)
        w.add_token_merges(merges)
    else:
        w.add_token_scores(spm[1])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(spm is not None)
    w.add_chat_template(TEMPLATE)
    for key, value in (metadata or {}).items():  # added, or replacing a key above (None: removed)
        w.kv_data[0].pop(key, None)
        if value is None:
            continue
        add = {str: w.add_string, float: w.add_float32, list: w.add_array}.get(type(value), w.add_uint32)
        add(key, value)

    weight_scale = scale

    def tensor(name, shape, qt=qtype, scale=None):
        a = (rng.standard_normal(shape) * (scale or weight_scale)).astype(np.float32)
        if qt.name in F16_FIELDS and len(shape) == 2:
            w.add_tensor(name, random_blocks(*shape, qt, rng), raw_dtype=qt)
        elif len(shape) == 1 or qt == T.F32:
            w.add_tensor(name, a + (1.0 if name.endswith("norm.weight") else 0.0))
        else:
            w.add_tensor(name, quantize(a, qt), raw_dtype=qt)

    tensor("token_embd.weight", (len(tokens), hidden), embed_qtype or qtype, scale=1.0)
    gemma = arch in ("gemma2", "gemma3")
    for i in range(layers):
        p = f"blk.{i}."
        tensor(p + "attn_norm.weight", (hidden,))
        if arch == "phi3":  # fused [q; k; v]
            tensor(p + "attn_qkv.weight", ((heads + 2 * kv_heads) * head_dim, hidden))
        else:
            tensor(p + "attn_q.weight", (heads * head_dim, hidden))
            tensor(p + "attn_k.weight", (kv_heads * head_dim, hidden))
            tensor(p + "attn_v.weight", (kv_heads * head_dim, hidden))
        if biases:
            for c, rows in (("q", heads), ("k", kv_heads), ("v", kv_heads)):
                tensor(p + f"attn_{c}.bias", (rows * head_dim,))
        if qk_norm or arch == "gemma3":
            tensor(p + "attn_q_norm.weight", (head_dim,))
            tensor(p + "attn_k_norm.weight", (head_dim,))
        tensor(p + "attn_output.weight", (hidden, heads * head_dim))
        if gemma:
            tensor(p + "post_attention_norm.weight", (hidden,))
        tensor(p + "ffn_norm.weight", (hidden,))
        if arch == "phi3":  # fused [gate; up]
            tensor(p + "ffn_up.weight", (2 * ffn, hidden))
        else:
            tensor(p + "ffn_gate.weight", (ffn, hidden))
            tensor(p + "ffn_up.weight", (ffn, hidden))
        tensor(p + "ffn_down.weight", (hidden, ffn))
        if gemma:
            tensor(p + "post_ffw_norm.weight", (hidden,))
    tensor("output_norm.weight", (hidden,))
    if not tied:
        tensor("output.weight", (len(tokens), hidden), output_qtype or qtype)
    for name, array, raw_dtype in extra_tensors:
        w.add_tensor(name, array, raw_dtype=raw_dtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
