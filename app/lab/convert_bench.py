"""How long a GGUF conversion takes and how much memory it holds: `lenscope bench --convert`.

`synthetic_llama` writes a llama GGUF of a real model's shape (Llama 3.2 1B by default)
laid out as llama.cpp's Q4_K_M mix (Q4_K layers, Q6_K embedding and half the attn_v /
ffn_down), with random valid blocks: what converting a 1B download costs, without one.
The conversion runs in a child process so its peak RSS is its own.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

LLAMA_1B = {"hidden": 2048, "layers": 16, "ffn": 8192, "heads": 32, "kv_heads": 8, "vocab": 128256}


def _blocks(rng, rows: int, cols: int, kind) -> np.ndarray:
    """Random bytes as blocks of `kind`, each float16 scale set small so values stay finite."""
    from gguf import GGML_QUANT_SIZES

    block, size = GGML_QUANT_SIZES[kind]
    q = rng.integers(0, 256, (rows, cols // block, size), dtype=np.uint8)
    d = np.frombuffer(np.float16(0.002).tobytes(), np.uint8)
    for at in {"Q4_K": (0, 2), "Q6_K": (size - 2,)}[kind.name]:
        q[..., at:at + 2] = d
    return q.reshape(rows, -1)


def synthetic_llama(path: Path, shape: dict = LLAMA_1B, seed: int = 0) -> Path:
    """A Q4_K_M-like llama GGUF of `shape`, with a small byte-level vocabulary's metadata
    padded to the model's vocabulary size."""
    import gguf
    from gguf import GGMLQuantizationType as T

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
    w.add_tensor("token_embd.weight", _blocks(rng, shape["vocab"], h, T.Q6_K), raw_dtype=T.Q6_K)
    norm = np.ones(h, np.float32)
    for i in range(layers):
        p, big = f"blk.{i}.", T.Q6_K if i % 2 == 0 else T.Q4_K  # llama.cpp: Q6_K on half of attn_v/ffn_down
        w.add_tensor(p + "attn_norm.weight", norm)
        for name, rows, cols, kind in (("attn_q", h, h, T.Q4_K), ("attn_k", kv * hd, h, T.Q4_K),
                                       ("attn_v", kv * hd, h, big), ("attn_output", h, h, T.Q4_K),
                                       ("ffn_gate", f, h, T.Q4_K), ("ffn_up", f, h, T.Q4_K),
                                       ("ffn_down", h, f, big)):
            w.add_tensor(f"{p}{name}.weight", _blocks(rng, rows, cols, kind), raw_dtype=kind)
        w.add_tensor(p + "ffn_norm.weight", norm)
    w.add_tensor("output_norm.weight", norm)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _child(src: str, out: str) -> None:
    from lenscope.app.models.gguf import convert

    t = time.perf_counter()
    convert(src, out)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)  # KiB on Linux
    print(json.dumps({"seconds": seconds, "peak_rss_bytes": peak}))


def convert_bench(src: Path, out: Path) -> dict:
    """Convert `src` into `out` in a child process: seconds, peak RSS, sizes."""
    result = subprocess.run([sys.executable, "-c", f"from {__name__} import _child; _child({str(src)!r}, {str(out)!r})"],
                            capture_output=True, text=True, check=False)
    if result.returncode:
        from lenscope.app.errors import BadInput

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
