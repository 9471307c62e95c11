"""Finding and loading models: the bundled demo model, a local folder or a hub id."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlx.core as mx
from mlx import nn

from lenscope.errors import BadInput, user_path
from lenscope.models import precision, precision_choice, shape
from lenscope.models.sources import DEMO_MODEL_DIR, DEMO_MODEL_NAME, resolve_model


@dataclass
class LoadedModel:
    model: Any  # mlx_lm model (nn.Module)
    tokenizer: Any  # mlx_lm TokenizerWrapper
    name: str  # what the user asked for ("lenscope-demo" for the bundled one)
    path: Path
    precision: str = "native"  # what runs: native, or float32/bfloat16/float16 (dequantized)
    measured: dict[str, float] = field(default_factory=dict)  # ms per way of running (precision.measure_paths)
    precision_how: str = ""  # auto: "measured now" or "kept since ..." (precision_choice)

    def precision_line(self) -> str:
        """The precision and, when auto chose it by measuring, how much faster it was than
        running as stored: "float32 (dequantized; 3.1x native, measured)"."""
        chosen = self.precision.split()[0]
        if chosen == "native" or chosen not in self.measured or not self.measured.get("native"):
            return self.precision
        how = "kept" if self.precision_how.startswith("kept") else "measured"
        return f"{self.precision[:-1]}; {self.measured['native'] / self.measured[chosen]:.1f}x native, {how})"

    @property
    def n_layers(self) -> int:
        return len(self.model.layers)


def resolve(spec: str | None) -> tuple[str, str]:
    """(display name, what the user asked for) without fetching or converting anything."""
    if not spec or spec == DEMO_MODEL_NAME:
        return DEMO_MODEL_NAME, str(DEMO_MODEL_DIR)
    return spec, spec


def load(spec: str | None = None, trust_remote_code: bool = False, precision: str | None = None,
         progress: Callable[[str], None] | None = None, lazy: bool = False) -> LoadedModel:
    """Load with mlx_lm (a .gguf or a named model is converted once into the cache first),
    then pick the precision; every failure becomes one BadInput line naming the model.
    `lazy`: no weight is evaluated yet and the precision is left to the caller (a model about
    to be split keeps only each process's slice)."""
    import mlx_lm  # lazy: startup

    name, target = resolve_model(spec, progress)
    path = user_path(target, f"model '{name}'")
    looks_local = path.exists() or target.startswith((".", "/", "~")) or target.count("/") != 1
    if looks_local and not path.is_dir():
        raise BadInput(f"model '{name}': no such folder")
    if looks_local and not (path / "config.json").is_file():
        raise BadInput(f"model '{name}': folder has no config.json (not an mlx-lm model)")
    if looks_local and not trust_remote_code:
        refuse_foreign_code(path, name)
    if looks_local:
        shape.check_config(read_config(path, name), name)
    try:
        # tokenizer_config reaches AutoTokenizer: an explicit False makes transformers refuse
        # auto_map code instead of asking "[y/N]" on stdin (None) or running it (True)
        model, tokenizer = mlx_lm.load(str(path) if looks_local else target, trust_remote_code=trust_remote_code,
                                       tokenizer_config={"trust_remote_code": trust_remote_code}, lazy=lazy)
    except Exception as exc:  # mlx_lm raises many types (hub, json, value): report, not crash
        if "trust_remote_code" in str(exc):
            raise BadInput(f"model '{name}': wants to run its own Python code; lenscope does not unless "
                           f"you pass --trust-remote-code") from None
        offline = (" (offline: only models already in the hub cache load)"
                   if os.environ.get("HF_HUB_OFFLINE") and not looks_local else "")
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"model '{name}': cannot load: {first}{offline}") from None
    rows = next((m.weight.shape[0] for p, m in model.named_modules() if p.endswith("embed_tokens")), None)
    if rows is not None:
        shape.check_vocabulary(tokenizer, int(rows), name)
    loaded = LoadedModel(model=model, tokenizer=tokenizer, name=name, path=path if looks_local else Path(target))
    if not lazy:
        apply_precision(loaded, precision, say=progress)
    return loaded


def apply_precision(loaded: LoadedModel, requested: str | None,
                    agree: Callable[[dict[str, float]], dict[str, float]] | None = None, processes: int = 1,
                    say: Callable[[str], None] | None = None) -> None:
    """Dequantize to float when asked, or (auto, on the CPU) when measuring this model's own
    layers says a float path is faster; sets loaded.precision and loaded.measured.

    For a lazily loaded model about to be split over `processes` (tensor parallel): each
    holds 1/processes of the weights, the conversion is left unevaluated (each process keeps
    only its slice of the converted weights), and `agree` gives every process one process's
    times (rank 0's), so all pick the same arithmetic."""
    model = loaded.model
    quantized = any(isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding)) for _, m in model.named_modules())
    backend = "gpu" if mx.default_device() == mx.gpu else "cpu"
    auto = backend == "cpu" and (requested or "auto") == "auto"
    if auto and not agree:  # chosen once per model and machine, and kept
        chosen, loaded.measured, loaded.precision_how = precision_choice.choose(
            model, loaded.tokenizer, loaded.path, precision.physical_bytes(), say or (lambda message: None))
    else:
        if auto:
            loaded.measured = precision.measure_paths(model, memory=precision.physical_bytes() * processes)
        if agree:  # always, so every process makes this exchange whatever its own backend
            loaded.measured = agree(loaded.measured)
        chosen = precision.pick_precision(requested, backend, loaded.measured)
    if chosen == "native":
        loaded.precision = "native" + (" (quantized)" if quantized else "")
        return
    precision.to_float(model, chosen, evaluate=processes == 1)
    loaded.precision = chosen + (" (dequantized)" if quantized else "")


def read_config(path: Path, name: str) -> Any:
    try:
        return json.loads((path / "config.json").read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput(f"model '{name}': cannot read config.json ({exc.strerror or exc})") from None
    except (ValueError, RecursionError):
        raise BadInput(f"model '{name}': config.json is not valid JSON") from None


def refuse_foreign_code(path: Path, name: str) -> None:
    """A model folder may name Python of its own (config `model_file`, an `auto_map` in
    config.json or tokenizer_config.json): refuse it, naming the file and the flag."""
    for file, keys in (("config.json", ("auto_map", "model_file")), ("tokenizer_config.json", ("auto_map",))):
        try:
            data = json.loads((path / file).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            continue  # missing or unreadable: mlx_lm's own load reports it
        found = [k for k in keys if isinstance(data, dict) and data.get(k)]
        if found:
            raise BadInput(f"model '{name}': {file} asks to run the folder's own Python code ({found[0]}); "
                           f"lenscope runs it only with --trust-remote-code")
