"""How long a GGUF conversion takes and how much memory it holds: `lenscope bench --convert`.

`synthetic_llama` writes a llama GGUF of a real model's shape (Llama 3.2 1B by default)
laid out as llama.cpp's Q4_K_M mix (Q4_K layers, Q6_K embedding and half the attn_v /
ffn_down), with random valid blocks: what converting a 1B download costs, without one.
The conversion runs in a child process so its peak RSS is its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lenscope.errors import BadInput
from lenscope.models.gguf import convert
from lenscope.models.precision import peak_rss_bytes

LLAMA_1B = {"hidden": 2048, "layers": 16, "ffn": 8192, "heads": 32, "kv_heads": 8, "vocab": 128256}


# where each block type keeps its float16 scales (negative: from the end of the block)
F16_FIELDS = {"Q4_K": [0, 2], "Q5_K": [0, 2], "Q2_K": [-4, -2], "Q3_K": [-2], "Q6_K": [-2],
              "IQ4_NL": [0], "IQ4_XS": [0]}


def random_blocks(rows: int, cols: int, qtype, rng) -> np.ndarray:
    """Valid random blocks of a type gguf.quants cannot quantize (k-quants, IQ4): random
    bytes with small float16 scales, so every value is finite."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType  # lazy: startup

    block, size = GGML_QUANT_SIZES[qtype]
    q = rng.integers(0, 256, (rows, cols // block, size), dtype=np.uint8)
    d = np.array([0.002], np.float16).view(np.uint8)
    for at in F16_FIELDS[qtype.name]:
        q[..., at % size:at % size + 2] = d
    if qtype == GGMLQuantizationType.Q6_K:  # int8 scale per 16 weights: alike in size, as llama.cpp's quantizer gives
        sign = rng.choice(np.array([-1, 1], np.int8), (rows, cols // block, 16))
        q[..., 192:208] = (rng.integers(24, 40, (rows, cols // block, 16)).astype(np.int8) * sign).view(np.uint8)
    return q.reshape(rows, -1)


def synthetic_llama(path: Path, shape: dict = LLAMA_1B, seed: int = 0) -> Path:
    """A Q4_K_M-like llama GGUF of `shape`, with a small byte-level vocabulary's metadata
    padded to the model's vocabulary size."""
    import gguf  # lazy: startup
    from gguf import GGMLQuantizationType as T  # lazy: startup

    rng = np.random.default_rng(seed)
    h, f, layers, heads, kv = shape["hidden"], shape["ffn"], shape["layers"], shape["heads"], shape["kv_heads"]
    hd = h // heads
    w = gguf.GGUFWriter(str(path), "llama")
    for add, value in ((w.add_block_count, layers), (w.add_context_length, 8192), (w.add_embedding_length, h),
                       (w.add_feed_forward_length, f), (w.add_head_count, heads), (w.add_head_count_kv, kv),
                       (w.add_rope_dimension_count, hd), (w.add_layer_norm_rms_eps, 1e-5),
                       (w.add_rope_freq_base, 500000.0), (w.add_file_type, 15)):
        add(value)
    tokens = ["a", "b", "ab"] + [f"<t{i}>" for i in range(3, shape["vocab"])]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list(tokens)
    w.add_token_types([1] * len(tokens))
    w.add_token_merges(["a b"])
    w.add_tensor("token_embd.weight", random_blocks(shape["vocab"], h, T.Q6_K, rng), raw_dtype=T.Q6_K)
    norm = np.ones(h, np.float32)
    for i in range(layers):
        p, big = f"blk.{i}.", T.Q6_K if i % 2 == 0 else T.Q4_K  # llama.cpp: Q6_K on half of attn_v/ffn_down
        w.add_tensor(p + "attn_norm.weight", norm)
        for name, rows, cols, kind in (("attn_q", h, h, T.Q4_K), ("attn_k", kv * hd, h, T.Q4_K),
                                       ("attn_v", kv * hd, h, big), ("attn_output", h, h, T.Q4_K),
                                       ("ffn_gate", f, h, T.Q4_K), ("ffn_up", f, h, T.Q4_K),
                                       ("ffn_down", h, f, big)):
            w.add_tensor(f"{p}{name}.weight", random_blocks(rows, cols, kind, rng), raw_dtype=kind)
        w.add_tensor(p + "ffn_norm.weight", norm)
    w.add_tensor("output_norm.weight", norm)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _child(src: str, out: str) -> None:
    t = time.perf_counter()
    convert(src, out)
    seconds = time.perf_counter() - t
    print(json.dumps({"seconds": seconds, "peak_rss_bytes": peak_rss_bytes()}))


def convert_bench(src: Path, out: Path) -> dict:
    """Convert `src` into `out` in a child process: seconds, peak RSS, sizes."""
    code = f"from {__name__} import _child; _child({str(src)!r}, {str(out)!r})"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if result.returncode:
        last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "the conversion failed"
        raise BadInput(f"--convert: {last.removeprefix('lenscope.lenses.errors.BadInput: ')}")
    rep = json.loads(result.stdout.strip().splitlines()[-1])
    rep.update(file_bytes=src.stat().st_size, output_bytes=sum(p.stat().st_size for p in out.rglob("*") if p.is_file()))
    return rep


def render(rep: dict) -> str:
    gib = 2 ** 30
    return (f"converted {rep['file_bytes'] / gib:.2f} GiB GGUF -> {rep['output_bytes'] / gib:.2f} GiB mlx-lm folder "
            f"in {rep['seconds']:.1f} s, peak RSS {rep['peak_rss_bytes'] / gib:.2f} GiB "
            f"({rep['peak_rss_bytes'] / rep['output_bytes']:.2f}x the output)")
