"""`lenscope run` and `lenscope search` under `mlx.launch -n 2` (ring backend, localhost) on
the demo model: the merged results equal one process's, token for token, and a run whose
rank 1 is killed midway resumes without redoing what either rank finished."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

COMPARISONS = [  # 8 comparisons: plain, sampled, captured attention and a conversation among them
    'name = "c1"\nprompt = "the key is blue. the key is"',
    'name = "c2"\nprompt = "the sky is blue. tom saw the"\ntemperature = 0.8\nseed = 3',
    'name = "c3"\nprompt = "mia has a blue hat. the hat is"\ncapture_attention = true',
    'name = "c4"\nprompt = "blue birds sing. the birds"',
    'name = "c5 conversation"\nturns = ["the key is blue.", "what colour is it?"]',
    'name = "c6"\nprompt = "a blue car. the car"\ntemperature = 1.0\nseed = 7',
    'name = "c7"\nprompt = "the door is blue. open the"',
    'name = "c8"\nprompt = "blue is a colour. red is"',
]


def experiment(tmp_path: Path, max_tokens: int = 16) -> Path:
    body = (f'[defaults]\nmax_tokens = {max_tokens}\nmark = ["blue"]\n'
            'lens = ["emphasis:strength=3", "steer:token=happy,strength=8"]\n')
    body += "".join(f"[[comparison]]\n{c}\n" for c in COMPARISONS)
    path = tmp_path / "exp.toml"
    path.write_text(body)
    return path


def lenscope(*args: str) -> list[str]:
    return [sys.executable, "-m", "lenscope", *args]


def launch(*args: str) -> list[str]:
    """`mlx.launch -n 2` with this interpreter (the same the console script would run)."""
    return [sys.executable, "-c", "from mlx._distributed_utils.launch import main; main()", "-n", "2",
            "--backend", "ring", "--", *lenscope(*args)]


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("MLX_RANK", "MLX_HOSTFILE")}
    return {**e, "HF_HUB_OFFLINE": "1", "MLX_DISABLE_COMPILE": "1"}


def run(cmd: list[str], cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def records(folder: Path) -> list[dict]:
    """results.jsonl without what differs run to run (timings)."""
    out = []
    for line in (folder / "results.jsonl").read_text().splitlines():
        rec = json.loads(line)
        rec.pop("timing", None)
        for t in rec.get("conversation", {}).get("turns", []):
            for r in t["results"]:
                r.pop("timing", None)
        out.append(rec)
    return out


def tokens(recs: list[dict]) -> list:
    return [[row["token_ids"] for row in r["rows"]] if "rows" in r else
            [[row["token_ids"] for row in t["rows"]] for t in r["conversation"]["turns"]] for r in recs]


def test_run_under_mlx_launch_equals_one_process(tmp_path):
    exp = experiment(tmp_path)
    run(lenscope("run", str(exp), "--out", "one"), tmp_path)
    two = run(launch("run", str(exp), "--out", "two"), tmp_path)
    assert "2 processes: 8 comparison(s) in 4 round(s)" in two.stderr
    assert "[8/8]" in two.stderr  # rank 0 counts what every rank finished
    one, merged = records(tmp_path / "one"), records(tmp_path / "two")
    assert [r["comparison"] for r in merged] == [r["comparison"] for r in one]  # one process's order
    assert tokens(merged) == tokens(one)
    assert merged == one  # every field: texts, top alternatives, KL, attention on marks, attention maps
    for svg in sorted((tmp_path / "one" / "heatmaps").iterdir()):
        assert (tmp_path / "two" / "heatmaps" / svg.name).read_text() == svg.read_text()
    assert (tmp_path / "two" / "report.md").read_text() == (tmp_path / "one" / "report.md").read_text()
    shards = [len((tmp_path / "two" / "shards" / f"rank-{r}.jsonl").read_text().splitlines()) for r in (0, 1)]
    assert shards == [4, 4]


def test_search_under_mlx_launch_equals_one_process(tmp_path):
    (tmp_path / "search.toml").write_text('''
prompts = ["the key is blue. the key is", "tom went to the park. he", "mia has a cat. the cat", "the sun was warm. we"]
max_tokens = 8
strategy = "halving"
steps = 3
budget = 9
rows = 3
[[lens]]
kind = "bias"
words = ["happy"]
value = [0.0, 6.0]
[[lens]]
kind = "emphasis"
strength = [1.0, 3.0]
[[score]]
kind = "words"
list = "positive"
''')
    run(lenscope("search", "search.toml", "--out", "one"), tmp_path)
    run(launch("search", "search.toml", "--out", "two"), tmp_path)
    one, two = tmp_path / "one", tmp_path / "two"
    assert (two / "results.jsonl").read_text() == (one / "results.jsonl").read_text()
    assert (two / "report.md").read_text() == (one / "report.md").read_text()
    assert (two / "best.toml").read_text() == (one / "best.toml").read_text()
    assert (two / "shards" / "rank-1.jsonl").read_text().strip()  # rank 1 did its share


def _rank_pid(rank: int, parent_group: int) -> int | None:
    """The pid of the lenscope process that the launch started as `rank`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes()
            group = os.getpgid(int(entry.name))
        except (OSError, ProcessLookupError):
            continue
        if f"MLX_RANK={rank}".encode() in environ and b"lenscope" in cmdline and group == parent_group:
            return int(entry.name)
    return None


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds rank 1 through /proc")
def test_killed_rank_leaves_its_work_and_resume_finishes_the_run(tmp_path):
    exp = experiment(tmp_path, max_tokens=160)  # slow enough to kill between comparisons
    run(lenscope("run", str(exp), "--out", "one"), tmp_path)
    proc = subprocess.Popen(launch("run", str(exp), "--out", "two"), cwd=tmp_path, env=env(), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shard = tmp_path / "two" / "shards" / "rank-1.jsonl"
    try:
        deadline = time.time() + 180
        while time.time() < deadline and not (shard.exists() and shard.read_text().count("\n") >= 1):
            time.sleep(0.05)
        assert shard.exists(), "rank 1 never finished a comparison"
        victim = _rank_pid(1, os.getpgid(proc.pid))
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # mlx.launch exits 0 whatever its ranks did, and stops the others when one dies
    assert "Node with rank 1 exited with code -9" in err, err[-3000:]
    before = len(records(tmp_path / "two")) if (tmp_path / "two" / "results.jsonl").exists() else 0
    kept = sum(1 for _ in shard.read_text().splitlines())
    assert 1 <= kept and before < 8
    resumed = run(launch("run", str(exp), "--out", "two", "--resume"), tmp_path)
    done = next(line for line in resumed.stderr.splitlines() if line.startswith("resuming:"))
    n_done = int(done.split()[1])
    assert n_done >= max(before, kept)  # nothing a rank finished is run again
    assert f"2 processes: {8 - n_done} comparison(s)" in resumed.stderr
    assert records(tmp_path / "two") == records(tmp_path / "one")


def test_a_pipeline_sharded_model_is_refused_in_one_line():
    """mlx-lm's pipeline sharding leaves a process only its slice of the layers (the others
    None): lenscope's hooks, captures and logit lens need them all, and say so."""
    from lenscope import models
    from lenscope.core.engine import Engine
    from lenscope.errors import BadInput

    loaded = models.load(None)
    loaded.model.layers[0] = None  # as PipelineMixin.pipeline leaves the layers another rank holds
    with pytest.raises(BadInput, match="pipeline-sharded"):
        Engine(loaded)


def test_bench_launch_times_one_and_two_processes():
    from lenscope.lab.bench import launch_bench, render_launch

    rep = launch_bench(None, 2, tokens=4)
    assert set(rep["wall_s"]) == {"1", "2"} and all(v > 0 for v in rep["wall_s"].values())
    assert rep["comparisons"] == 8 and rep["exchange_s"] is not None
    assert rep["speedup"] == round(rep["wall_s"]["1"] / rep["wall_s"]["2"], 3) or abs(
        rep["speedup"] - rep["wall_s"]["1"] / rep["wall_s"]["2"]) < 0.01
    assert "under mlx.launch -n 2" in render_launch(rep)


def test_resume_draws_the_heatmaps_a_killed_rank_left_undrawn(tmp_path):
    """A rank killed after writing its shard line but before the leader drew that
    comparison's heatmaps: the resumed run draws them, so its results equal a full run's."""
    exp = experiment(tmp_path)
    run(lenscope("run", str(exp), "--out", "one"), tmp_path)
    full = records(tmp_path / "one")
    c3 = next(i for i, r in enumerate(full) if r["comparison"] == "c3")
    assert full[c3]["heatmaps"]
    undrawn = {k: v for k, v in json.loads((tmp_path / "one" / "results.jsonl").read_text().splitlines()[c3]).items()
               if k != "heatmaps"}
    shards = tmp_path / "two" / "shards"
    shards.mkdir(parents=True)
    (shards / "rank-1.jsonl").write_text(json.dumps({"index": c3, "comparison": "c3", "record": undrawn}) + "\n")
    run(lenscope("run", str(exp), "--out", "two", "--resume"), tmp_path)
    assert records(tmp_path / "two") == full
    assert all((tmp_path / "two" / svg).is_file() for svg in full[c3]["heatmaps"])
