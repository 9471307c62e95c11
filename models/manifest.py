"""A converted model folder's manifest: each file's size and a hash of samples of its bytes
(the start, the end and 16 blocks between), written when the folder is made and checked
before it is used. A file changed since (weights zeroed, truncated, swapped) makes the
folder count as unfinished, so it is converted again instead of loading silently wrong;
`full=True` hashes every byte instead of samples."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

NAME = "lenscope_manifest.json"
BLOCK = 1 << 16
SAMPLES = 16


def file_digest(path: Path, full: bool = False) -> str:
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        if full or size <= BLOCK * (SAMPLES + 2):
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        else:
            for k in range(SAMPLES + 2):
                f.seek((size - BLOCK) * k // (SAMPLES + 1))
                h.update(f.read(BLOCK))
    return h.hexdigest()


def write(folder: Path) -> None:
    files = {p.name: {"size": p.stat().st_size, "sample_sha256": file_digest(p)}
             for p in sorted(folder.iterdir()) if p.is_file() and p.name != NAME}
    (folder / NAME).write_text(json.dumps({"version": 1, "files": files}, indent=1) + "\n")


def intact(folder: Path, full: bool = False) -> bool:
    """Every file the manifest lists is there, a regular file of its size and samples, and
    nothing else is (mlx-lm loads every model*.safetensors: a stale shard would join in)."""
    try:
        data = json.loads((folder / NAME).read_text(encoding="utf-8"))
        files = data["files"]
        if {p.name for p in folder.iterdir() if not p.name.startswith(".")} - {NAME} - set(files):
            return False
        for name, want in files.items():
            p = folder / name
            if "/" in name or name in ("", ".", "..") or not p.is_file() or p.is_symlink():
                return False
            if p.stat().st_size != want["size"] or file_digest(p, full) != want["sample_sha256"]:
                return False
        return bool(files)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return False


def is_sha256(value: object) -> bool:
    """64 lower-case hex digits: the only thing a cached hash may be (it names a cache folder)."""
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
