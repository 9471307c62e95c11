"""`lenscope bench`: performance ratios, all measured in one process and one run.

Ratios, not absolute times, are what carry between machines: each compares two
things measured back to back here. Decode costs are seconds per generation step
(all rows advance one token per step); best of `repeats` to damp noise.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten
from rich.console import Console

from lenscope.batch import search as searches
from lenscope.core.engine import Engine, Request
from lenscope.errors import BadInput
from lenscope.lenses.base import Variant
from lenscope.lenses.spec import parse_inline
from lenscope.models.blas import blas_in_use
from lenscope.models.sources import gguf_source
from lenscope.views import hidden_states as geometry
from lenscope.views.attention import head_means, head_shares, rollout, token_weights
from lenscope.views.attention_text import AttentionText
from lenscope.views.head_map import HeadMap
from lenscope.views.heatmap import Heatmap
from lenscope.views.logit_lens_table import LogitLensTable

PROMPT = "one day, tom went to the park. the sun was warm and tom saw a little dog."


def _search_s_per_candidate(engine: Engine, rows: int, n: int = 8, tokens: int = 12) -> float:
    """Seconds per candidate of a small search (n bias strengths, one prompt, a `contains`
    score) with `rows` rows per batch: what batching candidates buys."""

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "search.toml"
        path.write_text(f'prompts = ["{PROMPT}"]\nmax_tokens = {tokens}\nbudget = {n}\nsteps = {n}\nrows = {rows}\n'
                        '[[lens]]\nkind = "bias"\nwords = ["happy"]\nvalue = [0, 20]\n'
                        '[[score]]\nkind = "contains"\ntext = "happy"\n')
        search = searches.load(path)
        t = time.perf_counter()
        searches.run(engine, search, Path(tmp) / "out")
        return (time.perf_counter() - t) / n


def _best(fn: Callable[[], float], repeats: int) -> float:
    return min(fn() for _ in range(repeats))


def _plain_decode_s_per_token(engine: Engine, prompt_ids: list[int], tokens: int) -> float:
    """mlx_lm.generate_step (what stream_generate runs) without stopping at EOS."""
    from mlx_lm.generate import generate_step  # lazy: startup

    with engine.lock:  # mlx-lm runs the shared model: under its lock like any caller
        gen = generate_step(mx.array(prompt_ids), engine.model, max_tokens=tokens)
        next(gen)  # prefill + first token, not decode
        t = time.perf_counter()
        n = sum(1 for _ in gen)
    return (time.perf_counter() - t) / max(n, 1)


def _lenscope_decode_s_per_token(engine: Engine, specs: list[str], tokens: int, marks: list[int]) -> float:
    """Rows: the baseline plus one per spec ("" is a second, unlensed row)."""
    variants = [parse_inline(s) if s else Variant("copy") for s in specs]
    run = engine.compare(Request(PROMPT, variants, marks, max_tokens=tokens + 1, stop_at_eos=False))
    steps = run.steps()
    next(steps)  # prefill + first token
    t = time.perf_counter()
    n = sum(1 for _ in steps)
    return (time.perf_counter() - t) / max(n, 1)


def weight_bytes(engine: Engine) -> int:
    """Bytes of weights one decode step reads: every parameter, as the model holds it now."""
    return sum(a.nbytes for _, a in tree_flatten(engine.model.parameters()))


def stream_bytes_per_s(size: int, repeats: int) -> float:
    """Read bandwidth of this machine, as a decode step sees it: a pass over `size` bytes
    (capped at 1 GiB), best of `repeats`; numpy's reduction reads at the memory's pace."""
    data = np.ones(min(size, 1 << 30) // 4, dtype=np.float32)
    data.sum()

    def once() -> float:
        t = time.perf_counter()
        data.sum()
        return time.perf_counter() - t

    return data.nbytes / _best(once, max(repeats, 3))


def llama_cpp_source(engine: Engine) -> str:
    """The GGUF file this model was converted from, when llama-cpp-python can run it."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise BadInput("--against llama.cpp: llama-cpp-python is not installed (pip install llama-cpp-python "
                       "builds llama.cpp: about 20 minutes on 2 cores)")
    source = gguf_source(engine.loaded.path).get("source")
    if source is None:
        raise BadInput(f"--against llama.cpp: model '{engine.loaded.name}' was not converted from a GGUF file")
    if not Path(source).is_file():
        raise BadInput(f"--against llama.cpp: the GGUF file {source!r:.80} is gone")
    return source


def llama_cpp_decode_s_per_token(engine: Engine, tokens: int) -> float:
    """llama.cpp (llama-cpp-python) decoding the GGUF this model was converted from, greedy,
    on the same prompt, with as many threads as this machine has cores (lenscope's BLAS
    uses them all): the reference a llama.cpp user compares against."""
    import llama_cpp  # lazy: optional

    n_ctx = len(engine.encode(PROMPT)) + tokens + 64
    model = llama_cpp.Llama(llama_cpp_source(engine), n_ctx=n_ctx, n_threads=os.cpu_count() or 1, verbose=False)
    try:
        ids = model.tokenize(PROMPT.encode(), add_bos=False)
        gen = model.generate(ids, temp=0.0, top_k=1)
        next(gen)  # prefill + first token, not decode
        t, n = time.perf_counter(), 0
        for n, _ in enumerate(gen, 1):
            if n == tokens:
                break
        return (time.perf_counter() - t) / max(n, 1)
    finally:
        model.close()


def run_bench(engine: Engine, tokens: int = 48, repeats: int = 3, native: Engine | None = None,
              against_llama_cpp: bool = False) -> dict[str, Any]:
    """`native`: the same model as stored (quantized), when `engine` runs it dequantized."""
    ids = engine.encode(PROMPT)
    mid = engine.n_layers // 2
    real = f"steer:layers={mid},strength=4,token=happy"
    seven = [real, "emphasis:strength=2", f"steer:layers={mid},strength=-4,token=sad", "emphasis:strength=4",
             f"ablate:layers={mid},token=dog", "steer:layers=0,strength=2,token=park", "identity"]
    marks = [i for i, t in enumerate(ids) if "dog" in engine.token_text(t)] or [len(ids) - 1]
    _lenscope_decode_s_per_token(engine, [], 4, [])  # warm up both paths
    _plain_decode_s_per_token(engine, ids, 4)

    m = {}
    m["plain_mlx_lm"] = _best(lambda: _plain_decode_s_per_token(engine, ids, tokens), repeats)
    m["baseline"] = _best(lambda: _lenscope_decode_s_per_token(engine, [], tokens, []), repeats)
    m["two_plain_rows"] = _best(lambda: _lenscope_decode_s_per_token(engine, [""], tokens, []), repeats)
    m["baseline_identity"] = _best(lambda: _lenscope_decode_s_per_token(engine, ["identity"], tokens, []), repeats)
    m["baseline_1_lens"] = _best(lambda: _lenscope_decode_s_per_token(engine, [real], tokens, []), repeats)
    m["baseline_7_lenses"] = _best(lambda: _lenscope_decode_s_per_token(engine, seven, tokens, marks), repeats)
    m["baseline_marked"] = _best(lambda: _lenscope_decode_s_per_token(engine, [], tokens, marks), repeats)
    m["baseline_emphasis"] = _best(lambda: _lenscope_decode_s_per_token(engine, ["emphasis:strength=2"], tokens,
                                                                        marks), repeats)
    m["eight_plain_rows"] = _best(lambda: _lenscope_decode_s_per_token(engine, [""] * 7, tokens, []), repeats)
    constrained = 'constrain:regex="[a-z ,.!?]*"'  # long enough never to stop the row early
    _lenscope_decode_s_per_token(engine, [constrained], 4, [])  # builds llguidance's tokenizer once
    m["constrained_row"] = _best(lambda: _lenscope_decode_s_per_token(engine, [constrained], tokens, []), repeats)
    for rows in (2, 5, 9):  # 1, 4 and 8 candidates per batch
        m[f"search_{rows - 1}_per_batch"] = _best(lambda rows=rows: _search_s_per_candidate(engine, rows), repeats)
    if native is not None:
        _plain_decode_s_per_token(native, ids, 4)
        m["plain_native"] = _best(lambda: _plain_decode_s_per_token(native, ids, tokens), repeats)
    if against_llama_cpp:
        m["llama_cpp"] = _best(lambda: llama_cpp_decode_s_per_token(engine, tokens), repeats)

    long_ids = (ids * 8)[:256]

    def prefill() -> float:
        with engine.lock:
            t = time.perf_counter()
            mx.eval(engine.model(mx.array([long_ids])))
            return time.perf_counter() - t

    def capture() -> float:
        t = time.perf_counter()
        engine.capture_attention(long_ids)
        return time.perf_counter() - t

    def views_capture() -> float:  # attention and the residual stream, as the views read them
        t = time.perf_counter()
        engine.inspect(long_ids)
        return time.perf_counter() - t

    prefill()
    capture()
    views_capture()
    m["views_capture_256"] = _best(views_capture, repeats)
    m["prefill_256"] = _best(prefill, repeats)
    m["capture_256"] = _best(capture, repeats)
    m["heatmap_64_render"] = _heatmap_render_s(repeats)

    ratios = {
        "lenscope_baseline_vs_plain": m["baseline"] / m["plain_mlx_lm"],
        "identity_overhead": m["baseline_identity"] / m["two_plain_rows"] - 1.0,
        "second_row_cost": m["two_plain_rows"] / m["baseline"],
        "one_lens_vs_plain": m["baseline_1_lens"] / m["plain_mlx_lm"],
        "seven_lenses_vs_plain": m["baseline_7_lenses"] / m["plain_mlx_lm"],
        "marks_tracking_vs_baseline": m["baseline_marked"] / m["baseline"],
        "capture_vs_prefill": m["capture_256"] / m["prefill_256"],
        "views_capture_vs_prefill": m["views_capture_256"] / m["prefill_256"],
        "emphasis_vs_plain": m["baseline_emphasis"] / m["plain_mlx_lm"],
        "eight_rows_vs_one": m["eight_plain_rows"] / m["baseline"],
        "constrained_vs_free_row": m["constrained_row"] / m["two_plain_rows"],
        **{f"search_candidates_per_s_{n}_per_batch": 1 / m[f"search_{n}_per_batch"] for n in (1, 4, 8)},
    }
    targets = {"identity_overhead": 0.03, "one_lens_vs_plain": 1.2, "capture_vs_prefill": 1.5,
               "views_capture_vs_prefill": 1.5,
               "emphasis_vs_plain": 1.3, "eight_rows_vs_one": 2.5}
    if native is not None:  # a speed-up: the target is a floor, kept apart from the ceilings below
        ratios["float_vs_native_decode_speedup"] = m["plain_native"] / m["plain_mlx_lm"]
    if against_llama_cpp:
        ratios["baseline_vs_llama_cpp"] = m["baseline"] / m["llama_cpp"]

    size = weight_bytes(engine)
    bandwidth = stream_bytes_per_s(size, repeats)
    bound_s = size / bandwidth  # a step can be no faster than reading its weights once
    bound = {"weight_bytes": size, "stream_gb_s": round(bandwidth / 1e9, 2), "tok_s": round(1 / bound_s, 1),
             "plain_fraction": round(bound_s / m["plain_mlx_lm"], 3),
             "baseline_fraction": round(bound_s / m["baseline"], 3)}
    return {
        "bound": bound,
        "model": engine.loaded.name, "backend": engine.backend, "tokens": tokens, "repeats": repeats,
        "blas": blas_in_use().get("library"),
        "seconds": {k: round(v, 6) for k, v in m.items()},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "targets": targets,
        "met": {**{k: ratios[k] <= v for k, v in targets.items()},
                **({"float_vs_native_decode_speedup": ratios["float_vs_native_decode_speedup"] >= 2.0}
                   if native is not None else {})},
        "precision": engine.loaded.precision,
        "heatmap_64_ms": round(m["heatmap_64_render"] * 1000, 2),
        "heatmap_target_ms": 10.0,
        "views_ms": {k: round(v * 1000, 2) for k, v in views_render_s(repeats).items()},
    }


def _heatmap_render_s(repeats: int) -> float:
    rng = np.random.default_rng(0)
    matrix = rng.random((64, 64))
    labels = [f"t{i}" for i in range(64)]
    console = Console(width=100, height=40, file=io.StringIO(), color_system="truecolor")
    options = console.options.update(height=40)

    def once() -> float:
        t = time.perf_counter()
        list(console.render(Heatmap(matrix, labels, labels), options))
        return time.perf_counter() - t

    once()
    return statistics.median(once() for _ in range(max(repeats, 5)))


def views_render_s(repeats: int, layers: int = 30, heads: int = 9, tokens: int = 256) -> dict[str, float]:
    """Median seconds to draw each view at 120x40 for SmolLM2's sizes, from a capture: what a
    key press costs (picking the numbers from the capture, then rendering them)."""

    rng = np.random.default_rng(0)
    att = np.tril(rng.random((layers, heads, tokens, tokens), dtype=np.float32))
    att /= att.sum(-1, keepdims=True)
    hidden = rng.normal(size=(layers + 1, tokens, 64)).astype(np.float32)
    labels = [f" t{i}" for i in range(tokens)]
    q, marks = tokens - 1, [3, 4, 5]
    cos, _ = geometry.compare(hidden, hidden + 0.1)
    rolled, means = rollout(att), head_means(att)  # once per row when the mode is picked, like a capture
    lens_tokens = [[f"w{i}" for _ in range(16)] for i in range(layers + 1)]
    console = Console(width=120, height=40, file=io.StringIO(), color_system="truecolor")
    options = console.options.update(height=40)
    views = {
        "attention_text": lambda: AttentionText(labels, token_weights(att, q), q, marks),
        "attention_text_rollout": lambda: AttentionText(labels, token_weights(att, q, use_rollout=True,
                                                                                        means=means), q, marks),
        "head_map": lambda: HeadMap(head_shares(att, marks, q), cursor=(0, 0)),
        "logit_lens": lambda: LogitLensTable(lens_tokens, rng.random((layers + 1, 16)),
                                             np.zeros((layers + 1, 16), bool), labels[:16]),
        "rollout_heatmap": lambda: Heatmap(rolled, labels, labels),
        "geometry_strip": lambda: Heatmap(cos, [f"L{i}" for i in range(layers + 1)], labels, diverging=True),
    }

    def once(make) -> float:
        t = time.perf_counter()
        list(console.render(make(), options))
        return time.perf_counter() - t

    out = {}
    for name, make in views.items():
        once(make)
        out[name] = statistics.median(once(make) for _ in range(max(repeats, 5)))
    return out


def render(rep: dict[str, Any]) -> str:
    s, r = rep["seconds"], rep["ratios"]
    lines = [(f"bench on {rep['model']} ({rep['backend']}, {rep['precision']}, blas: {rep['blas']}), {rep['tokens']} tokens, "
             f"best of {rep['repeats']}"),
             f"  plain mlx-lm decode      {1 / s['plain_mlx_lm']:8.1f} tok/s",
             f"  lenscope baseline        {1 / s['baseline']:8.1f} steps/s  x{r['lenscope_baseline_vs_plain']:.3f} of plain",
             (f"  bound                    {rep['bound']['tok_s']:8.1f} tok/s  ({rep['bound']['weight_bytes'] / 1e6:.0f} MB of "
             f"weights a step at {rep['bound']['stream_gb_s']:.1f} GB/s read); plain reaches "
             f"{rep['bound']['plain_fraction']:.2f} of it, lenscope {rep['bound']['baseline_fraction']:.2f} (target >= 0.8)"),
             f"  2 rows, no lens          x{r['second_row_cost']:.3f} of 1 row (what batching costs here)",
             f"  + identity               overhead {100 * r['identity_overhead']:+.1f}% vs 2 plain rows (target <= 3%)",
             f"  + 1 lens (2 rows)        x{r['one_lens_vs_plain']:.3f} of plain  (target <= 1.2)",
             f"  + 7 lenses (8 rows)      x{r['seven_lenses_vs_plain']:.3f} of plain",
             f"  8 rows, no lens          x{r['eight_rows_vs_one']:.3f} of 1 row  (target <= 2.5)",
             f"  + emphasis (2 rows)      x{r['emphasis_vs_plain']:.3f} of plain  (target <= 1.3)",
             f"  marks tracked            x{r['marks_tracking_vs_baseline']:.3f} of baseline",
             f"  capture 256 tokens       x{r['capture_vs_prefill']:.3f} of prefill  (target <= 1.5)",
             f"  heatmap 64x64 render     {rep['heatmap_64_ms']:.2f} ms  (target <= 10 ms)",
             f"  views capture 256 tokens x{r['views_capture_vs_prefill']:.3f} of prefill  (target <= 1.5)",
             f"  constrained row          x{r['constrained_vs_free_row']:.3f} of a free row per step (2 rows each)",
             "  search candidates/s      " + ", ".join(f"{r[f'search_candidates_per_s_{n}_per_batch']:.1f} at {n} per batch"
                                                      for n in (1, 4, 8)),
             "  views at 120x40, 30 layers x 9 heads, 256 tokens (target <= 10 ms each): "
             + ", ".join(f"{k} {v:.1f} ms" for k, v in rep["views_ms"].items())]
    if "baseline_vs_llama_cpp" in r:
        lines.insert(3, f"  llama.cpp, same GGUF      {1 / s['llama_cpp']:8.1f} tok/s  (all cores): lenscope's baseline step "
                        f"takes x{r['baseline_vs_llama_cpp']:.2f} its time")
    if "float_vs_native_decode_speedup" in r:
        lines.insert(2, f"  {rep['precision']} vs quantized plain decode  x{r['float_vs_native_decode_speedup']:.2f} "
                        f"faster  (target >= 2)")
    return "\n".join(lines)


LAUNCH_EXPERIMENT = """[defaults]
max_tokens = {tokens}
mark = ["blue"]
lens = ["emphasis:strength=3", "steer:token=happy,strength=8"]
""" + "".join(f'[[comparison]]\nname = "c{i}"\nprompt = "the key is blue. {w} went to the park. the key is"\n'
              for i, w in enumerate(["tom", "mia", "jack", "nora", "max", "lily", "sam", "ben"], 1))


def launch_bench(model: str | None, processes: int = 2, tokens: int = 48, tensor: bool = False) -> dict[str, Any]:
    """Wall time of one experiment (8 comparisons) run by one process and under
    `mlx.launch -n processes` (ring backend, this machine; OpenBLAS threads split between
    the ranks), each a fresh `lenscope run` (model load included), and what rank 0 reports it
    spent exchanging results. `tensor`: the processes hold the model split between them
    (`--shard tensor`) and each runs every comparison; then the decode rates of the two runs
    (tokens/s, mean over comparisons) say what the split's exchanges cost per token."""
    launcher = [sys.executable, "-c", "from mlx._distributed_utils.launch import main; main()"]
    env = {k: v for k, v in os.environ.items() if k != "MLX_RANK"}
    with tempfile.TemporaryDirectory() as tmp:
        exp = Path(tmp) / "exp.toml"
        exp.write_text(LAUNCH_EXPERIMENT.format(tokens=tokens))
        run = [sys.executable, "-m", "lenscope", "run", str(exp)] + (["--model", model] if model else [])
        times, logs = {}, {}
        for n in (1, processes):
            cmd = run + ["--out", str(Path(tmp) / f"out{n}")]
            cmd = cmd if n == 1 else launcher + ["-n", str(n), "--backend", "ring", "--"] + cmd + \
                (["--shard", "tensor"] if tensor else [])
            # ranks sharing this machine split its cores: OpenBLAS's own threads would oversubscribe them
            run_env = env if n == 1 else {**env, "OPENBLAS_NUM_THREADS": str(max(1, (os.cpu_count() or n) // n))}
            t = time.perf_counter()
            done = subprocess.run(cmd, env=run_env, capture_output=True, text=True, check=False)
            times[n] = time.perf_counter() - t
            if done.returncode or not (Path(tmp) / f"out{n}" / "report.md").exists():
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise BadInput(f"bench --launch: the {n}-process run failed: {last}")
            logs[n] = done.stderr
        runs = {n: [json.loads(line) for line in (Path(tmp) / f"out{n}" / "results.jsonl").read_text().splitlines()]
                for n in (1, processes)}
        results = runs[1]
        per = statistics.mean(r["timing"]["prefill_s"] + r["timing"]["decode_s"] for r in results)
        exchange = re.search(r"exchange\(s\) between the \d+ processes: ([\d.]+) s", logs[processes])
    rep = {"comparisons": len(results), "tokens": tokens, "processes": processes, "cores": os.cpu_count(),
           "shard": "tensor" if tensor else "data", "wall_s": {str(k): round(v, 2) for k, v in times.items()},
           "speedup": round(times[1] / times[processes], 3), "comparison_s": round(per, 3),
           "exchange_s": float(exchange.group(1)) if exchange else None}
    if tensor:  # rank 0 times every comparison of the split run: the rates compare directly
        rates = {str(n): round(statistics.mean(r["timing"]["decode_tokens_per_s"] for r in recs), 2)
                 for n, recs in runs.items()}
        rep["decode_tokens_per_s"] = rates
        rep["decode_ratio"] = round(rates[str(processes)] / rates["1"], 3)
    return rep


def render_launch(rep: dict[str, Any]) -> str:
    n = rep["processes"]
    lines = [f"{rep['comparisons']} comparisons x {rep['tokens']} tokens, {rep['cores']} cores",
             f"  1 process:   {rep['wall_s']['1']:.2f} s (model load included)",
             f"  {n} processes: {rep['wall_s'][str(n)]:.2f} s under mlx.launch -n {n} (ring, this machine)",
             f"  speedup {rep['speedup']:.2f}x · one comparison {rep['comparison_s']:.3f} s of generation"]
    if rep["shard"] == "tensor":
        rates = rep["decode_tokens_per_s"]
        lines.append(f"  the model split over {n} (--shard tensor): decode {rates[str(n)]:.1f} tok/s against "
                     f"{rates['1']:.1f} in one process ({rep['decode_ratio']:.2f}x)")
    if rep["exchange_s"] is not None:
        lines.append(f"  rank 0 spent {rep['exchange_s']:.2f} s in the exchanges (waiting for the slowest rank "
                     "included)")
    return "\n".join(lines)
