"""GGUF file -> mlx-lm model folder (model.safetensors, config.json, tokenizer files).

mx.load reads GGUF itself and hands Q4_0/Q4_1/Q8_0 tensors over already in MLX's
affine quantized layout (group 32), so those convert without touching a number. It
does not say which type each tensor had, though, and other types go wrong quietly
(Q4_K decodes to wrong float16, TQ1_0 tensors vanish) or fail the whole file (Q5_0,
Q3_K, IQ*), so the tensor table comes first from the `gguf` package (llama.cpp's own
reader), and anything unsupported is refused by name. The tokenizer is rebuilt from the
metadata with `tokenizers`; llama-arch files get `rope_traditional` (see _config).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import mlx.core as mx
import numpy as np

from lenscope.app.errors import BadInput
from lenscope.app.models import manifest

SUPPORTED_TYPES = ("F32", "F16", "BF16", "Q4_0", "Q4_1", "Q8_0")
# llama-quantize gives the output (or tied embedding) matrix a k-quant even in Q4_0/Q8_0
# files; those few are dequantized to float16. mx.load skips past these types (Q3_K, Q5_K and
# the IQ types make it fail), so the rest of the file still loads.
DEQUANTIZED_TYPES = ("Q2_K", "Q4_K", "Q6_K")
DEQUANTIZED_TENSORS = ("token_embd.weight", "output.weight")
ARCHITECTURES = ("llama", "qwen2", "qwen3")
GROUP_SIZE = 32  # every GGUF block type mx.load maps (Q4_0, Q4_1, Q8_0) has 32 weights a block

TOP_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
LAYER_NAMES = {
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

# tokenizer.ggml.pre -> how llama.cpp splits text before byte-level BPE (llama-vocab.cpp)
GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
PRE_TOKENIZERS = {
    **dict.fromkeys(("default", "gpt2", "gpt-2", "mpt", "olmo", "jais"), "gpt2"),
    **dict.fromkeys(("smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"), "digits"),
    **dict.fromkeys(("llama-bpe", "llama3", "llama-v3", "smaug-bpe", "dbrx", "falcon3"), "llama3"),
    **dict.fromkeys(("qwen2", "deepseek-r1-qwen", "stablelm2"), "qwen2"),
}
CONTROL, USER_DEFINED = 3, 4  # llama.cpp token types


def _value(v):
    """Metadata as plain Python: mx.load gives numbers as mx.array."""
    if isinstance(v, mx.array):
        if v.ndim == 0 and v.dtype == mx.float32:
            return float(str(np.float32(v.item())))  # 1e-05, not 9.999999747378752e-06
        return v.item() if v.ndim == 0 else v.tolist()
    return v


def mlx_name(gguf_name: str) -> str | None:
    """llama.cpp tensor name -> mlx-lm's (None when there is no counterpart)."""
    stem, _, suffix = gguf_name.rpartition(".")
    parts = stem.split(".")
    if len(parts) == 3 and parts[0] == "blk" and parts[2] in LAYER_NAMES:
        return f"model.layers.{parts[1]}.{LAYER_NAMES[parts[2]]}.{suffix}"
    if stem in TOP_NAMES:
        return f"{TOP_NAMES[stem]}.{suffix}"
    return None


# GGUF value types -> byte size of one element (8: string, 9: array, sized as they are read)
_SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
MAX_DIMS = 4  # GGML_MAX_DIMS: llama.cpp's tensors have at most four
MAX_HEADER_ITEMS = 1 << 24  # key-values, tensors or array elements: more is no model's header


def check_header(path: Path) -> None:
    """Walk the GGUF header (key-values and tensor table) checking every count, length and
    dimension against what is left of the file and against sane limits, before any reader
    allocates from them: a hostile header is one BadInput line, not a hang, an allocation
    of 2^40 elements, or an assertion inside MLX's loader."""
    size = path.stat().st_size
    where = f"model '{path}': not a readable GGUF file"
    with open(path, "rb") as f:
        def take(n: int) -> bytes:
            if n < 0 or f.tell() + n > size:
                raise BadInput(f"{where} (the header claims {n} bytes past the end of the file at byte {f.tell()})")
            return f.read(n)

        def u(n: int) -> int:
            return int.from_bytes(take(n), "little")

        def count(what: str, item_bytes: int) -> int:
            n = u(8)
            if n > MAX_HEADER_ITEMS or n * item_bytes > size - f.tell():
                raise BadInput(f"{where} ({what}: {n} does not fit in the file)")
            return n

        def string(what: str) -> None:
            take(count(f"{what} length", 1))

        def value(vtype: int, what: str, depth: int = 0) -> None:
            if vtype == 8:
                string(what)
            elif vtype == 9:
                etype = u(4)
                if depth or etype not in (*_SCALAR, 8):
                    raise BadInput(f"{where} ({what}: an array of type {etype})")
                n = count(f"{what} array length", _SCALAR.get(etype, 8))
                if etype == 8:
                    for _ in range(n):
                        string(what)
                else:
                    take(n * _SCALAR[etype])
            elif vtype in _SCALAR:
                take(_SCALAR[vtype])
            else:
                raise BadInput(f"{where} ({what}: value type {vtype})")

        if take(4) != b"GGUF":
            raise BadInput(f"{where} (no GGUF magic)")
        if u(4) not in (2, 3):
            raise BadInput(f"{where} (GGUF version not 2 or 3)")
        n_tensors, n_kv = count("tensor count", 32), count("key-value count", 13)
        for k in range(n_kv):
            key = take(count(f"key {k + 1} length", 1)).decode("utf-8", "replace")
            value(u(4), f"'{key[:60]}'")
        for k in range(n_tensors):
            name = take(count(f"tensor {k + 1} name length", 1)).decode("utf-8", "replace")[:60]
            n_dims = u(4)
            if not 1 <= n_dims <= MAX_DIMS:
                raise BadInput(f"{where} (tensor '{name}': {n_dims} dimensions; GGUF has 1 to {MAX_DIMS})")
            dims = [u(8) for _ in range(n_dims)]
            if any(d == 0 or d > size for d in dims):
                raise BadInput(f"{where} (tensor '{name}': shape {dims} cannot be in a file of {size} bytes)")
            take(12)  # type, offset


def read_table(path: Path):
    """llama.cpp's reader over the file: the tensor table (types, raw bytes) that mx.load hides."""
    try:
        import gguf
    except ImportError:
        raise BadInput(f"model '{path}': reading a GGUF needs the gguf package (pip install gguf)") from None
    try:
        return {t.name: t for t in gguf.GGUFReader(path).tensors}
    except Exception as exc:  # the reader raises ValueError, struct/numpy errors, OSError on bad files
        raise BadInput(f"model '{path}': not a readable GGUF file ({exc})") from None


def check_types(path: Path, table: dict) -> None:
    """Refuse, naming them, tensor types this converter cannot take over faithfully."""
    bad = {n: t.tensor_type.name for n, t in table.items()
           if t.tensor_type.name not in SUPPORTED_TYPES
           and not (t.tensor_type.name in DEQUANTIZED_TYPES and n in DEQUANTIZED_TENSORS)}
    if bad:
        raise BadInput(
            f"model '{path}': GGUF tensor type {', '.join(sorted(set(bad.values())))} is not supported "
            f"(e.g. {', '.join(list(bad)[:3])}); supported: {', '.join(SUPPORTED_TYPES)}, and "
            f"{'/'.join(DEQUANTIZED_TYPES)} for token_embd/output only (a Q4_0, Q4_1 or Q8_0 file converts)"
        )


MAX_TOKEN_BYTES = 4096  # a vocabulary token longer than this is no tokenizer's (rebuilding is quadratic)
MAX_VOCAB = 1 << 22


def check_metadata(path: Path, meta: dict) -> None:
    """The metadata the conversion reads, each key of the type and range it must have: a
    missing, mistyped or absurd value is one BadInput line naming the key, not a traceback
    (or minutes of tokenizer building) later."""
    where = f"model '{path}': GGUF metadata"
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        raise BadInput(f"{where}: 'general.architecture' is missing or not text")

    def number(name: str, kind: type, lo: float, hi: float, required: bool = True) -> None:
        value = _value(meta.get(f"{arch}.{name}"))
        if value is None and not required:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int) \
                or not lo <= value <= hi:
            raise BadInput(f"{where}: '{arch}.{name}' is {value!r:.40}, not a {kind.__name__} in [{lo:g}, {hi:g}]")

    number("embedding_length", int, 1, 1 << 17)
    number("attention.head_count", int, 1, 1 << 12)
    number("block_count", int, 1, 1 << 12)
    number("feed_forward_length", int, 1, 1 << 20)
    number("attention.head_count_kv", int, 1, 1 << 12, required=False)
    number("attention.key_length", int, 1, 1 << 14, required=False)
    number("attention.layer_norm_rms_epsilon", float, 0, 1, required=False)
    number("context_length", int, 1, 1 << 24, required=False)
    number("rope.freq_base", float, 1e-6, 1e12, required=False)
    tokens = meta.get("tokenizer.ggml.tokens")
    if not isinstance(tokens, list) or not tokens or len(tokens) > MAX_VOCAB \
            or not all(isinstance(tok, str) for tok in tokens):
        raise BadInput(f"{where}: 'tokenizer.ggml.tokens' is missing or not a list of texts")
    if max(len(tok) for tok in tokens) > MAX_TOKEN_BYTES:
        raise BadInput(f"{where}: a token of over {MAX_TOKEN_BYTES} characters is not a vocabulary's")
    for name in ("scores", "token_type"):
        values = _value(meta.get(f"tokenizer.ggml.{name}"))
        if values is not None and (not isinstance(values, list) or len(values) != len(tokens)):
            raise BadInput(f"{where}: 'tokenizer.ggml.{name}' does not hold one value per token")
    merges = meta.get("tokenizer.ggml.merges")
    if merges is not None and (not isinstance(merges, list) or not all(isinstance(m, str) and m.count(" ") == 1
                                                                          for m in merges)):
        raise BadInput(f"{where}: 'tokenizer.ggml.merges' is not a list of 'a b' pairs")
    for key in ("bos", "eos", "unknown", "padding"):
        i = _value(meta.get(f"tokenizer.ggml.{key}_token_id"))
        if i is not None and (isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(tokens)):
            raise BadInput(f"{where}: 'tokenizer.ggml.{key}_token_id' is {i!r:.20}, not a token (0..{len(tokens) - 1})")


def _config(path: Path, meta: dict, weights: dict) -> dict:
    arch = meta.get("general.architecture")
    if arch not in ARCHITECTURES:
        raise BadInput(
            f"model '{path}': GGUF architecture '{arch}' is not supported (supported: {', '.join(ARCHITECTURES)})"
        )

    def key(name, default=None):
        return _value(meta.get(f"{arch}.{name}", default))

    hidden, heads = key("embedding_length"), key("attention.head_count")
    head_dim = key("attention.key_length") or hidden // heads
    if key("rope.dimension_count", head_dim) != head_dim:
        raise BadInput(f"model '{path}': partial rotary embeddings are not supported")
    config = {
        "model_type": arch,
        "hidden_size": hidden,
        "num_hidden_layers": key("block_count"),
        "intermediate_size": key("feed_forward_length"),
        "num_attention_heads": heads,
        "num_key_value_heads": key("attention.head_count_kv") or heads,
        "head_dim": head_dim,
        "rms_norm_eps": key("attention.layer_norm_rms_epsilon"),
        "rope_theta": key("rope.freq_base", 10000.0),
        "vocab_size": key("vocab_size") or weights["token_embd.weight"].shape[0],
        "max_position_embeddings": key("context_length", 4096),
        "tie_word_embeddings": "output.weight" not in weights,
    }
    if arch == "llama":
        # llama.cpp's converter permutes llama Q/K rows so that rotary pairs are adjacent
        # (ggml's "normal" rope); MLX's traditional rope is that same pairing.
        config["rope_traditional"] = True
        config["attention_bias"] = "blk.0.attn_q.bias" in weights
    if arch == "qwen2":
        config["rope_traditional"] = False  # qwen is stored unpermuted (ggml's neox rope)
    if "rope_freqs.weight" in weights:
        config["rope_scaling"] = _llama3_scaling(path, np.array(weights["rope_freqs.weight"]), config,
                                                 key("rope.scaling.original_context_length", 8192))
    scaling = key("rope.scaling.type")
    if scaling == "linear":
        config["rope_scaling"] = {"type": "linear", "factor": key("rope.scaling.factor")}
    elif scaling not in (None, "none"):
        raise BadInput(f"model '{path}': rope scaling '{scaling}' is not supported (supported: linear)")
    for name in ("bos", "eos"):
        if f"tokenizer.ggml.{name}_token_id" in meta:
            config[f"{name}_token_id"] = _value(meta[f"tokenizer.ggml.{name}_token_id"])
    return config


def _llama3_scaling(path: Path, factors: np.ndarray, config: dict, context: int) -> dict:
    """Llama 3.1+ files carry per-frequency rope factors (rope_freqs) instead of the
    parameters; mlx-lm wants the parameters. Recover them, and check they give the same factors
    (the formula llama.cpp's converter used to write them)."""
    scaling = {"rope_type": "llama3", "factor": float(factors.max()), "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": context}
    d = config["head_dim"]
    wavelen = 2 * np.pi * config["rope_theta"] ** (np.arange(0, d, 2) / d)
    smooth = (context / wavelen - 1.0) / (4.0 - 1.0)
    expected = np.where(wavelen < context / 4.0, 1.0, np.where(
        wavelen > context, scaling["factor"], 1 / ((1 - smooth) / scaling["factor"] + smooth)))
    if factors.shape != expected.shape or not np.allclose(factors, expected, rtol=1e-3):
        raise BadInput(f"model '{path}': rope_freqs.weight is not llama3 rope scaling (the only kind supported)")
    return scaling


def _weights(path: Path, raw: dict, table: dict) -> tuple[dict, dict | None]:
    """Rename to mlx-lm keys; the quantization config (per layer where bits differ)."""
    from gguf.quants import dequantize

    weights, bits = {}, {}
    for name, array in raw.items():
        if name == "rope_freqs.weight":  # became rope_scaling in config.json
            continue
        target = mlx_name(name)
        if target is None:
            raise BadInput(f"model '{path}': GGUF tensor '{name}' has no mlx-lm counterpart")
        kind = table[name].tensor_type.name if name in table else None
        if kind == "BF16":  # mx.load narrows BF16 to float16 (inf past 65504): take the bits
            array = mx.array(np.array(table[name].data).view(np.uint16)).view(mx.bfloat16).reshape(array.shape)
        elif kind in DEQUANTIZED_TYPES:  # mx.load decodes Q4_K wrongly: llama.cpp's dequantizer
            array = mx.array(dequantize(table[name].data, table[name].tensor_type).astype(np.float16))
        weights[target] = array
        if name.endswith(".scales"):
            module = target.rpartition(".")[0]
            in_dims = array.shape[-1] * GROUP_SIZE
            bits[module] = raw[name.removesuffix(".scales") + ".weight"].shape[-1] * 32 // in_dims
    if not bits:
        return weights, None
    common = max(set(bits.values()), key=list(bits.values()).count)
    quant = {"group_size": GROUP_SIZE, "bits": common}
    # mlx-lm reads per-module entries ahead of the default (Q8_0 embeddings in a Q4 file)
    quant.update({m: {"group_size": GROUP_SIZE, "bits": b} for m, b in sorted(bits.items()) if b != common})
    return weights, quant


def _spm_merges(tokens: list[str], scores: list[float], types: list[int]) -> list[tuple[str, str]]:
    """SentencePiece BPE keeps scores, not merges: every split of a token into two vocabulary
    pieces is a merge, ranked by the merged token's score (llama.cpp merges the best first)."""
    ids = {t: i for i, t in enumerate(tokens)}
    ranked = []
    for token, i in ids.items():
        if types and types[i] != 1:
            continue
        for k in range(1, len(token)):
            a, b = token[:k], token[k:]
            if a in ids and b in ids:
                ranked.append((-scores[i], ids[a], ids[b], a, b))
    ranked.sort()
    return [(a, b) for *_, a, b in ranked]


def build_tokenizer(meta: dict):
    """A `tokenizers.Tokenizer` equal to the one the GGUF metadata describes."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    kind = meta.get("tokenizer.ggml.model")
    tokens = list(meta["tokenizer.ggml.tokens"])
    types = _value(meta.get("tokenizer.ggml.token_type", [])) or []
    vocab = {t: i for i, t in enumerate(tokens)}
    if kind == "gpt2":
        pre = meta.get("tokenizer.ggml.pre", "default")
        split = PRE_TOKENIZERS.get(pre)
        if split is None:
            raise BadInput(
                f"GGUF tokenizer pre-tokenizer '{pre}' is not supported (supported: {', '.join(PRE_TOKENIZERS)})"
            )
        if "tokenizer.ggml.merges" not in meta:
            raise BadInput("GGUF tokenizer: a gpt2 (byte-level BPE) vocabulary without merges")
        merges = [tuple(m.split(" ")) for m in meta["tokenizer.ggml.merges"]]
        # llama3's tokenizer takes a word that is in the vocabulary whole (llama.cpp: ignore_merges)
        tok = Tokenizer(models.BPE(vocab, merges, ignore_merges=split == "llama3"))
        byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=split in ("gpt2", "digits"))
        tok.pre_tokenizer = {
            "gpt2": byte_level,
            "digits": pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level]),
            "llama3": pre_tokenizers.Sequence(
                [pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"), byte_level]),
            "qwen2": pre_tokenizers.Sequence(
                [pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"), byte_level]),
        }[split]
        tok.decoder = decoders.ByteLevel()
        post = [processors.ByteLevel(trim_offsets=False)]
        add_bos_default = False
    elif kind == "llama":
        scores = _value(meta["tokenizer.ggml.scores"])
        unk = tokens[_value(meta.get("tokenizer.ggml.unknown_token_id", 0))]
        tok = Tokenizer(models.BPE(vocab, _spm_merges(tokens, scores, types), unk_token=unk,
                                   fuse_unk=True, byte_fallback=True))
        prefix = bool(_value(meta.get("tokenizer.ggml.add_space_prefix", True)))
        # llama.cpp prefixes a space to every text fragment that follows a special token (or
        # starts the text) and spells spaces as U+2581: a normalizer does the same per fragment
        spaces = [normalizers.Replace(" ", "\u2581")]
        tok.normalizer = normalizers.Sequence(([normalizers.Prepend("\u2581")] if prefix else []) + spaces)
        steps = [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
        tok.decoder = decoders.Sequence(steps + ([decoders.Strip(" ", 1, 0)] if prefix else []))
        post = []
        add_bos_default = True
    else:
        raise BadInput(f"GGUF tokenizer model '{kind}' is not supported (supported: gpt2, llama)")

    # control tokens (<|im_start|>) and user-defined ones stay whole, as llama.cpp keeps them
    special = [AddedToken(t, special=True, normalized=False) for t, k in zip(tokens, types) if k == CONTROL]
    user = [AddedToken(t, special=False, normalized=False) for t, k in zip(tokens, types) if k == USER_DEFINED]
    tok.add_special_tokens(special)
    tok.add_tokens(user)
    if tok.get_vocab_size(with_added_tokens=True) != len(tokens):
        raise BadInput(f"GGUF tokenizer: {len(tokens)} tokens in the file, {tok.get_vocab_size()} rebuilt")

    flags = {name: bool(_value(meta.get(f"tokenizer.ggml.add_{name}_token", name == "bos" and add_bos_default)))
             for name in ("bos", "eos")}
    ends = {name: tokens[_value(meta[f"tokenizer.ggml.{name}_token_id"])] for name in ("bos", "eos")
            if f"tokenizer.ggml.{name}_token_id" in meta}
    if flags["bos"] or flags["eos"]:
        first = [ends["bos"]] if flags["bos"] and "bos" in ends else []
        last = [ends["eos"]] if flags["eos"] and "eos" in ends else []
        post.append(processors.TemplateProcessing(
            single=" ".join(first + ["$A"] + last),
            pair=" ".join(first + ["$A"] + last + first + ["$B:1"] + last),
            special_tokens=[(t, vocab[t]) for t in dict.fromkeys(first + last)],
        ))
    if post:
        tok.post_processor = processors.Sequence(post) if len(post) > 1 else post[0]
    return tok, flags


def _tokenizer_config(meta: dict, flags: dict) -> dict:
    tokens = meta["tokenizer.ggml.tokens"]
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False,
              "add_bos_token": flags["bos"], "add_eos_token": flags["eos"]}
    for name, key in (("bos", "bos"), ("eos", "eos"), ("unk", "unknown"), ("pad", "padding")):
        if (i := meta.get(f"tokenizer.ggml.{key}_token_id")) is not None and _value(i) < len(tokens):
            config[f"{name}_token"] = tokens[_value(i)]
    if template := meta.get("tokenizer.chat_template"):
        config["chat_template"] = template
    return config


def convert(gguf_path: str | os.PathLike, out_dir: str | os.PathLike,
            progress: Callable[[str], None] | None = None) -> Path:
    """Convert a GGUF file into an mlx-lm folder at out_dir (written whole or not at all)."""
    say = progress or (lambda message: None)
    path, out = Path(gguf_path).expanduser(), Path(out_dir).expanduser()
    if not path.is_file():
        raise BadInput(f"model '{gguf_path}': no such file")
    say(f"reading {path.name}")
    try:
        check_header(path)
    except OSError as exc:
        raise BadInput(f"model '{path}': cannot read it ({exc.strerror or exc})") from None
    table = read_table(path)
    check_types(path, table)
    try:
        raw, meta = mx.load(str(path), return_metadata=True)
    except Exception as exc:  # MLX raises RuntimeError/ValueError with its own text
        raise BadInput(f"model '{path}': mx.load cannot read it ({exc})") from None
    check_metadata(path, meta)
    config = _config(path, meta, raw)
    weights, quant = _weights(path, raw, table)
    if quant:
        config["quantization"] = quant
    say("building the tokenizer")
    try:
        tokenizer, flags = build_tokenizer(meta)
    except BadInput as exc:
        raise BadInput(f"model '{path}': {exc}") from None

    say(f"writing {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        mx.save_safetensors(str(tmp / "model.safetensors"), weights, metadata={"format": "mlx"})
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        tokenizer.save(str(tmp / "tokenizer.json"))
        (tmp / "tokenizer_config.json").write_text(json.dumps(_tokenizer_config(meta, flags), indent=2) + "\n")
        source = {"source": str(path.resolve()), "size_bytes": path.stat().st_size,
                  "architecture": meta.get("general.architecture"), "name": meta.get("general.name"),
                  "tensor_types": sorted({t.tensor_type.name for t in table.values()})}
        (tmp / "gguf_source.json").write_text(json.dumps(source, indent=2) + "\n")
        manifest.write(tmp)  # checked before each use (sources._complete)
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
        try:
            os.rename(tmp, out)
        except OSError:
            if not (out / "config.json").is_file():  # a finished folder from a concurrent run is fine
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"converted {path.name}")
    return out
