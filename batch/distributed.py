"""Runs sharded over processes or machines with MLX's own launcher (`mlx.launch`).

    mlx.launch -n 2 -- lenscope run EXPERIMENT.toml --out DIR            # two processes here
    mlx.launch --hosts mac1,mac2 -- lenscope run EXPERIMENT.toml --out DIR
    mlx.launch --hostfile hosts.json -- lenscope search SEARCH.toml --out DIR

Each rank loads the whole model and takes its share of the work (data parallel); there is
no scheduler here. Work goes in rounds of one item per rank; after each round the ranks
exchange what they finished (`World.gather`, an all-gather over the launcher's backend), so
rank 0 writes the merged results and reports, in the order one process would, and shows
the whole run's progress. A rank also appends what it finishes to its own shard file, so a
rank that dies leaves its work behind for `--resume`.

With `--shard tensor` (`tensor_world`) the ranks instead hold one model split between them
(core/tensor_parallel.py): every rank runs every item, and `gather` returns rank 0's.

Without the launcher (no MLX_RANK / MPI rank in the environment) this is one process, and
nothing here touches `mx.distributed`.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import mlx.core as mx

from lenscope.core.tensor_parallel import exchange
from lenscope.errors import BadInput
from lenscope.storage.datafile import json_lines, read_text

LAUNCH_VARS = ("MLX_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")  # set by mlx.launch (ring, jaccl) and by MPI
SHARDS = "shards"


def launched() -> bool:
    return any(v in os.environ for v in LAUNCH_VARS)


@dataclass
class World:
    rank: int = 0
    size: int = 1
    group: Any = None
    gather_s: float = 0.0  # time spent in `gather` (waiting for the slowest rank included)
    gathers: int = 0
    tensor: bool = False  # the ranks hold one model split between them (`--shard tensor`): all do all the work

    @property
    def leader(self) -> bool:
        return self.rank == 0

    @property
    def data_parallel(self) -> bool:
        """The ranks share out the work (data parallel), each with the whole model."""
        return self.size > 1 and not self.tensor

    def gather(self, items: list[Any]) -> list[Any]:
        """Every rank's `items` (JSON data), concatenated in rank order, on every rank. With
        `tensor`, where every rank did the same work, rank 0's: what the ranks agree on."""
        if self.size == 1:
            return list(items)
        t = time.perf_counter()
        try:
            every = exchange(items, self.group)
        except RuntimeError as exc:  # a rank died or its machine went away
            after = ("launch again (a run keeps what it finished: --resume)" if self.tensor else
                     "what every rank finished is kept: launch again with --resume")
            raise BadInput(f"distributed: rank {self.rank} lost another process of the launch ({exc}); {after}") from None
        finally:
            self.gather_s += time.perf_counter() - t
            self.gathers += 1
        return every[0] if self.tensor else [item for items in every for item in items]

    def shard_file(self, out: Path) -> Path:
        return out / SHARDS / f"rank-{self.rank}.jsonl"

    def rounds(self, todo: list[Any]) -> list[Any | None]:
        """This rank's item in each round of `len(todo) / size` rounds (None: it sits out);
        with `tensor`, every item, one per round."""
        if self.tensor:
            return list(todo)
        n = -(-len(todo) // self.size)
        return [todo[k * self.size + self.rank] if k * self.size + self.rank < len(todo) else None for k in range(n)]


_WORLD: World | None = None


def world() -> World:
    """This process's place in the launch (one process of one without the launcher)."""
    global _WORLD
    if _WORLD is None:
        if not launched():
            _WORLD = World()
        else:
            _check_hostfile()
            try:
                with _watchdog(_launch_timeout()):
                    group = mx.distributed.init(strict=True)
            except Exception as exc:  # the launcher's backend could not connect
                raise BadInput(f"distributed: could not join the launch ({exc})") from None
            _WORLD = World(group.rank(), group.size(), group)
    return _WORLD


def tensor_world() -> World:
    """This process's place in a tensor-parallel launch (`--shard tensor`): every rank runs
    every comparison on its slice of the model; rank 0 alone prints and writes. The others
    are silent but for their tracebacks and their refusals (`end_on_refusal`)."""
    here = world()
    if here.size == 1:
        raise BadInput("--shard tensor: this is one process; start it across processes with mlx.launch, "
                       "e.g. mlx.launch -n 2 -- lenscope generate --shard tensor ...")
    if not here.tensor:
        here.tensor = True
        if not here.leader:
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (for the process's life)
            sys.excepthook = lambda *exc: traceback.print_exception(*exc, file=sys.__stderr__)
    return here


LINGER_S = 3.0  # how long a rank other than 0 waits before saying its refusal


def tensor_launch() -> bool:
    return _WORLD is not None and _WORLD.tensor


def end_on_refusal(line: str) -> NoReturn:
    """How a process of a tensor-parallel launch ends on a refusal (one line). Rank 0 says it
    and leaves at once (MLX's own exit would wait for the others). Another rank first waits
    LINGER_S: a refusal every process meets (a bad --layer) is then said once, by rank 0,
    since mlx.launch stops the others when one exits with an error; one that only this
    process meets (a file missing on its machine) is said by it, as `process R: ...`."""
    if _WORLD.leader:
        print(f"lenscope: {line}", file=sys.stderr)
    else:
        time.sleep(LINGER_S)
        print(f"lenscope: process {_WORLD.rank}: {line}", file=sys.__stderr__)
    for stream in (sys.stderr, sys.__stderr__):
        stream.flush()
    os._exit(2)


def _launch_timeout() -> float:
    raw = os.environ.get("LENSCOPE_LAUNCH_TIMEOUT", "120")
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 1e6:  # also nan and inf
        raise BadInput(f"LENSCOPE_LAUNCH_TIMEOUT '{raw}': not a number of seconds (0 < s < 1e6)")
    return seconds


def _check_hostfile() -> None:
    """MLX_HOSTFILE, when set, is a readable JSON list (MLX would fail on it less clearly)."""
    path = os.environ.get("MLX_HOSTFILE")
    if not path:
        return

    try:
        hosts = json.loads(read_text(path, f"MLX_HOSTFILE '{path}'", 1 << 20))
    except (ValueError, RecursionError):
        hosts = None
    if not isinstance(hosts, list) or not hosts:
        raise BadInput(f"MLX_HOSTFILE '{path}': not a JSON list of hosts")


@contextmanager
def _watchdog(seconds: float) -> Iterator[None]:
    """MLX's init waits for every rank and holds the interpreter while it does (no thread or
    signal handler can run), so a child process keeps the time: if the launch is not joined
    within `seconds`, it says so in one line and ends this process."""
    parent = os.getpid()
    ranks = ", ".join(f"{v}={os.environ[v]}" for v in (*LAUNCH_VARS, "MLX_HOSTFILE") if v in os.environ)
    message = (f"lenscope: distributed: no launch joined within {seconds:g} s ({ranks}); start the ranks "
               "together with mlx.launch (LENSCOPE_LAUNCH_TIMEOUT sets the wait)\n").encode()
    done_r, done_w = os.pipe()
    child = os.fork()
    if child == 0:  # the watchdog: only os calls, nothing of MLX, and never back into lenscope
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # ctrl+c is for the process it watches
            os.close(done_w)
            ready, _, _ = select.select([done_r], [], [], seconds)
            if not ready and os.getppid() == parent:
                os.write(2, message)
                os.kill(parent, signal.SIGKILL)
        finally:
            os._exit(0)
    os.close(done_r)
    try:
        yield
    finally:
        os.close(done_w)  # the watchdog sees the pipe close and leaves
        try:
            os.kill(child, signal.SIGKILL)  # in case it has not yet
        except ProcessLookupError:
            pass
        os.waitpid(child, 0)


def read_jsonl(path: Path) -> list[Any]:
    """The lines of a JSON-lines file, read only (a killed writer's last line may be cut off:
    skipped; the file is left for its owner to repair); anything else wrong is one line."""
    return json_lines(path, f"'{path}'")


def read_shards(out: Path) -> list[Any]:
    """Every line of every rank's shard file in `out`."""
    return [item for path in sorted((out / SHARDS).glob("rank-*.jsonl")) for item in read_jsonl(path)]


def append_shard(path: Path, item: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(item, separators=(",", ":")) + "\n")
        f.flush()
        os.fsync(f.fileno())
