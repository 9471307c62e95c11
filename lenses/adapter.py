"""An mlx-lm LoRA adapter as a lens row: the fine-tune beside its base model.

A folder `mlx_lm.lora` (or `lenscope fit --kind lora`) wrote holds adapter_config.json
and adapters.safetensors, whose `<module>.lora_a` (in x r) and `.lora_b` (r x out) make
mlx-lm's LoRALinear compute y = W x + scale * (x A) B. Here the same update is added to
the row's output of each adapted linear layer only (the weights hook), so the base model
and every other row run unchanged; `strength` scales it (0: the base model, 1: as
`mlx_lm.generate --adapter-path` runs it). DoRA and full fine-tunes are refused: they are
not an added low-rank term.
"""

from __future__ import annotations

import json
from typing import Any

import mlx.core as mx

from lenscope.lenses.base import Ctx, HookPoint, Hooks, Lens
from lenscope.lenses.errors import BadInput
from lenscope.lenses.files import read_text, user_path
from lenscope.lenses.params import Param
from lenscope.lenses.probe import Probe

CONFIG, WEIGHTS = "adapter_config.json", "adapters.safetensors"


class Adapter(Lens):
    kind = "adapter"
    summary = "an mlx-lm LoRA adapter folder (mlx_lm.lora, lenscope fit --kind lora) run as a row beside the base"
    params = (
        Param("path", "str", "", "the adapter folder: adapter_config.json and adapters.safetensors"),
        Param("strength", "float", 1.0, "scales the adapter's update: 0 is the base model, 1 as trained", -100, 100),
    )

    def __init__(self, **values: Any):
        super().__init__(**values)
        where = f"adapter '{self.path}'"
        folder = user_path(self.path, where) if self.path else None
        if folder is None or not folder.is_dir():
            raise BadInput(f"{where}: path= names a folder holding {CONFIG} and {WEIGHTS}")
        try:
            config = json.loads(read_text(folder / CONFIG, f"{where}: {CONFIG}", 1 << 20))
        except (ValueError, RecursionError):
            raise BadInput(f"{where}: {CONFIG} is not JSON") from None
        kind = config.get("fine_tune_type", "lora") if isinstance(config, dict) else None
        if kind != "lora":
            raise BadInput(f"{where}: fine_tune_type {kind!r:.20} is not supported (lora only: dora and full "
                           "fine-tunes are not an added low-rank term)")
        scale = (config.get("lora_parameters") or {}).get("scale", 20.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not abs(scale) < 1e6:
            raise BadInput(f"{where}: lora_parameters.scale {scale!r:.20} is not a number")
        self.scale = float(scale)
        try:
            tensors = mx.load(str(folder / WEIGHTS))
        except Exception as exc:  # MLX's parse errors of a missing, corrupt or foreign file
            raise BadInput(f"{where}: cannot read {WEIGHTS} ({str(exc).splitlines()[0][:120]})") from None
        self.pairs: dict[str, tuple[mx.array, mx.array]] = {}
        for name, a in tensors.items():
            if name.endswith(".lora_a"):
                module = name.removesuffix(".lora_a")
                b = tensors.get(f"{module}.lora_b")
                if b is None or a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
                    raise BadInput(f"{where}: {module}'s lora_a and lora_b do not pair up")
                self.pairs[module] = (a.astype(mx.float32), b.astype(mx.float32))
            elif not name.endswith(".lora_b"):
                raise BadInput(f"{where}: {WEIGHTS} holds '{name[:60]}', not a LoRA tensor")
        if not self.pairs:
            raise BadInput(f"{where}: {WEIGHTS} holds no LoRA tensor")

    def is_neutral(self) -> bool:
        return self.strength == 0

    def prepare(self, probe: Probe, ids: list[int], marks: list[int]) -> None:
        """Each adapted module is found in this model, with the shapes the adapter needs."""
        where = f"adapter '{self.path}'"
        for module, (a, b) in self.pairs.items():
            parts = module.split(".")
            at = next((i for i, p in enumerate(parts) if p.isdigit()), None)
            hit = probe.linear(int(parts[at]), ".".join(parts[at + 1:])) if at is not None and \
                int(parts[at]) < probe.n_layers else None
            if hit is None or hit[0] != module:
                raise BadInput(f"{where}: this model has no linear layer '{module}'")
            out_dim, in_dim = _shape(hit[1])
            if a.shape[0] != in_dim or b.shape[1] != out_dim:
                raise BadInput(f"{where}: '{module}' is {in_dim} -> {out_dim} here, the adapter's "
                               f"{a.shape[0]} -> {b.shape[1]}")

    def hooks(self, n_layers: int) -> Hooks:
        return {HookPoint("weights", path=module): self._update(a, b) for module, (a, b) in self.pairs.items()}

    def _update(self, a: mx.array, b: mx.array):
        k = self.scale * self.strength

        def added(ctx: Ctx, x: mx.array) -> mx.array:
            return k * ((x.astype(mx.float32) @ a) @ b)

        return added


def _shape(module) -> tuple[int, int]:
    """(out, in) of a linear layer, quantized or not."""
    w = module.weight
    if "scales" in module:
        return int(w.shape[0]), int(w.shape[1] * 32 // module.bits)
    return int(w.shape[0]), int(w.shape[1])


def is_adapter_folder(spec: str) -> bool:
    """A SPEC that names a folder holding adapter_config.json (an inline spec never does)."""
    try:
        return (user_path(spec, "adapter") / CONFIG).is_file()
    except (BadInput, OSError, ValueError):  # a spec too long for a path, or with a NUL
        return False
