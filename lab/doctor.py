"""`lenscope doctor`: what this machine gives lenscope, measured where it matters."""

from __future__ import annotations

import platform
import sys
import time
from importlib import metadata
from typing import Any

import mlx.core as mx

from lenscope import models
from lenscope.errors import BadInput
from lenscope.metal import selftest_all
from lenscope.models import blas
from lenscope.models.precision import RUN_SHAPE
from lenscope.models.precision_choice import cache_file
from lenscope.models.sources import gguf_source


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def report(model: str | None = None, precision: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": f"{platform.system()} {platform.machine()}",
        "versions": {d: _version(d) for d in ("mlx", "mlx-lm", "textual", "rich", "plotext", "lenscope")},
        "backend": "gpu" if mx.default_device() == mx.gpu else "cpu",
        "metal_available": bool(mx.metal.is_available()),
        "cuda_available": bool(getattr(mx, "cuda", None) and mx.cuda.is_available()),
    }
    if out["backend"] == "cpu" and sys.platform.startswith("linux"):
        info = blas.blas_in_use()
        info["system_openblas"] = blas.system_openblas()
        info["matmul_gflops_1024"] = round(blas.matmul_gflops(), 1)
        if info["reference"]:
            info["advice"] = ("slow reference BLAS: install Debian's libopenblas0-pthread; the lenscope "
                              "command then preloads it (LENSCOPE_BLAS=reference opts out)")
        out["blas"] = info
    out["kernels"] = selftest_all()
    name, target = models.resolve(model)
    out["model"] = {"name": name, "path": target}
    t = time.perf_counter()
    try:
        loaded = models.load(model, precision=precision)
        out["model"].update(loads=True, load_s=round(time.perf_counter() - t, 3), path=str(loaded.path),
                            layers=len(loaded.model.layers), model_type=getattr(loaded.model, "model_type", None),
                            precision=loaded.precision, measured_ms=loaded.measured,
                            precision_how=loaded.precision_how)
        if source := _gguf_source(loaded.path):
            out["model"]["gguf"] = source
    except BadInput as exc:
        out["model"].update(loads=False, error=str(exc))
    return out


def _gguf_source(folder) -> dict[str, Any] | None:
    """What a converted GGUF folder says of its source: types, and each requantized type's error."""
    return gguf_source(folder) or None


def render(rep: dict[str, Any]) -> str:
    lines = [f"python      {rep['python']} on {rep['platform']}"]
    lines.append("versions    " + ", ".join(f"{k} {v}" for k, v in rep["versions"].items() if v))
    lines.append(f"backend     {rep['backend']} (metal: {rep['metal_available']}, cuda: {rep['cuda_available']})")
    if "blas" in rep:
        b = rep["blas"]
        kind = "reference (slow)" if b["reference"] else "fast"
        lines.append(f"blas        {b['library']} — {kind}, {b['matmul_gflops_1024']} GFLOP/s fp32 matmul")
        if b.get("advice"):
            lines.append(f"            {b['advice']}")
    for k in rep["kernels"]:
        lines.append(f"kernel      {k['name']}: {k['status']}" + (f" ({k['detail']})" if k.get("detail") else ""))
    m = rep["model"]
    status = (f"loads in {m['load_s']} s, {m['layers']} layers, runs {m['precision']}" if m.get("loads")
              else f"FAILS: {m.get('error')}")
    lines.append(f"model       {m['name']} ({m['path']}): {status}")
    if m.get("measured_ms"):
        times = ", ".join(f"{k} {v:.2f} ms" for k, v in sorted(m["measured_ms"].items(), key=lambda kv: kv[1]))
        prefill, rows, steps = RUN_SHAPE
        lines.append(f"cpu path    measured on the first block's linears ({prefill}-token prefill + {steps} steps of "
                     f"{rows} rows): {times}")
    if m.get("precision_how"):
        kept = "" if "not kept" in m["precision_how"] else f", kept in {cache_file()} for this model, machine and BLAS"
        lines.append(f"auto choice {m['precision_how']}{kept} (lenscope doctor --remeasure measures again)")
    if g := m.get("gguf"):
        lines.append(f"gguf        {g.get('architecture')}, {g.get('quantization')}: "
                     f"{', '.join(g.get('tensor_types') or [])} from {g.get('source')}")
        for kind, err in (g.get("requantized") or {}).items():
            lines.append(f"            {kind} requantized to {err.get('bits')}-bit: max |error| {err.get('max_abs'):.3g}, "
                         f"rms {100 * err.get('rel_rms', 0):.2f}% of the weights")
    return "\n".join(lines)
