"""`lenscope fit --kind lora`: an mlx-lm LoRA adapter trained by mlx-lm's own tuner.

The data file is split (by the seed) into DIR/data/train.jsonl and valid.jsonl, mlx-lm's
layout; mlx_lm.lora's `train_model` then trains rank-r LoRA on the last `num_layers`
blocks of a fresh copy of the model's stored weights (the TUI's model is never touched),
dequantized to float32 when stored quantized (mlx-lm's quantized training is several times
slower on a CPU, and float32 is what lenscope runs there).
DIR is an ordinary adapter folder: `--lens DIR` runs it as a row (lenses/adapter.py) and
`mlx_lm.generate --adapter-path DIR` runs it too. Pairs (`chosen`/`rejected`) are not an
mlx-lm format and are refused.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from mlx import nn

from lenscope.errors import BadInput
from lenscope.models import precision
from lenscope.models.sources import resolve_model
from lenscope.storage.datafile import json_lines


@dataclass
class LoraReport:
    model: str
    examples: dict[str, int]
    options: dict
    loss: list[list[float]] = field(default_factory=list)  # [iteration, train loss] as mlx-lm reports them
    heldout: list[list[float]] = field(default_factory=list)  # [iteration, validation loss]
    seconds: float = 0.0


def fit(model: str | None, data: Path, out: Path, num_layers: int = 4, rank: int = 4, steps: int = 100,
        batch: int = 4, lr: float = 1e-4, heldout: float = 0.2, seed: int = 0) -> LoraReport:
    import mlx_lm  # lazy: startup
    from mlx_lm import lora  # lazy: startup
    from mlx_lm.tuner.callbacks import TrainingCallback  # lazy: startup
    from mlx_lm.tuner.datasets import load_dataset  # lazy: startup

    lines = json_lines(data, f"--data '{data}'", cut_last=False)
    if any(isinstance(x, dict) and "chosen" in x for x in lines):
        raise BadInput(f"--data '{data}': --kind lora takes prompt/completion, messages or text lines, not pairs")
    if len(lines) < 2:
        raise BadInput(f"--data '{data}': needs at least two examples (one to train on, one held out)")
    order = np.random.default_rng(seed).permutation(len(lines))
    n_held = max(1, round(len(lines) * heldout))
    folder = out / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for name, idx in (("valid", order[:n_held]), ("train", order[n_held:] if len(lines) > n_held else order)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(lines[i]) + "\n" for i in idx))
    name, target = resolve_model(model)
    args = types.SimpleNamespace(**{**lora.CONFIG_DEFAULTS, "model": target, "train": True, "data": str(folder),
                                    "adapter_path": str(out), "num_layers": num_layers, "batch_size": batch,
                                    "iters": steps, "learning_rate": lr, "seed": seed,
                                    "steps_per_report": max(1, steps // 20), "steps_per_eval": max(1, steps // 4),
                                    "save_every": steps, "val_batches": -1,
                                    "lora_parameters": {"rank": rank, "dropout": 0.0, "scale": 20.0}})
    report = LoraReport(name, {"train": len(lines) - n_held, "heldout": n_held},
                        {"num_layers": num_layers, "rank": rank, "steps": steps, "batch": batch, "lr": lr,
                         "heldout": heldout, "seed": seed})

    class Record(TrainingCallback):
        def on_train_loss_report(self, info: dict) -> None:
            report.loss.append([info["iteration"], round(float(info["train_loss"]), 6)])

        def on_val_loss_report(self, info: dict) -> None:
            report.heldout.append([info["iteration"], round(float(info["val_loss"]), 6)])

    t0 = time.perf_counter()
    try:
        weights, tokenizer = mlx_lm.load(target)
        if any(isinstance(m, nn.QuantizedLinear) for _, m in weights.named_modules()):
            precision.to_float(weights, "float32")  # as lenscope runs it on a CPU: quantized training is slower
        train_set, valid_set, _ = load_dataset(args, tokenizer)
        if len(train_set) < batch or len(valid_set) < 1:
            raise BadInput(f"--batch {batch}: more than the {len(train_set)} training examples")
        with contextlib.redirect_stdout(io.StringIO()):  # mlx-lm's own report lines: the progress is ours
            lora.train_model(args, weights, train_set, valid_set, Record())
    except BadInput:
        raise
    except (ValueError, KeyError) as exc:  # mlx-lm's refusals of a dataset or its options
        raise BadInput(f"fit --kind lora: {str(exc).splitlines()[0][:200]}") from None
    report.seconds = round(time.perf_counter() - t0, 2)
    (out / "fit.json").write_text(json.dumps(asdict(report), indent=1) + "\n")
    return report


def summary(report: LoraReport) -> str:
    first = report.heldout[0][1] if report.heldout else float("nan")
    last = report.heldout[-1][1] if report.heldout else float("nan")
    return (f"fit lora: {report.examples['train']} train / {report.examples['heldout']} held out · held-out loss "
            f"{first:.3f} -> {last:.3f} · {report.seconds:.0f} s")
