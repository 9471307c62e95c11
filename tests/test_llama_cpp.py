"""llama.cpp itself as the reference that is not ours (llama-cpp-python, optional tier).

Per tensor type: a random F32 llama GGUF is quantized by llama.cpp's own quantizer, then
both llama.cpp and lenscope (float32 path) read the same file. Per architecture: F32 files
written here. Per pre-tokenizer: SmolLM2's real vocabulary under each name. Compared:
greedy tokens at every position, and max |logit difference| against the largest logit.
llama.cpp quantizes activations to 8 bits in its quantized dot products and keeps its KV
cache in float16, so the tolerance is stated per test, not zero.

Set LENSCOPE_LLAMA_CPP_TABLE=FILE to append each measured row there (docs/performance.md table).
"""

from __future__ import annotations

import ctypes
import json
import os

import mlx.core as mx
import numpy as np
import pytest

llama_cpp = pytest.importorskip("llama_cpp", reason="pip install llama-cpp-python (builds llama.cpp: ~20 min)")
gr = pytest.importorskip("gguf_reference")
T = gr.T
REQUANTIZED_TYPES = ("Q2_K", "Q3_K", "Q6_K", "IQ4_NL", "IQ4_XS")
IDS = [40, 80, 120, 5, 260, 3, 99, 200, 17, 264, 64, 33, 7, 150, 90, 222]
FILE_TYPES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K",
              "IQ4_NL", "IQ4_XS"]
GEMMA2 = {"gemma2.attn_logit_softcapping": 50.0, "gemma2.final_logit_softcapping": 30.0}
GEMMA3 = {"gemma3.attention.sliding_window": 4}
ARCHS = {
    "llama": {},
    "qwen2": {"arch": "qwen2", "biases": True},
    "qwen3": {"arch": "qwen3", "qk_norm": True},
    "gemma2": {"arch": "gemma2", "metadata": GEMMA2},
    "gemma3": {"arch": "gemma3", "layers": 6, "metadata": GEMMA3},
    "phi3": {"arch": "phi3", "kv_heads": 4},
}


def _llama_cpp_logits(path, ids) -> np.ndarray:
    model = llama_cpp.Llama(str(path), n_ctx=64, n_batch=64, logits_all=True, verbose=False, n_threads=2)
    try:
        model.eval(ids)
        return np.array(model.scores[: len(ids)], dtype=np.float64)
    finally:
        model.close()


def _ours(path, tmp_path, ids) -> tuple[np.ndarray, dict]:
    import mlx_lm

    from lenscope.models.gguf import convert
    from lenscope.models.precision import to_float

    folder = convert(path, tmp_path / f"{path.stem}-mlx")
    model, _ = mlx_lm.load(str(folder))
    to_float(model, mx.float32)
    source = json.loads((folder / "gguf_source.json").read_text())
    return np.array(model(mx.array([ids]))[0], dtype=np.float64), source


def _record(kind: str, name: str, how: str, diff: float, scale: float, argmax_same: float,
            floor: float | None = None, own: float | None = None) -> None:
    if table := os.environ.get("LENSCOPE_LLAMA_CPP_TABLE"):
        with open(table, "a") as f:
            f.write(json.dumps({"kind": kind, "name": name, "how": how, "max_abs_diff": round(diff, 4),
                                "exact_vs_llama_cpp": None if floor is None else round(floor, 4),
                                "lenscope_vs_exact": None if own is None else round(own, 5),
                                "max_abs_logit": round(scale, 2), "argmax_agree": argmax_same}) + "\n")


def _compare(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, float, float]:
    diff, scale = float(np.abs(ours - theirs).max()), float(np.abs(theirs).max())
    same = float((ours.argmax(-1) == theirs.argmax(-1)).mean())
    return diff, scale, same


@pytest.fixture(scope="module")
def f32_llama(tmp_path_factory):
    # weights of std 1/sqrt(fan-in), as trained models have: a random model is otherwise chaotic
    return gr.write_tiny(tmp_path_factory.mktemp("lc") / "f32.gguf", hidden=256, ffn=512, tied=False, scale=0.0625)


def _quantize(src, dst, file_type: str) -> None:
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{file_type}")
    params.nthread = 2
    assert llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params)) == 0


@pytest.mark.parametrize("file_type", FILE_TYPES)
def test_each_tensor_type_against_llama_cpp(f32_llama, tmp_path, file_type):
    """llama.cpp's quantizer makes the blocks; both read them. Exact types are repacked bit
    for bit, so what is left is llama.cpp's own 8-bit activations; requantized ones add theirs."""
    path = tmp_path / f"{file_type}.gguf"
    _quantize(f32_llama, path, file_type)
    ours, source = _ours(path, tmp_path, IDS)
    theirs = _llama_cpp_logits(path, IDS)
    exact = gr.forward(*gr.load_reference(path), IDS)  # float64 on the file's dequantized weights
    diff, scale, same = _compare(ours, theirs)
    floor = float(np.abs(exact - theirs).max())  # how far llama.cpp's own arithmetic is from exact
    own = float(np.abs(ours - exact).max())  # lenscope's conversion error, alone
    requant = ", ".join(f"{k} rms {100 * v['rel_rms']:.2f}%" for k, v in source["requantized"].items())
    how = "+".join(t for t in source["tensor_types"] if t != "F32") + (f" (8-bit: {requant})" if requant else "")
    _record("type", file_type, how, diff, scale, same, floor, own)
    assert same >= 0.9
    requantized = set(source["requantized"])
    assert requantized == set(source["tensor_types"]) & set(REQUANTIZED_TYPES)
    assert own < (0.02 if requantized else 1e-4) * scale


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_each_architecture_against_llama_cpp(tmp_path, arch):
    path = gr.write_tiny(tmp_path / f"{arch}.gguf", hidden=256, ffn=512, heads=4, **{"kv_heads": 2, **ARCHS[arch]})
    ours, _ = _ours(path, tmp_path, IDS)
    diff, scale, same = _compare(ours, _llama_cpp_logits(path, IDS))
    _record("architecture", arch, "synthetic F32", diff, scale, same)
    assert same == 1.0
    assert diff < 0.01 * scale


def _vocab_only(path, meta: dict, pre: str | None):
    """A GGUF holding only a vocabulary (llama.cpp loads it with vocab_only)."""
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tokenizer_model(meta["tokenizer.ggml.model"])
    if pre:
        w.add_tokenizer_pre(pre)
    w.add_token_list(meta["tokenizer.ggml.tokens"])
    w.add_token_types(meta["tokenizer.ggml.token_type"])
    if "tokenizer.ggml.merges" in meta:
        w.add_token_merges(meta["tokenizer.ggml.merges"])
    if "tokenizer.ggml.scores" in meta:
        w.add_token_scores(meta["tokenizer.ggml.scores"])
    for key in ("bos", "eos", "unknown"):
        if f"tokenizer.ggml.{key}_token_id" in meta:
            w.add_uint32(f"tokenizer.ggml.{key}_token_id", meta[f"tokenizer.ggml.{key}_token_id"])
    w.add_bool("tokenizer.ggml.add_bos_token", False)
    w.add_block_count(1)  # llama.cpp reads hyper-parameters even for a vocabulary
    w.add_context_length(64)
    w.add_embedding_length(8)
    w.add_feed_forward_length(8)
    w.add_head_count(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


TEXTS = ["Hello world! It's 2024-11-30, isn't it?", "  two  spaces\n\nnew\tlines\r\n", "1234567 + 89 = 1234656",
         "Ünïcödé naïve café, 東京 and Москва", "don't WE'LL they'VE", "x = [a_b(c), d->e]; // comment",
         "emoji 🙂🚀 and ZWJ 👩‍💻", "CamelCaseWord and HTTPServer and iPhone", "a\n  b\n    c\n"]


@pytest.fixture(scope="module")
def smollm2_vocab():
    from lenscope.models.gguf import open_reader, read_metadata
    from lenscope.models.sources import NAMED, cache_root

    path = cache_root() / "downloads" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        pytest.skip("SmolLM2 is not fetched yet (lenscope --model smollm2 fetches it)")
    assert NAMED["smollm2"]["file"] == path.name
    return read_metadata(path, open_reader(path))


@pytest.mark.parametrize("pre", ["smollm", "gpt-2", "llama-bpe", "qwen2", "tekken", "gpt-4o", "default",
                                 "deepseek-coder", "deepseek-v3", "falcon", "seed-coder", "bloom"])
def test_pre_tokenizers_split_as_llama_cpp(tmp_path, smollm2_vocab, pre):
    """SmolLM2's real 49k vocabulary and merges under each pre-tokenizer name: llama.cpp
    and lenscope must give the same ids for every text."""
    from lenscope.models.gguf_tokenizer import build_tokenizer

    meta = {**smollm2_vocab, "tokenizer.ggml.pre": pre}
    path = _vocab_only(tmp_path / "vocab.gguf", meta, pre)
    theirs = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    ours, _ = build_tokenizer(meta)
    agree = 0
    for text in TEXTS:
        want = theirs.tokenize(text.encode(), add_bos=False, special=True)
        got = ours.encode(text).ids
        agree += got == want
        assert got == want, (pre, text)
    _record("pre-tokenizer", pre, "SmolLM2 vocabulary", 0.0, 0.0, agree / len(TEXTS))


def test_sentencepiece_tokenizer_as_llama_cpp(tmp_path):
    """A SentencePiece ("llama") vocabulary trained here, with byte fallback."""
    spm = pytest.importorskip("sentencepiece")
    from lenscope.models.gguf_tokenizer import build_tokenizer

    corpus = tmp_path / "corpus.txt"
    words = ["cat", "dog", "bird", "fish", "tree", "house", "river", "stone"] * 20
    corpus.write_text("\n".join(f"the {w} of {i} world is where we wonder {w}s and {i * 7} things"
                                for i, w in enumerate(words)))
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(tmp_path / "sp"), vocab_size=400,
                                   model_type="bpe", byte_fallback=True, character_coverage=1.0,
                                   remove_extra_whitespaces=False, normalization_rule_name="identity", minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "sp.model"))
    n = sp.get_piece_size()
    meta = {"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": [sp.id_to_piece(i) for i in range(n)],
            "tokenizer.ggml.scores": [sp.get_score(i) for i in range(n)],
            "tokenizer.ggml.token_type": [3 if sp.is_control(i) else 2 if sp.is_unknown(i) else 6 if sp.is_byte(i)
                                          else 1 for i in range(n)],
            "tokenizer.ggml.bos_token_id": sp.bos_id(), "tokenizer.ggml.eos_token_id": sp.eos_id(),
            "tokenizer.ggml.unknown_token_id": sp.unk_id(), "tokenizer.ggml.add_bos_token": False}
    path = _vocab_only(tmp_path / "spm.gguf", meta, None)
    theirs = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    ours, _ = build_tokenizer(meta)
    for text in TEXTS:
        assert ours.encode(text).ids == theirs.tokenize(text.encode(), add_bos=False, special=True), text
    _record("tokenizer", "SentencePiece (llama)", "trained here, byte fallback", 0.0, 0.0, 1.0)


@pytest.mark.real_model
def test_smollm2_against_llama_cpp(smollm2_engine):
    """The real file: same prompt ids, same greedy tokens, and logits: lenscope within 1e-3
    of exact float64 arithmetic on the file's weights, llama.cpp as far from both as its
    8-bit activations take it."""
    from mlx_lm.generate import generate_step

    from lenscope.models.sources import cache_root

    path = cache_root() / "downloads" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    text = "The capital of France is Paris. The capital of Italy is"
    theirs = llama_cpp.Llama(str(path), n_ctx=128, n_batch=128, logits_all=True, verbose=False, n_threads=2)
    ids = theirs.tokenize(text.encode(), add_bos=False)
    assert smollm2_engine.encode(text) == ids
    greedy_theirs = []
    for tok in theirs.generate(ids, temp=0.0, top_k=1):
        greedy_theirs.append(tok)
        if len(greedy_theirs) == 12:
            break
    theirs.reset()
    theirs.eval(ids)
    ref = np.array(theirs.scores[: len(ids)], dtype=np.float64)
    theirs.close()
    with smollm2_engine.lock:
        logits = np.array(smollm2_engine.model(mx.array([ids]))[0].astype(mx.float32), dtype=np.float64)
    exact = gr.forward(*gr.load_reference(path), ids)
    diff, scale, same = _compare(logits, ref)
    floor, own = float(np.abs(exact - ref).max()), float(np.abs(logits - exact).max())
    ours = [int(t) for t, _ in generate_step(mx.array(ids), smollm2_engine.model, max_tokens=12)]
    _record("real file", "SmolLM2-135M Q4_1", f"lenscope {smollm2_engine.loaded.precision}", diff, scale, same,
            floor, own)
    assert ours == greedy_theirs
    assert same == 1.0
    assert own < 1e-3 * scale
