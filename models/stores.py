"""GGUF files other programs already keep on disk: Ollama's store, LM Studio's models
folder and `*.gguf` files in the Hugging Face hub cache. Found by walking folders and
reading headers only (gguf.read_header): listing never reads a file's weights.

Ollama: $OLLAMA_MODELS (else ~/.ollama/models) holds manifests/<host>/<namespace>/<name>/<tag>
(JSON: layers, the model one with mediaType application/vnd.ollama.image.model) and
blobs/sha256-<hex>. `ollama:NAME[:TAG]` resolves through that manifest; the blob's name is
its claimed sha256, checked against the content once (the hash is memoized per path, size and
time) before it keys the conversion cache.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from lenscope.errors import BadInput, one_line, user_path
from lenscope.models.manifest import is_sha256

OLLAMA_HOST, OLLAMA_NAMESPACE = "registry.ollama.ai", "library"
OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"
MANIFEST_LIMIT = 1 << 20  # a manifest is a few hundred bytes of JSON
MAX_FILES = 100_000  # a listing stops walking a huge folder after this many entries


def ollama_root() -> Path:
    return user_path(os.environ.get("OLLAMA_MODELS") or "~/.ollama/models", "OLLAMA_MODELS")


def lmstudio_roots() -> list[Path]:
    home = Path.home()
    return [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"]


def _regular(path: Path) -> bool:
    """A plain file (not a folder, a FIFO that would block open(), or a broken link)."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def _split_ollama(name: str) -> tuple[str, str, str, str]:
    """'llama3.2', 'user/model:7b', 'host/ns/model:tag' -> (host, namespace, model, tag)."""
    path, _, tag = name.partition(":")
    parts = path.split("/")
    if not path or len(parts) > 3 or not all(parts) or any(p in (".", "..") for p in parts) or "/" in tag:
        raise BadInput(f"--model 'ollama:{name}': expected ollama:NAME[:TAG], e.g. ollama:llama3.2:1b")
    parts = [OLLAMA_HOST, OLLAMA_NAMESPACE][: 3 - len(parts)] + parts
    return parts[0], parts[1], parts[2], tag or "latest"


def _model_blob(root: Path, manifest: Path) -> tuple[Path, str] | None:
    """(blob path, sha256) of a manifest's model layer; None when it names no usable one."""
    try:
        if manifest.stat().st_size > MANIFEST_LIMIT:
            return None
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return None
    layers = data.get("layers") if isinstance(data, dict) else None
    for layer in layers if isinstance(layers, list) else []:
        if not isinstance(layer, dict):
            continue
        digest = layer.get("digest")
        if layer.get("mediaType") == OLLAMA_MODEL_LAYER and isinstance(digest, str) and digest.startswith("sha256:"):
            hexdigest = digest.removeprefix("sha256:")
            if is_sha256(hexdigest):
                blob = root / "blobs" / f"sha256-{hexdigest}"
                return (blob, hexdigest) if _regular(blob) else None
    return None


def resolve_ollama(name: str) -> tuple[Path, str]:
    """(GGUF blob, its sha256) for `ollama:NAME[:TAG]`."""
    root = ollama_root()
    host, namespace, model, tag = _split_ollama(name)
    manifest = root / "manifests" / host / namespace / model / tag
    if not _regular(manifest):
        known = ", ".join(e["name"] for e in ollama_models()[:8]) or "none"
        raise BadInput(f"--model 'ollama:{name}': no such model in Ollama's store {root} (found: {known})")
    found = _model_blob(root, manifest)
    if found is None:
        raise BadInput(f"--model 'ollama:{name}': its manifest {manifest} names no model file that is on disk")
    return found


def _entry(name: str, kind: str, path: Path, source: str | None = None) -> dict | None:
    """A listing row with what the header says; None for a file that is not a readable GGUF."""
    from lenscope.models.gguf import read_header  # lazy: blas

    if not _regular(path):
        return None
    try:
        header = read_header(path)
        size = path.stat().st_size
    except (BadInput, OSError):
        return None
    arch = header.architecture  # the file's own text: a string, made safe to print, or None
    row = {"name": name, "kind": kind, "path": str(path), "size_bytes": size, "available": True,
           "architecture": one_line(arch)[:64] if isinstance(arch, str) else None, "quantization": header.quantization(),
           "parameters": header.parameters}
    if source:
        row["source"] = source
    return row


def ollama_models() -> list[dict]:
    root = ollama_root()
    manifests = root / "manifests"
    rows = []
    for manifest in sorted(manifests.glob("*/*/*/*"))[:MAX_FILES]:
        host, namespace, model, tag = manifest.relative_to(manifests).parts
        found = _model_blob(root, manifest) if _regular(manifest) else None
        if found is None:
            continue
        short = model if (host, namespace) == (OLLAMA_HOST, OLLAMA_NAMESPACE) else (
            f"{namespace}/{model}" if host == OLLAMA_HOST else f"{host}/{namespace}/{model}")
        if row := _entry(f"ollama:{short}:{tag}", "ollama", found[0], str(manifest)):
            rows.append(row)
    return rows


def _gguf_files(root: Path) -> list[Path]:
    files, seen = [], 0
    for dirpath, dirs, names in os.walk(root):  # does not follow links to folders: no loops
        files += [Path(dirpath) / n for n in names if n.lower().endswith(".gguf")]
        seen += len(names) + len(dirs)
        if seen >= MAX_FILES:
            break
    return sorted(files)


def lmstudio_models() -> list[dict]:
    rows = []
    for root in lmstudio_roots():
        for path in _gguf_files(root):  # a missing or unreadable root walks as nothing
            if row := _entry(str(path), "lmstudio", path):
                rows.append(row)
    return rows


def hub_gguf_models() -> list[dict]:
    """`*.gguf` files in the Hugging Face hub cache (newest revision of each repository)."""
    try:
        from huggingface_hub import scan_cache_dir  # lazy: startup

        repos = scan_cache_dir(os.environ.get("HF_HUB_CACHE") or None).repos  # as set now, not at import
    except Exception:  # no cache dir, or an older huggingface_hub: nothing to list
        return []
    rows = []
    for repo in sorted(repos, key=lambda r: r.repo_id):
        revs = sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True)
        for f in sorted(revs[0].files, key=lambda f: f.file_name) if revs and repo.repo_type == "model" else []:
            if f.file_name.lower().endswith(".gguf") and \
                    (row := _entry(str(f.file_path), "hub-gguf", Path(f.file_path), repo.repo_id)):
                rows.append(row)
    return rows


def stored_models() -> list[dict]:
    """Every store's GGUFs; a store that cannot be read (no home, no permission) lists nothing."""
    rows = []
    for store in (ollama_models, lmstudio_models, hub_gguf_models):
        try:
            rows += store()
        except (OSError, RuntimeError):  # RuntimeError: Path.home() with no home
            continue
    return rows
