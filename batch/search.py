"""`lenscope search SEARCH.toml --out DIR`: tune a lens stack toward a score.

    model = "smollm2"                  # optional, like experiments
    prompts = ["Write about my day:", "Tell me about the weekend:"]
    max_tokens = 24                    # temperature, seed, chat, system: as in experiments
    strategy = "halving"               # grid | random | halving
    budget = 24                        # candidates (grid: at most this many of the grid)
    steps = 4                          # grid points per range
    rows = 8                           # rows per batch: the baseline + rows - 1 candidates

    [[lens]]                           # the stack; a list where one value goes is searched:
    kind = "steer"
    layers = [[8], [12], [16]]         #   a list of values for a list parameter: choices
    strength = [0.0, 0.3]              #   two numbers for a number: a range
    unit = "norm"                      #   three or more numbers: choices

    [[score]]                          # batch/scores.py
    kind = "words"
    list = "positive"

    [[constraint]]                     # a candidate must keep this part within a margin of the baseline
    part = "fluency"
    min_vs_baseline = -0.5

Instead of prompts, `conversations = "EXPERIMENT.toml"` (a path relative to the search file)
scores candidates on that experiment's conversations: every turn in keep mode (all rows
answer the baseline's transcript, so a turn measures the lens alone), each part averaged
over the turns, and each conversation's `check` adding the share of turns passed as the
part `check` (usable in a constraint). Marks and tracked concepts are the conversation's.

Candidates run as rows of one batched generation per prompt. Every (candidate, prompt)
result is appended to DIR/results.jsonl as it is made; a restarted search reads it back and
only runs what is missing (candidates and rounds are deterministic from the file and the
seed). At the end DIR/best.toml holds the best stack as a lens file and DIR/report.md the
ranking, the score against each parameter and the best and worst outputs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tomli_w

from lenscope.batch import experiment_file
from lenscope.batch.distributed import World, read_jsonl, read_shards
from lenscope.batch.experiment import conversation_turns
from lenscope.batch.outdir import MANIFEST, manifest, work_id
from lenscope.batch.scores import Score
from lenscope.chat import conversation as convs
from lenscope.chat import templates as chat
from lenscope.core import settings
from lenscope.core.engine import Request
from lenscope.core.records import SCHEMA_VERSION, SearchRecord, SearchSummary, problem
from lenscope.core.results import RowResult, finite_mean
from lenscope.errors import BadInput
from lenscope.lenses.base import Variant
from lenscope.lenses.params import Param
from lenscope.lenses.spec import KINDS, build_lens
from lenscope.reports.markdown import md_escape
from lenscope.storage import datafile

if TYPE_CHECKING:
    from lenscope.core.engine import Engine

TOP_KEYS = {"model", "prompts", "conversations", "strategy", "budget", "steps", "rows", "lens", "score", "constraint", "chat",
            "system", *settings.SETTINGS}
STRATEGIES = ("grid", "random", "halving")
SEARCH_PARAMS = {
    "strategy": Param("strategy", "choice", "grid", "how candidates are chosen", choices=STRATEGIES),
    "budget": Param("budget", "int", 16, "how many candidates to try", 1, 10000),
    "steps": Param("steps", "int", 4, "grid points per range", 2, 100),
    "rows": Param("rows", "int", 8, "rows per batch (the baseline included)", 2, 128),
}


@dataclass
class Dimension:
    """One searched parameter: `lens` index in the stack, the parameter, and its space."""

    lens: int
    name: str
    choices: list[Any] | None = None  # a list of values, or
    low: float | None = None  # a range
    high: float | None = None
    integer: bool = False

    @property
    def key(self) -> str:
        return f"{self.lens}.{self.name}"

    def grid(self, steps: int) -> list[Any]:
        if self.choices is not None:
            return list(self.choices)
        pts = np.linspace(self.low, self.high, steps)
        return sorted({round(p) for p in pts}) if self.integer else [round(float(p), 6) for p in pts]

    def sample(self, rng: random.Random) -> Any:
        if self.choices is not None:
            return rng.choice(self.choices)
        if self.integer:
            return rng.randint(int(self.low), int(self.high))
        return round(rng.uniform(self.low, self.high), 6)


@dataclass
class Search:
    path: str
    model: str | None
    prompts: list[str]
    settings: dict[str, Any]
    chat: bool
    system: str | None
    strategy: str
    budget: int
    steps: int
    rows: int
    stack: list[dict[str, Any]]  # lens tables with searched values taken out
    dimensions: list[Dimension]
    score: Score
    constraints: list[tuple[str, float]]  # (part kind or label, min value - baseline's)
    conversations: list[dict[str, Any]] = field(default_factory=list)  # instead of prompts (experiment_file's)
    definition: dict[str, Any] = field(default_factory=dict)  # the file's checked data: what the search is
    identity: str | None = None  # outdir.work_id(definition, model): its output folder is marked with it

    def candidate(self, values: dict[str, Any]) -> Variant:
        tables = [dict(t) for t in self.stack]
        for d in self.dimensions:
            tables[d.lens][d.name] = values[d.key]
        name = " ".join(f"{d.key.split('.', 1)[1] if len(self.stack) == 1 else d.key}={_show(values[d.key])}"
                        for d in self.dimensions) or "stack"
        return Variant(name, [build_lens(t, f"search '{self.path}' lens {i + 1}") for i, t in enumerate(tables)])

    def candidates(self, seed: int) -> list[dict[str, Any]]:
        """The candidates to start from, in a fixed order (a resumed search makes the same)."""
        if self.strategy == "grid":
            axes = [d.grid(self.steps) for d in self.dimensions]
            combos = itertools.islice(itertools.product(*axes), self.budget)  # lazily: a grid may be 10^12
            return [dict(zip([d.key for d in self.dimensions], combo)) for combo in combos]
        rng = random.Random(seed)
        out, seen = [], set()
        for _ in range(self.budget * 20):  # choices may hold fewer distinct candidates than the budget
            c = {d.key: d.sample(rng) for d in self.dimensions}
            k = _key(c)
            if k not in seen:
                seen.add(k)
                out.append(c)
            if len(out) == self.budget:
                break
        return out


def _show(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "|".join(_show(x) for x in v)
    return f"{v:g}" if isinstance(v, float) else str(v)


def _order(v: Any) -> tuple:
    """Numbers (and lists of them) in numeric order, anything else after, as text."""
    if isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) for x in v):
        return (0, tuple(v))
    return (0, (v,)) if isinstance(v, (int, float)) else (1, (str(v),))


def _key(values: dict[str, Any]) -> str:
    return json.dumps(values, sort_keys=True, default=list)


def _dimension(i: int, kind: str, param: Param, raw: Any, where: str) -> Dimension | None:
    """A searched value, or None for a plain one. Numbers: [lo, hi] is a range, 3+ values
    choices; list parameters: a list of lists is choices."""
    if not isinstance(raw, list):
        return None
    if param.type in ("ints", "strs"):
        if raw and all(isinstance(x, list) for x in raw):
            return Dimension(i, param.name, choices=[param.parse(x, where) for x in raw])
        return None
    if param.type in ("float", "int") and raw and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                      for x in raw):
        values = [param.parse(x, where) for x in raw]
        if len(values) == 2:
            lo, hi = sorted(values)
            return Dimension(i, param.name, low=lo, high=hi, integer=param.type == "int")
        return Dimension(i, param.name, choices=values)
    if param.type in ("choice", "str", "bool") and raw:
        return Dimension(i, param.name, choices=[param.parse(x, where) for x in raw])
    return None


def load(path: str | Path) -> Search:
    """The whole search file, checked without a model."""
    where = f"search '{path}'"
    data = datafile.read(path, where, "toml")
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise BadInput(f"{where}: unknown key '{min(unknown)}' (keys: {', '.join(sorted(TOP_KEYS))})")
    conversations = _conversations(data, path, where)
    conversations_file = Path(path).parent / str(data.get("conversations"))
    prompts = data.get("prompts") if not conversations else [c["name"] for c in conversations]
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise BadInput(f"{where}: 'prompts' must be a non-empty list of texts (or 'conversations' an experiment "
                       "file with turns)")
    model = data.get("model")
    if model is not None and not (isinstance(model, str) and model.strip()):
        raise BadInput(f"{where}: 'model' must be a model folder, hub id or name (text)")
    values = {k: settings.check(k, data[k], where) if k in data else settings.defaults()[k] for k in settings.SETTINGS}
    opts = {k: p.parse(data[k], where) if k in data else p.default for k, p in SEARCH_PARAMS.items()}
    use_chat, system = chat.check_options(data.get("chat", False), data.get("system"), where)
    tables = data.get("lens")
    if isinstance(tables, dict):
        tables = [tables]
    if not isinstance(tables, list) or not tables:
        raise BadInput(f"{where}: needs a lens stack ([[lens]] tables)")
    stack, dims = [], []
    for i, table in enumerate(tables):
        lwhere = f"{where} lens {i + 1}"
        if not isinstance(table, dict) or table.get("kind") not in KINDS:
            raise BadInput(f"{lwhere}: a lens table with a known 'kind' (known: {', '.join(KINDS)})")
        params = {p.name: p for p in KINDS[table["kind"]].params}
        plain = {}
        for k, raw in table.items():
            d = _dimension(i, table["kind"], params[k], raw, lwhere) if k in params else None
            if d is None:
                plain[k] = raw
            else:
                dims.append(d)
        stack.append(plain)
    if "score" not in data:
        raise BadInput(f"{where}: needs a score ([[score]] tables)")
    score = Score.from_data(data["score"], where)
    constraints = []
    for j, c in enumerate(data.get("constraint", []) if isinstance(data.get("constraint", []), list) else [None]):
        cwhere = f"{where} constraint {j + 1}"
        if not isinstance(c, dict) or set(c) != {"part", "min_vs_baseline"} or not isinstance(c["part"], str):
            raise BadInput(f"{cwhere}: a table with 'part' (a score part's kind) and 'min_vs_baseline' (a number)")
        if not any(c["part"] in (p.kind, p.label()) for p in score.parts) and not (conversations and c["part"] == CHECK):
            raise BadInput(f"{cwhere}: part '{c['part']}' is not in the score")
        constraints.append((c["part"], Param("min_vs_baseline", "float", 0.0, "").parse(c["min_vs_baseline"], cwhere)))
    if conversations:  # what the search is includes the conversations themselves, not only their file's name
        data = {**data, "conversations": {"path": data["conversations"],
                                          "sha256": hashlib.sha256(conversations_file.read_bytes()).hexdigest()}}
    search = Search(str(path), model, prompts, values, use_chat, system, opts["strategy"], opts["budget"],
                    opts["steps"], opts["rows"], stack, dims, score, constraints, conversations, data)
    search.candidate(search.candidates(values["seed"])[0] if dims else {})  # every lens value checked now
    return search


def _conversations(data: dict[str, Any], path: str | Path, where: str) -> list[dict[str, Any]]:
    """`conversations = "EXPERIMENT.toml"` (relative to the search file): its comparisons with
    turns, each a unit the candidates are scored on, in keep mode; [] without the key."""
    ref = data.get("conversations")
    if ref is None:
        return []
    if "prompts" in data:
        raise BadInput(f"{where}: give 'prompts' or 'conversations', not both")
    if "chat" in data or "system" in data:
        raise BadInput(f"{where}: with 'conversations' the chat template is always used and each conversation's "
                       "'system' is its own: 'chat' and 'system' do not apply")
    if not isinstance(ref, str) or not ref.strip():
        raise BadInput(f"{where}: 'conversations' must name an experiment file with conversations (turns)")
    exp = experiment_file.load(Path(path).parent / ref)
    convs = [c for c in exp["comparisons"] if "turns" in c]
    if not convs:
        raise BadInput(f"{where}: '{ref}' holds no conversation (a comparison with 'turns')")
    return convs


# -- running ----------------------------------------------------------------------------


def identity(search: Search, model: str) -> str:
    """What a search is: its file's checked data and the model; not its budget, so raising it
    continues the same search in the same folder."""
    return work_id({k: v for k, v in search.definition.items() if k not in ("budget", "model")}, model)


def _is_record(rec: Any) -> bool:
    """A search record as `_record` writes it (docs/json/search-record.schema.json): a line
    that is not one is never scored or ranked."""
    return problem(rec, SearchRecord) is None


class Results:
    """DIR/results.jsonl: one line per (candidate, prompt), appended as they are made."""

    def __init__(self, path: Path | None):
        """`path` None: held in memory only (a tensor-parallel process other than 0)."""
        self.path = path
        self.done: dict[tuple[str, int], SearchRecord] = {}
        if path is None or not path.exists():
            return
        lines = datafile.read_text(path, f"search results '{path}'", datafile.LINES_LIMIT).splitlines(keepends=True)
        for n, line in enumerate(lines):
            try:
                rec = json.loads(line)
            except (ValueError, RecursionError):
                if n < len(lines) - 1:
                    raise BadInput(f"{path}: line {n + 1} is not JSON") from None
                # the last line, cut off by a kill: dropped from the file, and made again
                path.write_text("".join(lines[:-1]), encoding="utf-8")
                return
            if not _is_record(rec):
                raise BadInput(f"{path}: line {n + 1} is not a search result")
            self.done[rec["candidate"], rec["prompt"]] = rec
        if lines and not lines[-1].endswith("\n"):  # whole, but killed before its newline
            with path.open("a", encoding="utf-8") as f:
                f.write("\n")

    def add(self, rec: dict[str, Any], write: bool = True) -> None:
        self.done[rec["candidate"], rec["prompt"]] = rec
        if write and self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(datafile.dumps(rec) + "\n")
                f.flush()

    def take(self, recs: list[SearchRecord], write: bool) -> None:
        """Records another rank (or a killed run's shard) made: the ones not known yet."""
        for rec in recs:
            if _is_record(rec) and (rec["candidate"], rec["prompt"]) not in self.done:
                self.add(rec, write)


BASELINE = "baseline"
CHECK = "check"  # a conversation search's part: the share of turns whose reply passed the conversation's check


def run(engine: Engine, search: Search, out: Path, progress: Callable[[int, int], None] = lambda done, total: None,
        world=None, known: Results | None = None) -> dict[str, Any]:
    """Run (or resume) the search; returns the summary the report is written from.

    Under `mlx.launch` (`world`, batch/distributed.py) the batches of each prompt are shared
    out, one per rank per round; after each round every rank knows every score (halving
    ranks them) and rank 0 appends them to DIR/results.jsonl in the order one process
    would. The other ranks keep theirs in DIR/shards/rank-R.jsonl, read again on resume.
    On a model split across the processes (`world.tensor`) every process runs every batch
    and rank 0 alone writes."""
    world = world or World()
    search.score.prepare(engine)  # a judge model that cannot load: before any candidate runs
    out.mkdir(parents=True, exist_ok=True)
    if world.leader and not (out / MANIFEST).exists():  # the folder is this search's from now on
        (out / MANIFEST).write_text(manifest("search", search.identity, search.path), encoding="utf-8")
    if world.leader and known is not None:  # DIR/results.jsonl as the caller read it, before the model loaded
        results = known
    elif world.tensor:  # every process scores every candidate; rank 0 writes
        results = Results(out / "results.jsonl" if world.leader else None)
    else:
        results = Results(out / "results.jsonl" if world.leader else world.shard_file(out))
    if world.tensor:  # what rank 0 finished before: every process goes on from there
        results.take(world.gather(list(results.done.values())), write=False)
    elif world.size > 1:  # what any rank finished before (its shard, the merged file), known to all
        results.take(read_shards(out), write=world.leader)
        if not world.leader and (out / "results.jsonl").exists():  # rank 0's file: read, never repaired here
            results.take(read_jsonl(out / "results.jsonl"), write=False)
        results.take(world.gather(list(results.done.values())), write=world.leader)
    seed = search.settings["seed"]
    pool = search.candidates(seed) if search.dimensions else [{}]
    prompt_ids = list(range(len(search.prompts)))
    if search.strategy == "halving":
        rounds = _halving_rounds(len(pool), len(prompt_ids))
    else:
        rounds = [(len(pool), len(prompt_ids))]
    total = sum(n * p for n, p in rounds)
    done_count = [0]
    alive = pool
    for keep, n_prompts in rounds:
        alive = alive[:keep]
        for p in prompt_ids[:n_prompts]:
            _evaluate(engine, search, results, alive, p, world)
            done_count[0] += len(alive)
            progress(done_count[0], total)
        alive = _rank(search, results, alive, prompt_ids[:n_prompts])
    return summarise(search, results, pool)


def _halving_rounds(n: int, prompts: int) -> list[tuple[int, int]]:
    """Successive halving: all candidates on one prompt, then the better half on twice the
    prompts, ..., until one candidate or every prompt is in use."""
    rounds, keep, used = [], n, 1
    while True:
        rounds.append((keep, min(used, prompts)))
        if keep <= 1 or used >= prompts:
            break
        keep, used = max(1, math.ceil(keep / 2)), used * 2
    return rounds


def _evaluate(engine: Engine, search: Search, results: Results, candidates: list[dict[str, Any]], p: int, world) -> None:
    """Every candidate not yet scored on prompt p, as rows of batches (baseline first); with
    several ranks, one batch per rank per round, every rank learning every record."""
    todo = [c for c in candidates if (_key(c), p) not in results.done]
    need_baseline = (BASELINE, p) not in results.done
    if not todo and not need_baseline:
        return
    size = search.rows - 1
    batches = [todo[start : start + size] for start in range(0, max(len(todo), 1), size)]
    for b in world.rounds(list(range(len(batches)))):
        made = []
        if b is not None:
            batch = batches[b]
            variants = [search.candidate(c) for c in batch]
            rows, scored = (_run_conversation if search.conversations else _run_prompt)(engine, search, variants, p)
            if need_baseline and b == 0:  # the baseline row of the first batch stands for all
                made.append(_record(BASELINE, {}, p, rows[0], scored[0]))
            made += [_record(_key(c), c, p, row, sc) for c, row, sc in zip(batch, rows[1:], scored[1:])]
            if world.tensor:  # every process made the same batch: rank 0's scores rank it everywhere
                made = world.gather(made)  # (a score can read a clock: a regex's timeout)
            for rec in made:  # this rank's own, in its file at once (a kill loses none of them)
                results.add(rec)
        if not world.tensor:
            results.take(world.gather(made), write=world.leader)


def _run_prompt(engine: Engine, search: Search, variants: list[Variant], p: int) -> tuple[list[RowResult], list]:
    """Prompt p with the baseline and `variants` as rows: each row's result and score."""
    prompt, _ = chat.model_prompt(engine.tokenizer, search.prompts[p], search.chat, search.system)
    s = search.settings
    comparison = engine.compare(Request(prompt, variants, [], s["max_tokens"], s["temperature"], s["seed"]))
    result = comparison.run()
    return result.rows, search.score.evaluate(engine, result, comparison.variants)


def _run_conversation(engine: Engine, search: Search, variants: list[Variant], p: int) -> tuple[list[RowResult], list]:
    """Conversation p, turn by turn in keep mode (every row answers the baseline's transcript,
    so each turn measures the lens alone): per row its last reply, and its score and parts
    averaged over the turns, with the conversation's check as the part `check` (the share of
    turns passed, added to the score)."""
    s = search.settings
    per_turn = []
    for _, record in conversation_turns(engine, search.conversations[p], variants, mode="keep", keep=0,
                                        max_tokens=s["max_tokens"], temperature=s["temperature"], seed=s["seed"]):
        result = convs.turn_result(record)
        scored = search.score.evaluate(engine, result, [Variant(BASELINE), *variants])
        for r, row in enumerate(record["rows"]):
            if row["passed"] is not None:
                scored[r]["parts"][CHECK] = float(row["passed"])
                scored[r]["score"] += float(row["passed"])
        per_turn.append(scored)
    averaged = [{"score": _mean_or_lowest([t[r]["score"] for t in per_turn]),
                 "parts": {k: _mean_or_lowest([t[r]["parts"][k] for t in per_turn]) for k in per_turn[0][r]["parts"]}}
                for r in range(len(variants) + 1)]
    return result.rows, averaged


def _record(key: str, values: dict[str, Any], p: int, row: RowResult, scored: dict[str, Any]) -> SearchRecord:
    return {"schema_version": SCHEMA_VERSION, "candidate": key, "values": values, "prompt": p, "score": scored["score"], "parts": scored["parts"],
            "text": row.text}


def _mean(recs: list[SearchRecord], field: str, label: str | None = None) -> float:
    """Over records: the mean score (or score part); -inf with none, so it ranks last."""
    return _mean_or_lowest(r["parts"].get(label) if label else r[field] for r in recs)


def _mean_or_lowest(values) -> float:
    """The finite values' mean; -inf when there are none, so it ranks last."""
    m = finite_mean(values)
    return float("-inf") if m is None else m


def _feasible(search: Search, recs: list[SearchRecord], base: list[SearchRecord]) -> bool:
    for part, margin in search.constraints:
        label = next((p.label() for p in search.score.parts if part in (p.kind, p.label())), part)  # or `check`
        if _mean(recs, "", label) < _mean(base, "", label) + margin:
            return False
    return True


def _rank(search: Search, results: Results, candidates: list[dict[str, Any]], prompts: list[int]) -> list[dict]:
    """Feasible candidates first, then by mean score over `prompts`, best first; ties keep order."""
    base = [results.done[BASELINE, p] for p in prompts]

    def order(c: dict[str, Any]) -> tuple[bool, float]:
        recs = [results.done[_key(c), p] for p in prompts]
        return (not _feasible(search, recs, base), -_mean(recs, "score"))

    return sorted(candidates, key=order)


def summarise(search: Search, results: Results, pool: list[dict[str, Any]]) -> SearchSummary:
    """Each candidate's mean over the prompts it ran on, ranked; the baseline's for reference."""
    rows = []
    labels = [p.label() for p in search.score.parts] + ([CHECK] if search.conversations else [])
    for c in pool:
        recs = [r for (k, _), r in results.done.items() if k == _key(c)]
        if not recs:
            continue
        prompts = sorted(r["prompt"] for r in recs)
        base = [results.done[BASELINE, p] for p in prompts if (BASELINE, p) in results.done]
        rows.append({"values": c, "name": search.candidate(c).name, "prompts": len(prompts),
                     "score": _mean(recs, "score"), "parts": {lb: _mean(recs, "", lb) for lb in labels},
                     "feasible": _feasible(search, recs, base), "records": recs})
    rows.sort(key=lambda r: (not r["feasible"], -r["prompts"], -r["score"]))
    base = [r for (k, _), r in results.done.items() if k == BASELINE]
    baseline = {"score": _mean(base, "score"), "parts": {lb: _mean(base, "", lb) for lb in labels},
                "prompts": len(base), "records": base}
    return {"candidates": rows, "baseline": baseline, "dimensions": [d.key for d in search.dimensions]}


def best_lens_file(search: Search, summary: SearchSummary) -> str:
    best = summary["candidates"][0]
    variant = search.candidate(best["values"])
    data = {"variant": [{"name": variant.name, "lens": [lens.normalized() for lens in variant.lenses]}]}
    header = (f"# best of {len(summary['candidates'])} candidates from {search.path}: score {best['score']:.4g} "
              f"on {best['prompts']} prompt(s) (baseline {summary['baseline']['score']:.4g})\n")
    return header + tomli_w.dumps(json.loads(datafile.dumps(data)))


def report(search: Search, summary: SearchSummary) -> str:
    """Ranking, the score against each searched parameter, and the best and worst outputs
    (so a person can check what the score, or the judge, rewarded)."""
    labels = list(summary["baseline"]["parts"])  # the score's parts, and `check` in a conversation search
    base = summary["baseline"]
    lines = [f"# search: {md_escape(search.path)}", "",
             f"{search.strategy}, {len(summary['candidates'])} candidates, {len(search.prompts)} "
             f"{'conversations' if search.conversations else 'prompts'}; score = "
             + " + ".join([f"{p.weight:g} x {md_escape(p.label())}" for p in search.score.parts]
                          + (["1 x check (share of turns passed)"] if search.conversations else [])), ""]
    if search.constraints:
        lines += ["constraints: " + ", ".join(f"{md_escape(p)} >= baseline {m:+g}" for p, m in search.constraints), ""]
    lines += ["| rank | candidate | prompts | score | " + " | ".join(map(md_escape, labels)) + " | feasible |",
              "|---|---|---|---|" + "---|" * len(labels) + "---|",
              f"| - | baseline | {base['prompts']} | {base['score']:.4g} | "
              + " | ".join(f"{base['parts'][lb]:.4g}" for lb in labels) + " | - |"]
    for i, c in enumerate(summary["candidates"]):
        lines.append(f"| {i + 1} | {md_escape(c['name'])} | {c['prompts']} | {c['score']:.4g} | "
                     + " | ".join(f"{c['parts'][lb]:.4g}" for lb in labels) + f" | {'yes' if c['feasible'] else 'no'} |")
    for d in search.dimensions:
        by: dict[str, list[float]] = {}
        for c in sorted(summary["candidates"], key=lambda c: _order(c["values"][d.key])):
            by.setdefault(_show(c["values"][d.key]), []).append(c["score"])
        lines += ["", f"## score against {md_escape(d.key)}", "", "| value | candidates | mean score | best |", "|---|---|---|---|"]
        for value, scores in by.items():
            lines.append(f"| {md_escape(value)} | {len(scores)} | {np.mean(scores):.4g} | {max(scores):.4g} |")
    ranked = summary["candidates"]
    for title, cands in (("best", ranked[:2]), ("worst", ranked[-2:][::-1] if len(ranked) > 2 else [])):
        for c in cands:
            lines += ["", f"## {title}: {md_escape(c['name'])} (score {c['score']:.4g})", ""]
            for rec in sorted(c["records"], key=lambda r: r["prompt"])[:3]:
                lines.append(f"- prompt {rec['prompt'] + 1} ({rec['score']:.3g}): {md_escape(rec['text'])}")
    return "\n".join(lines) + "\n"
