"""`lenscope fit`: a lens learned from examples by gradient descent.

Kinds:
- `steer`: one vector per chosen layer added to the residual stream;
- `reft`: a LoReFT edit h + R^T(W h + b - R h) of rank r at chosen layers (pyreft's form;
  R's rows kept orthonormal after every step);
- `lora`: an mlx-lm LoRA adapter, trained by mlx-lm's own tuner (`mlx_lm.lora`'s
  train_model) on a copy of the stored weights; the folder is an adapter mlx-lm runs too.

Data: JSON lines in mlx-lm's formats, `{"prompt", "completion"}`, `{"messages": [...]}`
(the chat template around all but the last, an assistant message) and `{"text"}`, plus
contrast pairs `{"prompt", "chosen", "rejected"}` (steer and reft only).

The loss of a steer or reft lens is the mean negative log-likelihood of each completion's
tokens (a pair: -log sigmoid(beta x the chosen-minus-rejected log-probability gain over
the baseline)), plus `kl` x the mean KL divergence from the baseline's next-token
distribution over every position of the example: a penalty that keeps the lens from
wrecking the model on the text around what it learns. Each example runs as one forward
of two rows, the baseline and the lensed one, through the same hooks the lens uses when
it runs (lenses/fitted.py), so a fitted lens means the same in both. Examples are split
into train and held-out by the seed; everything (shuffle, init) follows the seed.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np

from lenscope.core.comparison import head_on
from lenscope.core.hooks import HookState, hooked
from lenscope.core.logprob import split_ids
from lenscope.core.numerics import log_softmax
from lenscope.errors import BadInput, user_path
from lenscope.lenses import fitted, words
from lenscope.lenses.steering import POSITIONS
from lenscope.models import chat_template
from lenscope.models.precision import peak_rss_bytes
from lenscope.storage.datafile import json_lines

KINDS = ("steer", "reft", "lora")
BETA = 0.1  # a pair's loss: -log sigmoid(BETA x the gain in summed log-probability), as DPO's default


@dataclass
class Example:
    prompt: list[int]
    target: list[int]  # the completion (a pair: the chosen one)
    rejected: list[int] | None = None


@dataclass
class FitOptions:
    kind: str = "steer"
    layers: tuple[int, ...] | None = None  # default: the middle layer
    positions: str = "all"
    rank: int = 4
    steps: int = 30
    batch: int = 4
    lr: float = 0.01
    kl: float = 0.1
    heldout: float = 0.2
    seed: int = 0


@dataclass
class FitReport:
    kind: str
    model: str
    examples: dict[str, int]
    options: dict[str, Any]
    loss: list[float] = field(default_factory=list)  # the train loss of each step
    heldout: dict[str, float] = field(default_factory=dict)  # held-out loss before and after
    kl: dict[str, float] = field(default_factory=dict)  # held-out KL from the baseline before and after
    seconds: float = 0.0
    peak_memory_mb: float = 0.0


# -- data ----------------------------------------------------------------------------------------
def read_records(path: str) -> list[Any]:
    """The data file's lines, parsed (read before any model loads: a bad file is said first)."""
    where = f"--data '{path}'"
    return json_lines(user_path(path, where), where, cut_last=False)


def read_examples(engine, path: str, records: list[Any] | None = None) -> list[Example]:
    """Every line of the data file as token ids; a line of no known format is one BadInput."""
    where = f"--data '{path}'"
    out = []
    for n, rec in enumerate(read_records(path) if records is None else records, 1):
        at = f"{where}: line {n}"
        if not isinstance(rec, dict):
            raise BadInput(f"{at}: not a JSON object")
        if "messages" in rec:
            out.append(_messages(engine, rec["messages"], at))
        elif {"prompt", "chosen", "rejected"} <= rec.keys():
            p, c = split_ids(engine, _text(rec, "prompt", at), _text(rec, "chosen", at))
            _, r = split_ids(engine, rec["prompt"], _text(rec, "rejected", at))
            out.append(Example(p, c, r))
        elif {"prompt", "completion"} <= rec.keys():
            out.append(Example(*split_ids(engine, _text(rec, "prompt", at), _text(rec, "completion", at))))
        elif "text" in rec:
            ids = engine.encode(_text(rec, "text", at))
            if len(ids) < 2:
                raise BadInput(f"{at}: 'text' has fewer than two tokens")
            out.append(Example(ids[:1], ids[1:]))
        else:
            raise BadInput(f"{at}: expected prompt+completion, messages, text, or prompt+chosen+rejected")
    if len(out) < 2:
        raise BadInput(f"{where}: needs at least two examples (one to train on, one held out)")
    return out


def _text(rec: dict, key: str, at: str) -> str:
    value = rec.get(key)
    if not isinstance(value, str) or not value:
        raise BadInput(f"{at}: '{key}' must be non-empty text")
    return value


def _messages(engine, messages: Any, at: str) -> Example:
    ok = isinstance(messages, list) and len(messages) >= 2 and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages)
    if not ok or messages[-1]["role"] != "assistant":
        raise BadInput(f"{at}: 'messages' must be role/content objects ending with an assistant message")
    try:
        prompt = chat_template.render(engine.tokenizer, messages[:-1])
    except BadInput as exc:
        raise BadInput(f"{at}: {exc}") from None
    ids = engine.tokenizer.encode(prompt, add_special_tokens=False)  # the template writes its own BOS
    return Example(list(ids), words.continuation_ids(engine.tokenizer, messages[-1]["content"], at))


# -- the learned lens ---------------------------------------------------------------------------------
class Learner(fitted.Fitted):
    """A fitted lens whose tensors are the ones being learned (no file): the same residual edit."""

    def __init__(self, method: str, layers: tuple[int, ...], positions: str, tensors: dict[str, mx.array]):
        self.values = {"file": "", "strength": 1.0, "positions": positions}
        self.file, self.strength, self.positions = "", 1.0, positions
        self.method, self.fit_layers, self.tensors = method, tuple(sorted(layers)), tensors


def initial(method: str, layers: tuple[int, ...], hidden: int, rank: int, seed: int) -> dict[str, mx.array]:
    """Tensors whose edit is zero: the lens starts as the baseline."""
    rng = np.random.default_rng(seed)
    out = {}
    for layer in layers:
        if method == "steer":
            out[f"layer.{layer}.v"] = mx.zeros((hidden,))
        else:
            q, _ = np.linalg.qr(rng.standard_normal((hidden, rank)))
            r = mx.array(q.T.astype(np.float32))  # orthonormal rows
            out |= {f"layer.{layer}.R": r, f"layer.{layer}.W": r, f"layer.{layer}.b": mx.zeros((rank,))}
    return out


def _orthonormal(tensors: dict[str, mx.array]) -> dict[str, mx.array]:
    """R's rows made orthonormal again after a step (a projected gradient step)."""
    out = dict(tensors)
    for k, r in tensors.items():
        if k.endswith(".R"):
            q, _ = np.linalg.qr(np.array(r, dtype=np.float64).T)
            out[k] = mx.array(q.T.astype(np.float32))
    return out


def example_loss(engine, lens: Learner, ex: Example, kl: float) -> tuple[mx.array, mx.array]:
    """(loss, KL from the baseline) of one example: one forward of the baseline and lensed rows."""
    texts = [ex.target] + ([ex.rejected] if ex.rejected is not None else [])
    losses, divergence = [], mx.array(0.0)
    for k, target in enumerate(texts):
        ids = ex.prompt + target
        state = HookState([[], [lens]], engine.n_layers, len(ex.prompt))
        with hooked(engine.model, state), head_on(engine.model, slice(0, len(ids) - 1)) as pick:
            state.begin(mx.arange(len(ids)))
            logits = pick(engine.model(mx.array([ids, ids]))).astype(mx.float32)
        lp = log_softmax(logits)
        base, ours = mx.stop_gradient(lp[0]), lp[1]
        at = mx.array(target)[:, None]
        cut = slice(len(ex.prompt) - 1, len(ids) - 1)
        gain = mx.take_along_axis(ours[cut], at, axis=-1)[:, 0]
        losses.append((gain, mx.take_along_axis(base[cut], at, axis=-1)[:, 0]))
        if k == 0:
            divergence = (mx.exp(base) * (base - ours)).sum(axis=-1).mean()
    if ex.rejected is None:
        loss = -losses[0][0].mean()
    else:
        (c, c0), (r, r0) = losses
        margin = (c.sum() - c0.sum()) - (r.sum() - r0.sum())
        loss = mx.logaddexp(mx.array(0.0), -BETA * margin)  # -log sigmoid(beta margin)
    return loss + kl * divergence, divergence


def evaluate(engine, lens: Learner, examples: list[Example]) -> tuple[float, float]:
    """Mean loss (without the KL term) and mean KL over `examples`."""
    if not examples:
        return float("nan"), float("nan")
    totals = [example_loss(engine, lens, ex, 0.0) for ex in examples]
    return (float(np.mean([float(t[0]) for t in totals])), float(np.mean([float(t[1]) for t in totals])))


def fit(engine, examples: list[Example], opts: FitOptions, out: Path,
        progress: Callable[[int, int, float], None] = lambda step, total, loss: None) -> FitReport:
    """Learn a steer or reft lens; write out/lens.safetensors, out/lens.toml and out/fit.json."""
    if opts.kind not in ("steer", "reft"):
        raise BadInput(f"--kind {opts.kind}: fit() learns steer or reft; lora is fit_lora")
    layers = tuple(opts.layers) if opts.layers else (engine.n_layers // 2,)
    bad = [x for x in layers if not 0 <= x < engine.n_layers]
    if bad:
        raise BadInput(f"--layers: layer {bad[0]} does not exist (the model has {engine.n_layers} layers)")
    if opts.kind == "reft" and not 1 <= opts.rank <= engine.hidden_size:
        raise BadInput(f"--rank {opts.rank}: between 1 and the hidden size ({engine.hidden_size})")
    rng = np.random.default_rng(opts.seed)
    order = rng.permutation(len(examples))
    n_held = max(1, round(len(examples) * opts.heldout)) if opts.heldout > 0 else 0
    held = [examples[i] for i in order[:n_held]]
    train = [examples[i] for i in order[n_held:]] or held
    report = FitReport(opts.kind, engine.loaded.name, {"train": len(train), "heldout": len(held)},
                       {k: v for k, v in asdict(opts).items()} | {"layers": list(layers)})
    lens = Learner(opts.kind, layers, opts.positions, initial(opts.kind, layers, engine.hidden_size, opts.rank,
                                                              opts.seed))
    optimizer = optim.Adam(learning_rate=opts.lr)
    params = lens.tensors
    t0 = time.perf_counter()
    with engine.lock:  # hooks swap the shared model's classes: one job at a time
        report.heldout["before"], report.kl["before"] = evaluate(engine, lens, held)

        def batch_loss(p: dict[str, mx.array], batch: list[Example]) -> mx.array:
            lens.tensors = p
            return sum(example_loss(engine, lens, ex, opts.kl)[0] for ex in batch) / len(batch)

        step_fn = mx.value_and_grad(batch_loss)
        for step in range(opts.steps):
            picks = rng.choice(len(train), size=min(opts.batch, len(train)), replace=False)
            loss, grads = step_fn(params, [train[i] for i in picks])
            params = optimizer.apply_gradients(grads, params)
            if opts.kind == "reft":
                params = _orthonormal(params)
            mx.eval(params, loss)
            report.loss.append(round(float(loss), 6))
            progress(step + 1, opts.steps, float(loss))
        lens.tensors = params
        report.heldout["after"], report.kl["after"] = evaluate(engine, lens, held)
    report.seconds = round(time.perf_counter() - t0, 2)
    report.peak_memory_mb = round(peak_rss_bytes() / 2**20, 1)
    _write(out, engine, lens, params, opts, report)
    return report


def _write(out: Path, engine, lens: Learner, params: dict[str, mx.array], opts: FitOptions, report: FitReport) -> None:
    out.mkdir(parents=True, exist_ok=True)
    meta = {"hidden_size": engine.hidden_size, "n_layers": engine.n_layers,
            "vocab": fitted.vocab_hash(engine.tokenizer), "model": engine.loaded.name}
    fitted.write(out / "lens.safetensors", opts.kind, {k: np.array(v) for k, v in params.items()}, meta)
    (out / "lens.toml").write_text(
        f'# fitted by lenscope fit --kind {opts.kind} on {json.dumps(engine.loaded.name)}: '
        f'layers {list(lens.fit_layers)}\n'
        f'name = "fitted-{opts.kind}"\nkind = "fitted"\nfile = "lens.safetensors"\npositions = "{opts.positions}"\n')
    (out / "fit.json").write_text(json.dumps(asdict(report), indent=1) + "\n")


def check_positions(value: str) -> str:
    if value not in POSITIONS.choices:
        raise BadInput(f"--positions {value}: one of {', '.join(POSITIONS.choices)}")
    return value


def summary(report: FitReport) -> str:
    first = report.loss[0] if report.loss else math.nan
    last = float(np.mean(report.loss[-5:])) if report.loss else math.nan
    return (f"fit {report.kind}: {report.examples['train']} train / {report.examples['heldout']} held out · "
            f"train loss {first:.3f} -> {last:.3f} · held-out loss {report.heldout['before']:.3f} -> "
            f"{report.heldout['after']:.3f} · KL from baseline {report.kl['after']:.4f} · "
            f"{report.seconds:.0f} s, peak {report.peak_memory_mb:.0f} MiB")


