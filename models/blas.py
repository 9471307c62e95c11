"""Which BLAS the MLX CPU backend uses on Linux, and preloading a fast one.

The mlx-cpu wheel links a reference BLAS: ~2 GFLOP/s for fp32 matmul on 2 cores, and
a batch of 2 costs twice a batch of 1. Debian's OpenBLAS, preloaded, was measured at
~140 GFLOP/s, with a batch of 2 costing 1.14x a batch of 1 (measured on this kind of CPU). So the
`lenscope` command re-executes itself once with LD_PRELOAD when a system OpenBLAS is
present. Set LENSCOPE_BLAS=reference to opt out. Never used on macOS (Accelerate).
"""

from __future__ import annotations

import glob
import os
import sys
import time

PRELOAD_MARK = "LENSCOPE_BLAS_PRELOADED"
CANDIDATES = (
    "/usr/lib/*-linux-gnu/openblas-pthread/libblas.so.3",
    "/usr/lib/*-linux-gnu/openblas-openmp/libblas.so.3",
    "/usr/lib64/libopenblas.so.0",
)


def system_openblas() -> str | None:
    for pattern in CANDIDATES:
        for path in sorted(glob.glob(pattern)):
            if os.path.isfile(path):
                return path
    return None


def loaded_blas() -> list[str]:
    """Shared objects with 'blas' in their name mapped into this process (Linux)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "blas" in line.lower() and "/" in line}
    except OSError:
        return []
    return sorted(paths)


def blas_in_use() -> dict:
    """What answers BLAS calls: a preloaded library wins over the wheel's own."""
    if sys.platform == "darwin":
        return {"library": "Accelerate", "reference": False, "preloaded": None}
    loaded = loaded_blas()
    preload = [p for p in os.environ.get("LD_PRELOAD", "").split(":") if "blas" in p.lower()]
    preload = [p for p in preload if any(os.path.realpath(p) == os.path.realpath(q) for q in loaded)] or preload
    if preload:
        return {"library": preload[0], "reference": False, "preloaded": preload[0], "mapped": loaded}
    wheel = [p for p in loaded if "mlx_cpu.libs" in p or "mlx.libs" in p]
    return {"library": (wheel or loaded or ["unknown"])[0], "reference": bool(wheel), "preloaded": None,
            "mapped": loaded}


def preload_env() -> dict[str, str] | None:
    """The environment to run this program again in with the system OpenBLAS preloaded;
    None where that does not apply (not Linux, done already, opted out, none installed)."""
    if not sys.platform.startswith("linux") or os.environ.get(PRELOAD_MARK):
        return None
    if os.environ.get("LENSCOPE_BLAS", "").lower() == "reference":
        return None
    lib = system_openblas()
    if lib is None or lib in os.environ.get("LD_PRELOAD", ""):
        return None
    env = dict(os.environ)
    env[PRELOAD_MARK] = "1"
    env["LD_PRELOAD"] = ":".join(filter(None, [lib, env.get("LD_PRELOAD", "")]))
    env.setdefault("OPENBLAS_NUM_THREADS", str(os.cpu_count() or 1))
    return env


def maybe_reexec_with_openblas(argv: list[str]) -> None:
    """Re-run this command with the system OpenBLAS preloaded, once, where it helps."""
    env = preload_env()
    if env is None:
        return
    try:
        os.execve(sys.executable, [sys.executable, "-m", "lenscope", *argv], env)
    except OSError:
        return  # keep going on the reference BLAS; doctor will say so


def matmul_gflops(n: int = 1024, repeats: int = 3) -> float:
    """Measured fp32 matmul throughput of the current MLX device."""
    import mlx.core as mx  # lazy: blas

    a = mx.random.normal((n, n))
    b = mx.random.normal((n, n))
    mx.eval(a @ b)
    t = time.perf_counter()
    for _ in range(repeats):
        mx.eval(a @ b)
    return 2 * n**3 * repeats / (time.perf_counter() - t) / 1e9
