"""`--shard tensor`: the demo model (8 heads, 4 KV heads) split over two processes under
`mlx.launch -n 2 --backend ring` on this machine gives what one process gives: every lens
kind's tokens, logits within float error, attention on the marks, and the attention and
residual captures; the commands that take --shard print the same; what cannot be split is
refused in one line."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tensor_parallel_case import HEADS, SAMPLED, SPECS, compute
from test_distributed import env, experiment, lenscope, records

from lenscope.errors import BadInput

HERE = Path(__file__).parent
LOGITS_ATOL = 1e-4  # all-reduced sums round differently from one process's: measured 1.9e-5 on |logits| <= 51


def launch(*cmd: str, n: int = 2) -> list[str]:
    return [sys.executable, "-c", "from mlx._distributed_utils.launch import main; main()", "-n", str(n),
            "--backend", "ring", "--", *cmd]


def run(cmd: list[str], cwd: Path, ok: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout, check=False)
    if ok:
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def one_process():
    import argparse

    from lenscope.cli.common import load_engine

    engine, _ = load_engine(argparse.Namespace(model=None, trust_remote_code=False, precision="auto", shard="data"))
    return compute(engine)


def test_every_lens_on_the_split_model_equals_one_process(tmp_path, one_process):
    run(launch(sys.executable, str(HERE / "tensor_parallel_case.py"), str(tmp_path / "split.npz")), tmp_path)
    one, two = one_process, dict(np.load(tmp_path / "split.npz"))
    for name, specs in (("greedy", ["baseline"] + SPECS), ("sampled", ["baseline"] + SAMPLED)):
        for r, spec in enumerate(specs):
            assert two[f"{name}_tokens"][r].tolist() == one[f"{name}_tokens"][r].tolist(), spec
            a, b = one[f"{name}_logits"][:, r], two[f"{name}_logits"][:, r]
            assert (np.isinf(a) == np.isinf(b)).all() and (a[np.isinf(a)] == b[np.isinf(b)]).all(), spec  # masks
            finite = np.isfinite(a)
            assert np.abs(a[finite] - b[finite]).max() < LOGITS_ATOL, spec
        np.testing.assert_allclose(two[f"{name}_marks"], one[f"{name}_marks"], atol=1e-6)  # every head's mean
    for r, spec in enumerate(SPECS):
        np.testing.assert_allclose(two[f"attention_{r}"], one[f"attention_{r}"], atol=2e-5, err_msg=spec)
        np.testing.assert_allclose(two[f"hidden_{r}"], one[f"hidden_{r}"], rtol=1e-5, atol=1e-4, err_msg=spec)
    # the head-picking settings act (on both ranks' heads), so their equality says something
    base = one["greedy_logits"][0, 0]
    for spec in HEADS:
        r = 1 + SPECS.index(spec)
        assert np.abs(one["greedy_logits"][0, r] - base).max() > 1e-2, spec


# JSON rounds floats (4 decimals for attention): a last-bit difference can flip the last
# printed digit, so printed values agree to one step of that rounding
PRINTED = 1.5e-4


def _same(a, b, tol: float, where: str = "") -> None:
    """JSON equal, floats within tol."""
    if isinstance(a, float) or isinstance(b, float):
        assert abs(a - b) <= tol, f"{where}: {a} vs {b}"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _same(a[k], b[k], tol, f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, tol, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a} vs {b}"


PROMPT = ["--prompt", "the key is blue. tom saw the key. the key is", "--mark", "blue"]
COMMANDS = {
    "generate": ["generate", *PROMPT, "--max-tokens", "8", "--capture-attention", "--lens",
                 "emphasis:strength=3,heads=1|6", "--lens", "head-scale:scale=0,heads=2|5+steer:token=happy,strength=6"],
    "attention": ["attention", *PROMPT, "--lens", "hold:ceiling=8,heads=0|7", "--layer", "2"],
    "logit-lens": ["logit-lens", *PROMPT, "--lens", "blur:sigma=2,axis=cols,target=self_attn.o_proj"],
    "heads": ["heads", "--length", "12"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_commands_on_the_split_model_print_what_one_process_prints(tmp_path, command):
    args = [*COMMANDS[command], "--json"]
    one = json.loads(run(lenscope(*args), tmp_path).stdout)
    split = run(launch(*lenscope(*args, "--shard", "tensor")), tmp_path)
    two = json.loads(split.stdout)  # rank 0's JSON alone: rank 1 prints nothing
    for data in (one, two):
        data.pop("timing", None)
        data.pop("precision", None)
    _same(two, one, PRINTED, command)


def test_run_on_the_split_model_equals_one_process(tmp_path):
    exp = experiment(tmp_path, max_tokens=8)
    run(lenscope("run", str(exp), "--out", "one"), tmp_path)
    split = run(launch(*lenscope("run", str(exp), "--out", "two", "--shard", "tensor")), tmp_path)
    assert "2 processes hold one model split between them" in split.stderr and "[8/8]" in split.stderr
    assert split.stderr.count("[1/8]") == 1  # rank 0 alone reports
    one, two = records(tmp_path / "one"), records(tmp_path / "two")
    for a, b in zip(one, two):
        a.pop("precision", None), b.pop("precision", None)
    _same(two, one, PRINTED)
    assert not (tmp_path / "two" / "shards").exists()  # nothing to merge: rank 0 wrote it all


def test_refusals_are_one_line(tmp_path):
    alone = run(lenscope("generate", "--prompt", "hi", "--shard", "tensor"), tmp_path, ok=False)
    assert alone.returncode == 2 and alone.stderr.strip().count("\n") == 0
    assert "--shard tensor: this is one process" in alone.stderr
    # 8 heads and 4 KV heads do not split over 3 processes: every rank stops, rank 0 says why
    three = run(launch(*lenscope("generate", "--prompt", "hi", "--shard", "tensor"), n=3), tmp_path, ok=False)
    said = [line for line in three.stderr.splitlines() if line.startswith("lenscope:")]
    assert said == [("lenscope: --shard tensor: the model's 8 attention heads, 4 KV heads and 704 MLP columns do not "
                    "split evenly over 3 processes")], three.stderr
    # a process that cannot load its model (a folder missing on one machine): rank 0 names it
    script = (f'if [ "$MLX_RANK" = 1 ]; then M="--model {tmp_path}/missing"; else M=""; fi; '
              f'exec {sys.executable} -m lenscope generate $M --prompt hi --shard tensor')
    missing = run(launch("sh", "-c", script), tmp_path, ok=False)
    said = [line for line in missing.stderr.splitlines() if line.startswith("lenscope:")]
    assert said == [(f"lenscope: process 1: model '{tmp_path}/missing': no such folder or .gguf file, and not a "
                    "named model (named: smollm2, gemma3-270m)")], missing.stderr
    # a refusal on one process only, while preparing the run (a lens file missing on one machine)
    np.save(tmp_path / "d.npy", np.ones(256, dtype=np.float32))
    script = (f'if [ "$MLX_RANK" = 1 ]; then F={tmp_path}/gone.npy; else F={tmp_path}/d.npy; fi; '
              f'exec {sys.executable} -m lenscope generate --prompt hi --shard tensor --lens steer:file=$F')
    gone = run(launch("sh", "-c", script), tmp_path, ok=False)
    said = [line for line in gone.stderr.splitlines() if line.startswith("lenscope:")]
    assert said == [f"lenscope: process 1: direction file '{tmp_path}/gone.npy': not found"], gone.stderr
    # a refusal every process meets after loading (a layer the model lacks): said once
    layer = run(launch(*lenscope("attention", "--prompt", "hi there", "--layer", "9", "--shard", "tensor")), tmp_path,
                ok=False)
    said = [line for line in layer.stderr.splitlines() if line.startswith("lenscope:")]
    assert said == ["lenscope: --layer 9: the model has 4 layers (0..3, or negative from the end)"], layer.stderr
    tui = run(lenscope("tui", "--shard", "tensor"), tmp_path, ok=False)
    assert tui.returncode == 2 and "unrecognized arguments: --shard tensor" in tui.stderr


def test_shard_refuses_what_it_cannot_split_evenly_or_has_not_checked():
    from lenscope import models
    from lenscope.core import tensor_parallel

    model = models.load(None).model
    with pytest.raises(BadInput, match="8 attention heads, 4 KV heads and 704 MLP columns do not split evenly over 3"):
        tensor_parallel.shard(model, tensor_parallel.TensorSplit(0, 3, None))
    model.args.model_type = "gemma2"
    with pytest.raises(BadInput, match="model type 'gemma2' is not supported"):
        tensor_parallel.shard(model, tensor_parallel.TensorSplit(0, 2, None))
    assert tensor_parallel.split_of(model) is None  # refused before anything was split
    model.args.model_type = "llama"
    from mlx import nn

    nn.quantize(model, group_size=64, bits=4)  # down_proj's 704 input columns: 11 groups, not 2 slices of whole groups
    with pytest.raises(BadInput, match="model's 11 quantization groups per down_proj row do not split evenly over 2"):
        tensor_parallel.shard(model, tensor_parallel.TensorSplit(0, 2, None))


@pytest.fixture(scope="module")
def quantized_demo(tmp_path_factory):
    """The demo model in 4 bits, groups of 32: each process's slice of o_proj and down_proj
    holds whole groups over 2 processes (704 columns = 22 groups); groups of 64 would not."""
    from mlx_lm import convert

    from lenscope.models import DEMO_MODEL_DIR

    out = tmp_path_factory.mktemp("q4") / "demo-4bit"
    convert(hf_path=str(DEMO_MODEL_DIR), mlx_path=str(out), quantize=True, q_group_size=32, q_bits=4)
    for path in out.glob("*.py"):  # the package file the demo folder carries: not a model's
        path.unlink()
    return out


def test_quantized_model_split_equals_one_process(tmp_path, quantized_demo):
    """The quantized classes of the split (QuantizedAllToSharded, QuantizedShardedToAll), and
    weight lenses on them: a blur across down_proj's input columns and head-scale on o_proj
    gather the quantized slices, dequantized, whole."""
    args = ["generate", "--model", str(quantized_demo), "--precision", "native", *PROMPT, "--max-tokens", "8",
            "--capture-attention", "--json", "--lens", "blur:sigma=2,axis=cols,target=mlp.down_proj",
            "--lens", "head-scale:scale=0,heads=1|6", "--lens", "emphasis:strength=3,heads=2|5"]
    one = json.loads(run(lenscope(*args), tmp_path).stdout)
    two = json.loads(run(launch(*lenscope(*args, "--shard", "tensor")), tmp_path).stdout)
    assert one["precision"] == two["precision"] == "native (quantized)"
    assert all(kl[0] > 1e-3 for kl in (r["kl_from_baseline"] for r in one["rows"][1:]))  # each lens acts
    for data in (one, two):
        data.pop("timing")
    _same(two, one, 1.5e-5)  # 5 printed decimals: one step of their rounding


REAL = ["generate", "--model", "smollm2", "--precision", "float32", "--prompt", ("The key is in the blue box. Tom put his hat on the table. "
        "Where is the key? The key is"), "--mark", "blue", "--max-tokens", "6", "--capture-attention", "--json",
        "--lens", "emphasis:strength=3,heads=1|7", "--lens", "hold:ceiling=6", "--lens", "steer:token=happy,strength=6",
        "--lens", "blur:sigma=2,axis=cols,target=mlp.down_proj,layers=3|4", "--lens", "temperature:start=1,end=1"]


@pytest.mark.real_model
def test_smollm2_split_over_three_processes_equals_one(tmp_path, smollm2_engine):
    """SmolLM2-135M (9 heads, 3 KV heads) splits over 3 processes, not 2: every lens row's
    tokens equal one process's and its attention within float error. (The precision is pinned:
    `auto` measures, and three processes on two cores time differently from one.)"""
    refused = run(launch(*lenscope(*REAL, "--shard", "tensor")), tmp_path, ok=False)
    said = [line for line in refused.stderr.splitlines() if line.startswith("lenscope:")]
    assert said == [("lenscope: --shard tensor: the model's 9 attention heads and 3 KV heads do not split evenly "
                    "over 2 processes")], refused.stderr
    one = json.loads(run(lenscope(*REAL), tmp_path).stdout)
    three = json.loads(run(launch(*lenscope(*REAL, "--shard", "tensor"), n=3), tmp_path, timeout=600).stdout)
    assert [r["token_ids"] for r in three["rows"]] == [r["token_ids"] for r in one["rows"]]
    assert len({tuple(r["token_ids"]) for r in one["rows"]}) >= 4  # the lenses act
    for data in (one, three):
        data.pop("timing"), data.pop("precision")
    _same(three, one, 2e-5)


def test_search_on_the_split_model_equals_one_process(tmp_path):
    (tmp_path / "search.toml").write_text('''
prompts = ["the key is blue. the key is", "tom went to the park. he", "mia has a cat. the cat"]
max_tokens = 6
strategy = "halving"
steps = 3
budget = 6
rows = 3
[[lens]]
kind = "emphasis"
strength = [1.0, 3.0]
heads = [[1, 6]]
[[lens]]
kind = "bias"
words = ["happy"]
value = [0.0, 6.0]
[[score]]
kind = "words"
list = "positive"
''')
    run(lenscope("search", "search.toml", "--out", "one"), tmp_path)
    split = run(launch(*lenscope("search", "search.toml", "--out", "two", "--shard", "tensor")), tmp_path)
    one, two = tmp_path / "one", tmp_path / "two"
    assert (two / "best.toml").read_text() == (one / "best.toml").read_text()
    assert (two / "report.md").read_text() == (one / "report.md").read_text()
    lines = [[json.loads(line) for line in (d / "results.jsonl").read_text().splitlines()] for d in (one, two)]
    _same(lines[1], lines[0], 1.5e-5)
    assert not (two / "shards").exists() and split.stdout.count("best:") == 1


def test_a_second_model_is_refused_next_to_a_split_one():
    """patch:model= and a judge's model= would load a whole second model in every process."""
    from lenscope import models
    from lenscope.core import tensor_parallel
    from lenscope.core.engine import Engine

    loaded = models.load(None)
    object.__setattr__(loaded.model, tensor_parallel.ATTR, tensor_parallel.TensorSplit(0, 2, None))  # as shard() marks it
    with pytest.raises(BadInput, match="a second model .* next to a model split across processes"):
        Engine(loaded).other_model("smollm2")


def test_bench_times_the_split_model_against_one_process():
    from lenscope.lab.bench import launch_bench, render_launch

    rep = launch_bench(None, 2, tokens=4, tensor=True)
    rates = rep["decode_tokens_per_s"]
    assert rep["shard"] == "tensor" and set(rates) == {"1", "2"} and all(v > 0 for v in rates.values())
    assert abs(rep["decode_ratio"] - rates["2"] / rates["1"]) < 0.01
    assert "the model split over 2 (--shard tensor): decode" in render_launch(rep)
