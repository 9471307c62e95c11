"""GGUF file -> mlx-lm model folder (model-NNNNN.safetensors shards, config.json, tokenizer files).

The header is walked and bounded first (read_header: no reader allocates from a count it
has not checked), then llama.cpp's own reader (the `gguf` package) memory-maps the file
and each tensor is converted on its own (gguf_tensors), written out in shards as they
fill, so the converted weights are never all in memory at once. Architectures map onto
mlx-lm's model classes (gguf_archs); the tokenizer is rebuilt from the metadata
(gguf_tokenizer).
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx
import numpy as np

from lenscope.errors import BadInput, user_path
from lenscope.models import gguf_archs, manifest
from lenscope.models.gguf_tensors import SUPPORTED_TYPES, convert_tensor
from lenscope.models.gguf_tokenizer import build_tokenizer, tokenizer_config

_FORMAT = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
HEADER_KEYS = ("general.architecture", "general.name", "general.file_type", "general.alignment",
               "general.size_label")


@dataclass
class Header:
    meta: dict  # the HEADER_KEYS the file has
    tensors: dict[str, tuple[str, int]]  # name -> (type name, number of weights)

    @property
    def architecture(self) -> str | None:
        return self.meta.get("general.architecture")

    @property
    def parameters(self) -> int:
        return sum(n for _, n in self.tensors.values())

    def quantization(self) -> str:
        """The file type llama.cpp names (Q4_K_M), else the type holding most weights."""
        from gguf import LlamaFileType  # lazy: startup

        ftype = self.meta.get("general.file_type")
        try:
            return LlamaFileType(ftype).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            totals: dict[str, int] = {}
            for kind, n in self.tensors.values():
                totals[kind] = totals.get(kind, 0) + n
            return max(totals, key=totals.get) if totals else "?"


# GGUF value types -> byte size of one element (8: string, 9: array, sized as they are read)
_SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
MAX_DIMS = 4  # GGML_MAX_DIMS: llama.cpp's tensors have at most four
MAX_HEADER_ITEMS = 1 << 24  # key-values or elements of one array: more is no model's header
# llama.cpp's reader makes a Python object per array element: all arrays together stay under
# this (a 262k-token vocabulary with scores, types and merges is about 1.1M), and tensors
# under MAX_TENSORS (a 671B mixture of experts has about 1.1k)
MAX_ARRAY_ITEMS, MAX_TENSORS = 1 << 23, 1 << 16


def read_header(path: Path) -> Header:
    """Walk the GGUF header (key-values and tensor table) checking every count, length and
    dimension against what is left of the file and against sane limits, before any reader
    allocates from them: a hostile header is one BadInput line, not a hang or an allocation
    of 2^40 elements. Reads the header only: listing a file costs what its vocabulary does
    (0.45 s for SmolLM2's 49k tokens and merges), never its weights."""
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

        def string(what: str) -> str:
            return take(count(f"{what} length", 1)).decode("utf-8", "replace")

        def value(vtype: int, what: str, depth: int = 0):
            if vtype == 8:
                return string(what)
            elif vtype == 9:
                etype = u(4)
                if depth or etype not in (*_SCALAR, 8):
                    raise BadInput(f"{where} ({what}: an array of type {etype})")
                n = count(f"{what} array length", _SCALAR.get(etype, 8))
                seen[0] += n
                if seen[0] > MAX_ARRAY_ITEMS:
                    raise BadInput(f"{where} (its arrays hold over {MAX_ARRAY_ITEMS} items in all)")
                if etype == 8:
                    for _ in range(n):
                        string(what)
                else:
                    take(n * _SCALAR[etype])
            elif vtype in _SCALAR:
                raw = take(_SCALAR[vtype])
                return struct.unpack("<" + _FORMAT[vtype], raw)[0]
            else:
                raise BadInput(f"{where} ({what}: value type {vtype})")

        if take(4) != b"GGUF":
            raise BadInput(f"{where} (no GGUF magic)")
        if u(4) not in (2, 3):
            raise BadInput(f"{where} (GGUF version not 2 or 3)")
        n_tensors, n_kv = count("tensor count", 32), count("key-value count", 13)
        if n_tensors > MAX_TENSORS:
            raise BadInput(f"{where} ({n_tensors} tensors; a model has at most {MAX_TENSORS})")
        seen = [0]  # array items so far
        meta = {}
        for k in range(n_kv):
            key = take(count(f"key {k + 1} length", 1)).decode("utf-8", "replace")
            got = value(u(4), f"'{key[:60]}'")
            if key in HEADER_KEYS:
                meta[key] = got
        tensors = []
        for k in range(n_tensors):
            name = take(count(f"tensor {k + 1} name length", 1)).decode("utf-8", "replace")[:60]
            n_dims = u(4)
            if not 1 <= n_dims <= MAX_DIMS:
                raise BadInput(f"{where} (tensor '{name}': {n_dims} dimensions; GGUF has 1 to {MAX_DIMS})")
            dims = [u(8) for _ in range(n_dims)]
            if any(d == 0 or d > size for d in dims):
                raise BadInput(f"{where} (tensor '{name}': shape {dims} cannot be in a file of {size} bytes)")
            tensors.append((name, dims, u(4), u(8)))
        alignment = meta.get("general.alignment", 32)
        if isinstance(alignment, bool) or not isinstance(alignment, int) or not 1 <= alignment <= 1 << 16 \
                or alignment & (alignment - 1):
            raise BadInput(f"{where} (general.alignment {alignment!r:.20} is not a power of two up to 65536)")
        start = -(-f.tell() // alignment) * alignment
    return Header(meta, _tensor_table(tensors, start, size, alignment, where))


def _tensor_table(tensors: list, start: int, size: int, alignment: int, where: str) -> dict[str, tuple[str, int]]:
    """name -> (type name, weights), each tensor's bytes checked to lie inside the file."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType  # lazy: startup

    table = {}
    for name, dims, type_id, offset in tensors:
        try:
            kind = GGMLQuantizationType(type_id)
        except ValueError:
            raise BadInput(f"{where} (tensor '{name}': unknown tensor type id {type_id})") from None
        block, block_bytes = GGML_QUANT_SIZES[kind]
        n = int(np.prod(dims, dtype=object))
        if dims[0] % block:
            raise BadInput(f"{where} (tensor '{name}': {dims[0]} columns is not whole {kind.name} blocks of {block})")
        if offset % alignment:
            raise BadInput(f"{where} (tensor '{name}': offset {offset} is not aligned to {alignment})")
        if start + offset + n // block * block_bytes > size:
            raise BadInput(f"{where} (tensor '{name}': its data ends past the end of the file)")
        table[name] = (kind.name, n)
    return table


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
        value = meta.get(f"{arch}.{name}")
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
        values = meta.get(f"tokenizer.ggml.{name}")
        if values is not None and (not isinstance(values, list) or len(values) != len(tokens)):
            raise BadInput(f"{where}: 'tokenizer.ggml.{name}' does not hold one value per token")
    merges = meta.get("tokenizer.ggml.merges")
    if merges is not None and (not isinstance(merges, list) or not all(isinstance(m, str) and m.count(" ") == 1
                                                                          for m in merges)):
        raise BadInput(f"{where}: 'tokenizer.ggml.merges' is not a list of 'a b' pairs")
    for key in ("bos", "eos", "unknown", "padding"):
        i = meta.get(f"tokenizer.ggml.{key}_token_id")
        if i is not None and (isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(tokens)):
            raise BadInput(f"{where}: 'tokenizer.ggml.{key}_token_id' is {i!r:.20}, not a token (0..{len(tokens) - 1})")


def read_metadata(path: Path, reader) -> dict:
    """Every key-value as plain Python (float32 scalars as their shortest decimal)."""
    from gguf import GGUFValueType  # lazy: startup

    meta = {}
    try:
        for key, field in reader.fields.items():
            value = field.contents()
            if field.types == [GGUFValueType.FLOAT32]:
                value = float(str(np.float32(value)))  # 1e-05, not 9.999999747378752e-06
            meta[key] = value
    except Exception as exc:  # the reader's own decoding errors (bad UTF-8, numpy views)
        raise BadInput(f"model '{path}': GGUF metadata cannot be read ({exc})") from None
    return meta


def open_reader(path: Path):
    """llama.cpp's reader over the (already bounded) file, memory-mapped."""
    try:
        import gguf  # lazy: startup
    except ImportError:
        raise BadInput(f"model '{path}': reading a GGUF needs the gguf package (pip install gguf)") from None
    try:
        return gguf.GGUFReader(path)
    except Exception as exc:  # the reader raises ValueError, struct/numpy errors, OSError on bad files
        raise BadInput(f"model '{path}': not a readable GGUF file ({exc})") from None


def check_types(path: Path, header: Header) -> None:
    """Refuse, naming them, tensor types this converter cannot take over faithfully."""
    bad = {n: kind for n, (kind, _) in header.tensors.items() if kind not in SUPPORTED_TYPES}
    if bad:
        raise BadInput(
            f"model '{path}': GGUF tensor type {', '.join(sorted(set(bad.values())))} is not supported "
            f"(e.g. {', '.join(list(bad)[:3])}); supported: {', '.join(SUPPORTED_TYPES)}"
        )


SHARD_BYTES = 1 << 29  # converted weights held before they are written out


def _drop_mapped_pages(tensors: dict) -> None:
    """The file's pages read so far count in RSS though the kernel could drop them: say so
    (they are read again if needed). No-op where madvise is missing."""
    mapping = getattr(next(iter(tensors.values())).data, "_mmap", None) if tensors else None  # np.memmap's
    if isinstance(mapping, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        mapping.madvise(mmap.MADV_DONTNEED)


def _weights(path: Path, arch: str, tensors: dict, say: Callable[[str], None],
             out: Path) -> tuple[dict | None, dict]:
    """Every tensor converted in turn and written to out/model-NNNNN.safetensors as shards
    fill: (quantization config, requantization error per GGUF type)."""
    weights, bits, errors, held, shards = {}, {}, {}, 0, 0

    def flush() -> None:
        nonlocal weights, held, shards
        if weights:
            shards += 1
            mx.save_safetensors(str(out / f"model-{shards:05d}.safetensors"), weights, metadata={"format": "mlx"})
        weights, held = {}, 0
        mx.clear_cache()  # MLX keeps freed buffers for reuse: give them back
        _drop_mapped_pages(tensors)

    names = [n for n in tensors if n not in gguf_archs.CONFIG_ONLY]
    total = sum(int(tensors[n].n_bytes) for n in names) or 1
    done, start, shown = 0, time.perf_counter(), -1
    for name in names:
        tensor = tensors[name]
        target = gguf_archs.mlx_name(arch, name)
        if target is None:
            raise BadInput(f"model '{path}': GGUF tensor '{name}' has no mlx-lm counterpart for {arch}")
        try:
            got = convert_tensor(tensor)
        except BadInput as exc:
            raise BadInput(f"model '{path}': {exc}") from None
        module = target.rpartition(".")[0]
        for key, array in got.arrays.items():
            if key == "weight" and gguf_archs.is_norm(name):
                array = mx.array(gguf_archs.unfold_norm(arch, name, np.array(array, np.float32))).astype(array.dtype)
            weights[f"{module}.{key}" if got.bits else target] = array
            held += array.nbytes
        if held >= SHARD_BYTES:
            flush()
        if got.bits:
            bits[module] = got.bits
        if got.error:
            kind = tensor.tensor_type.name
            worst = errors.setdefault(kind, {"max_abs": 0.0, "rel_rms": 0.0})
            worst["max_abs"] = max(worst["max_abs"], got.error["max_abs"])
            worst["rel_rms"] = max(worst["rel_rms"], got.error["rel_rms"])
        mx.eval(list(got.arrays.values()))
        done += int(tensor.n_bytes)
        percent = 100 * done // total
        if percent // 10 > shown:  # a line every 10%: a bar on a terminal, lines in a log
            shown = percent // 10
            bar = "#" * (percent // 5) + "." * (20 - percent // 5)
            say(f"converting [{bar}] {percent:3d}% {done / 2**20:,.0f}/{total / 2**20:,.0f} MiB "
                f"{time.perf_counter() - start:.1f} s")
    flush()
    if not bits:
        return None, errors
    common = max(set(bits.values()), key=list(bits.values()).count)
    quant = {"group_size": 32, "bits": common}
    # mlx-lm reads per-module entries ahead of the default (Q6_K output.weight in a Q4_K file)
    quant.update({m: {"group_size": 32, "bits": b} for m, b in sorted(bits.items()) if b != common})
    return quant, errors


def convert(gguf_path: str | os.PathLike, out_dir: str | os.PathLike,
            progress: Callable[[str], None] | None = None) -> Path:
    """Convert a GGUF file into an mlx-lm folder at out_dir (written whole or not at all)."""
    say = progress or (lambda message: None)
    path, out = user_path(gguf_path, f"model '{gguf_path}'"), user_path(out_dir, f"'{out_dir}'")
    if not path.is_file():
        raise BadInput(f"model '{gguf_path}': no such file")
    say(f"reading {path.name} ({path.stat().st_size / 2**20:,.0f} MiB; a large vocabulary takes a while)")
    try:
        header = read_header(path)
    except OSError as exc:
        raise BadInput(f"model '{path}': cannot read it ({exc.strerror or exc})") from None
    check_types(path, header)
    reader = open_reader(path)
    meta = read_metadata(path, reader)
    check_metadata(path, meta)
    tensors = {t.name: t for t in reader.tensors}
    config = gguf_archs.config(path, meta, tensors)
    say("building the tokenizer")
    try:
        tokenizer, flags = build_tokenizer(meta)
    except BadInput as exc:
        raise BadInput(f"model '{path}': {exc}") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        quant, errors = _weights(path, meta["general.architecture"], tensors, say, tmp)
        if quant:
            config["quantization"] = quant
        for kind, error in sorted(errors.items()):
            say(f"{kind} has no exact MLX layout: requantized to 8-bit, max |error| {error['max_abs']:.3g}, "
                f"rms error {100 * error['rel_rms']:.2f}% of the weights' rms")
        say(f"writing {out}")
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        tokenizer.save(str(tmp / "tokenizer.json"))
        (tmp / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(meta, flags), indent=2) + "\n")
        source = {"source": str(path.resolve()), "size_bytes": path.stat().st_size,
                  "architecture": header.architecture, "name": meta.get("general.name"),
                  "quantization": header.quantization(),
                  "tensor_types": sorted({kind for kind, _ in header.tensors.values()}),
                  "requantized": {k: {"bits": 8, **v} for k, v in sorted(errors.items())}}
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
