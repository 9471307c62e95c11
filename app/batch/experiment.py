"""`lenscope run EXPERIMENT.toml --out DIR`: a batch of comparisons and their report.

An experiment file holds optional top-level `model` and `[defaults]`, and one
`[[comparison]]` table per comparison with the options of `generate`:

    [defaults]
    max_tokens = 24
    [[comparison]]
    name = "recall"
    prompt = "the key is blue. ... answer: the key is"
    mark = ["blue"]
    lens = ["emphasis:strength=3", "lenses/focus.toml"]   # files relative to this file

Writes DIR/results.jsonl (one `generate --json` object per line, plus "comparison"),
DIR/report.md, DIR/report.html and DIR/heatmaps/*.svg (with capture_attention).

Nothing is written until everything is checked: `load` checks the whole file (every
comparison, lens spec and setting) without a model, `check_out` the output folder, and
`run` every comparison against the model (marks, layers, sizes) before generating. A run
holds DIR/.lenscope.lock (a second run into DIR is refused, naming the first's pid).
After each comparison it writes its heatmaps and the three reports into a temp folder
inside DIR and moves them in with os.replace: a file of the same name is replaced whole,
other files in DIR are left alone. A run that fails or is killed leaves the comparisons it
finished (a failure before the first leaves DIR as it was); `--resume` keeps them.
"""

from __future__ import annotations

import fcntl
import html
import json
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from lenscope.app.chat import templates as chat
from lenscope.app.core import settings
from lenscope.app.errors import BadInput
from lenscope.app.io import datafile

TOP_KEYS = {"model", "defaults", "comparison"}
KEYS = {"name", "prompt", "mark", "mark_tokens", "lens", "chat", "system", *settings.SETTINGS}
TURN_KEYS = {"turns", "track", "check", "mode", "keep"}  # a conversation (app/conversation.py)
REPORTS = ("results.jsonl", "report.md", "report.html")
LOCK = ".lenscope.lock"
TEMP_PREFIX = ".lenscope-run-"


def load(path: str | Path) -> dict[str, Any]:
    """The whole experiment, checked: nothing needs a model or writes a file."""

    where = f"experiment '{path}'"
    data = datafile.read(path, where, "toml")
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise BadInput(f"{where}: unknown key '{min(unknown)}' (keys: {', '.join(sorted(TOP_KEYS))})")
    model = data.get("model")
    if model is not None and not (isinstance(model, str) and model.strip()):
        raise BadInput(f"{where}: 'model' must be a model folder or hub id (text)")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise BadInput(f"{where}: 'defaults' must be a table ([defaults])")
    comparisons = data.get("comparison")
    if not isinstance(comparisons, list) or not comparisons:
        raise BadInput(f"{where}: needs at least one [[comparison]] table")
    out = []
    for i, c in enumerate(comparisons):
        cwhere = f"{where} comparison {i + 1}"
        if not isinstance(c, dict):
            raise BadInput(f"{cwhere}: must be a table ([[comparison]])")
        merged = {**defaults, **c}
        unknown = set(merged) - KEYS - TURN_KEYS
        if unknown:
            raise BadInput(f"{cwhere}: unknown key '{min(unknown)}' (keys: {', '.join(sorted(KEYS | TURN_KEYS))})")
        name = merged.get("name", f"comparison {i + 1}")
        if not isinstance(name, str) or not name.strip():
            raise BadInput(f"{cwhere}: 'name' must be non-empty text")
        if "turns" in c:
            out.append(_conversation(path, name, merged, cwhere))
            continue
        extra = set(merged) & TURN_KEYS - set(defaults)
        if extra:
            raise BadInput(f"{cwhere}: '{min(extra)}' is for conversations (a comparison with 'turns')")
        prompt = merged.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise BadInput(f"{cwhere}: 'prompt' must be non-empty text")
        marks = _texts(merged.get("mark", []), "mark", cwhere)
        if any(not m for m in marks):
            raise BadInput(f"{cwhere}: 'mark' texts must not be empty")
        mark_tokens = merged.get("mark_tokens", [])
        mark_tokens = [mark_tokens] if _is_int(mark_tokens) else mark_tokens
        if not isinstance(mark_tokens, list) or not all(_is_int(t) for t in mark_tokens):
            raise BadInput(f"{cwhere}: 'mark_tokens' must be a list of token indices (integers)")
        specs, variants = _lenses(path, merged, cwhere)
        use_chat, system = chat.check_options(merged.get("chat", False), merged.get("system"), cwhere)
        out.append({"name": name, "prompt": prompt, "mark": marks, "mark_tokens": mark_tokens, "lens": specs,
                    "variants": variants, "chat": use_chat, "system": system, **settings.check_all(merged, cwhere)})
    return {"model": model, "comparisons": out}


def _conversation(path: str | Path, name: str, merged: dict[str, Any], where: str) -> dict[str, Any]:
    """A comparison with `turns`: a conversation, each user turn answered by every row.

        turns = ["Always answer in capital letters. What is 2+2?", "Name a fruit.", ...]
        mark = ["capital letters"]      # marked where they occur in the system and user messages
        track = ["atexit"]              # tracked: every occurrence, the model's replies included
        check = {kind = "regex", pattern = "^[^a-z]*$"}   # a score (app/scores.py): > 0 passes
        mode = "keep"                   # or "branches"; keep = 0: the row whose reply is kept
    """
    from lenscope.app.batch.scores import Score
    from lenscope.app.chat.conversation import MODES

    turns = _texts(merged["turns"], "turns", where)
    if not turns or any(not t.strip() for t in turns):
        raise BadInput(f"{where}: 'turns' must be a non-empty list of user messages (non-empty texts)")
    if "prompt" in merged or "mark_tokens" in merged:
        raise BadInput(f"{where}: a conversation takes 'turns', not 'prompt' or 'mark_tokens'")
    marks = _texts(merged.get("mark", []), "mark", where)
    track = _texts(merged.get("track", []), "track", where)
    if any(not m for m in marks):
        raise BadInput(f"{where}: 'mark' texts must not be empty")
    if any(not t.split() for t in track):
        raise BadInput(f"{where}: 'track' texts must not be empty")
    specs, variants = _lenses(path, merged, where)
    mode = merged.get("mode", "keep")
    if mode not in MODES:
        raise BadInput(f"{where}: 'mode' must be one of {', '.join(MODES)}")
    keep = merged.get("keep", 0)
    if not _is_int(keep) or not 0 <= keep <= len(variants):
        raise BadInput(f"{where}: 'keep' must be a row number, 0 (the baseline) to {len(variants)}")
    system = merged.get("system")
    if system is not None and not isinstance(system, str):
        raise BadInput(f"{where}: 'system' must be text")
    if merged.get("chat", True) is not True:
        raise BadInput(f"{where}: a conversation always uses the chat template ('chat' cannot be false)")
    check = Score.from_data(merged["check"], where) if "check" in merged else None
    return {"name": name, "turns": turns, "mark": marks, "track": track, "lens": specs, "variants": variants,
            "mode": mode, "keep": keep, "system": system, "check": check, "chat": True,
            **settings.check_all(merged, where)}


def _lenses(path: str | Path, merged: dict[str, Any], where: str) -> tuple[list[str], list]:
    """A comparison's `lens` specs (files relative to the experiment) and the variants they make."""
    from lenscope.lenses.spec import parse

    specs = [str(Path(path).parent / s) if s.endswith((".toml", ".json")) else s
             for s in _texts(merged.get("lens", []), "lens", where)]
    try:
        return specs, [v for s in specs for v in parse(s)]
    except BadInput as exc:
        raise BadInput(f"{where}: {exc}") from None


def _texts(value: Any, key: str, where: str) -> list[str]:
    """A text or a list of texts."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise BadInput(f"{where}: '{key}' must be text or a list of texts")
    return values


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def outputs(experiment: dict[str, Any]) -> list[str]:
    """Every file a run of `experiment` writes, relative to its folder."""
    from lenscope.app.reports.conversation import CHARTS

    comparisons = experiment["comparisons"]
    svgs = [_svg_name(i, r) for i, c in enumerate(comparisons) if c["capture_attention"] and "turns" not in c
            for r in range(1 + len(c["variants"]))]
    charts = list(CHARTS) if sum("turns" in c for c in comparisons) >= 2 else []  # over several conversations
    return [*svgs, *charts, *REPORTS]


def _svg_name(i: int, r: int) -> str:
    return f"heatmaps/{i + 1:03d}-{r}.svg"


def check_out(out: str, names: list[str]) -> Path:
    """Refuse (BadInput) an output folder that cannot take `names`, before the model loads."""
    where = f"--out '{out}'"
    if not out.strip():
        raise BadInput("--out: empty (name a folder)")
    p = Path(out).expanduser()
    try:
        if p.is_symlink() and not p.exists():
            raise BadInput(f"{where}: is a broken symlink")
        if p.exists():
            if not p.is_dir():
                raise BadInput(f"{where}: exists and is not a folder")
            if not os.access(p, os.W_OK | os.X_OK):
                raise BadInput(f"{where}: the folder is not writable")
            for name in [LOCK, *names]:
                q = p / name
                if q.is_dir() or (q.parent != p and q.parent.exists() and not q.parent.is_dir()):
                    raise BadInput(f"{where}: '{name}' in it is in the way (a folder where a file goes, or "
                                   "a file where a folder goes)")
        else:
            ancestor = p.parent
            while not ancestor.exists() and ancestor != ancestor.parent:
                ancestor = ancestor.parent
            if not ancestor.is_dir():
                raise BadInput(f"{where}: '{ancestor}' is not a folder")
            if not os.access(ancestor, os.W_OK | os.X_OK):
                raise BadInput(f"{where}: cannot create it, '{ancestor}' is not writable")
    except (OSError, ValueError) as exc:
        raise BadInput(f"{where}: {exc}") from None
    return p


def run(engine, experiment: dict[str, Any], out_dir: Path, progress: Callable[[str], None] = print,
        meta: dict[str, Any] | None = None, resume: bool = False, world=None) -> list[dict]:
    """Run every comparison; after each one the reports are rewritten (each file replaced
    whole), so an interrupted run leaves its finished comparisons, and `resume` keeps those
    (matched by position and name in DIR/results.jsonl) and runs the rest.
    `meta`: how the run was made (command, version), shown in the HTML report.

    Under `mlx.launch` (`world`, app/distributed.py) each rank runs its share, one comparison
    per round; after each round rank 0 has every finished record and writes the reports, in
    the order one process would. Each rank also keeps its own in DIR/shards/rank-R.jsonl,
    which `resume` reads too (a rank that died)."""
    from lenscope.app.batch.distributed import World, append_shard, read_shards

    world = world or World()
    say = progress if world.leader else (lambda m: None)
    out = Path(out_dir)
    names = [c["name"] for c in experiment["comparisons"]]
    done = finished(out, names) if resume else {}
    if resume:
        for item in read_shards(out):
            if _shard_item(item, names):
                done.setdefault(item["index"], item["record"])
    if world.size > 1:  # the ranks agree on what is left: each read its own disk
        for item in world.gather([{"index": i, "record": r} for i, r in sorted(done.items())]):
            done.setdefault(item["index"], item["record"])
    todo = [i for i in range(len(names)) if i not in done]
    mine = world.rounds(todo)
    comparisons = _prepare(engine, experiment, say, skip=set(range(len(names))) - set(mine))
    results: list[dict | None] = [done.get(i) for i in range(len(names))]
    if done:
        say(f"resuming: {len(done)} of {len(names)} comparison(s) already in {out / 'results.jsonl'}")
    if world.size > 1:
        say(f"{world.size} processes: {len(todo)} comparison(s) in {len(mine)} round(s)")
        if not resume and world.leader:
            shutil.rmtree(out / "shards", ignore_errors=True)  # an earlier run's
        world.gather([])  # nobody writes a shard before the old ones are gone
    t0 = time.perf_counter()
    with _output_folder(out) if world.leader else _no_folder() as tmp:
        for k, i in enumerate(mine):
            left = "" if k == 0 else f" · {_clock(time.perf_counter() - t0)} so far, ~" \
                f"{_clock((time.perf_counter() - t0) / k * (len(mine) - k))} left"
            if world.size == 1:
                say(f"[{i + 1}/{len(names)}] {names[i]}{left}")
            record = None if i is None else _run_one(engine, experiment["comparisons"][i], comparisons[i])
            if i is not None:
                comparisons[i] = None  # its prepared lenses (weight deltas) can go
                if world.size > 1:
                    append_shard(world.shard_file(out), {"index": i, "comparison": names[i], "record": record})
            got = world.gather([{"index": i, "record": record}] if i is not None else [])
            for item in got:
                results[item["index"]] = item["record"]
            if world.size > 1:
                finished_now = sum(r is not None for r in results)
                say(f"[{finished_now}/{len(names)}] {', '.join(names[item['index']] for item in got)}{left}")
            if world.leader:
                for item in got:
                    _write_heatmaps(tmp, item["index"], item["record"])
                _write_reports(tmp, out, results, meta)
    if world.size > 1:
        say(f"{world.gathers} exchange(s) between the {world.size} processes: {world.gather_s:.2f} s in all "
            "(waiting for the slowest rank of each round included)")
    return [r for r in results if r is not None]


def _shard_item(item: Any, names: list[str]) -> bool:
    """A shard line of this experiment: its index holds a comparison of that name."""
    return isinstance(item, dict) and isinstance(item.get("index"), int) and 0 <= item["index"] < len(names) \
        and names[item["index"]] == item.get("comparison") and isinstance(item.get("record"), dict)


@contextmanager
def _no_folder() -> Iterator[None]:
    yield None


def _run_one(engine, c: dict[str, Any], comparison) -> dict[str, Any]:
    """One comparison (or conversation) run, as its line of results.jsonl."""
    from lenscope.app.core.capture import capture_row
    from lenscope.app.reports.html import attention_row

    if "turns" in c:
        return _run_conversation(engine, c)
    result = comparison.run()
    record = {"comparison": c["name"], **result.to_json()}
    if c["capture_attention"]:
        rows = []
        for r, row in enumerate(result.rows):
            probs = capture_row(engine, result, comparison.variants, r, hidden=False).attention
            rows.append(attention_row(row.name, result.prompt_tokens + row.tokens, probs, heads=c["report_heads"]))
        # as `generate --capture-attention`: the HTML report colours text and draws heatmaps from it
        record["attention"] = {"layers": engine.n_layers, "heads": int(probs.shape[1]), "rows": rows}
    return record


def _write_heatmaps(tmp: Path, i: int, record: dict[str, Any]) -> None:
    """A comparison's heatmaps (mean over layers and heads), drawn from its record: whichever
    process ran it, the files are the same."""
    attention = record.get("attention")
    if not attention:
        return
    svgs = []
    for r, row in enumerate(attention["rows"]):
        write_svg(tmp / _svg_name(i, r), np.array(row["mean"]), row["tokens"], record["marked_token_indices"],
                  f"{record['comparison']} · {row['name']} · mean over layers and heads")
        svgs.append(_svg_name(i, r))
    record["heatmaps"] = svgs


def _write_reports(tmp: Path, out_dir: Path, results: list[dict | None], meta: dict[str, Any] | None) -> None:
    from functools import partial

    from lenscope.app.reports import conversation as cr
    from lenscope.app.reports.html import render
    from lenscope.app.reports.svg import line_chart

    so_far = [r for r in results if r is not None]
    summary = cr.summary(so_far)
    if summary["conversations"] >= 2:
        for name, svg in cr.summary_charts(summary, partial(line_chart, x_label="turn", first=1, width=420,
                                                             height=160)).items():
            (tmp / name).write_text(svg, encoding="utf-8")
    (tmp / "results.jsonl").write_text("".join(datafile.dumps(r) + "\n" for r in so_far), encoding="utf-8")
    (tmp / "report.md").write_text(markdown(so_far), encoding="utf-8")
    (tmp / "report.html").write_text(render(so_far, meta or {}), encoding="utf-8")
    _publish(tmp, Path(out_dir))


def _run_conversation(engine, c: dict[str, Any]) -> dict[str, Any]:
    """Every turn of a conversation comparison; its record holds the whole conversation."""
    from lenscope.app.chat import conversation as convs

    conv = convs.Conversation.start(c["system"], c["mode"], c["keep"])
    conv.marks += convs.text_marks(conv.messages, c["mark"], ("system",))
    conv.concepts = list(c["track"])
    for user in c["turns"]:
        try:
            convs.run_turn(engine, conv, user, c["variants"], max_tokens=c["max_tokens"],
                           temperature=c["temperature"], seed=c["seed"], mark=c["mark"], check=c["check"])
        except BadInput as exc:
            raise BadInput(f"comparison '{c['name']}' turn {len(conv.turns) + 1}: {exc}") from None
    return convs.record(c["name"], engine, conv, c["lens"])


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"


def finished(out: Path, names: list[str]) -> dict[int, dict]:
    """The comparisons an earlier run of this experiment finished, by index: the records of
    DIR/results.jsonl whose name is the experiment's at that position."""
    path = out / "results.jsonl"
    if not path.exists():
        return {}
    done = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
            i = names.index(rec["comparison"])
        except (ValueError, KeyError, TypeError):
            raise BadInput(f"--resume: {path} holds a line that is not a comparison of this experiment") from None
        done[i] = rec
    return done


def _prepare(engine, experiment: dict[str, Any], progress: Callable[[str], None], skip: set[int] = frozenset()) -> list:
    """Every comparison checked against the model and prepared, before anything runs
    (those in `skip`, finished by an earlier run, are not)."""
    from lenscope.app.core.engine import Request

    comparisons, warnings = [], []
    for i, c in enumerate(experiment["comparisons"]):
        if i in skip:
            comparisons.append(None)
            continue
        if "turns" in c:  # its prompts depend on its replies: check what can be checked now
            _check_conversation(engine, c)
            comparisons.append(None)
            continue
        try:
            # in chat mode the model reads its template; marks are found in the user's text only
            prompt, region = chat.model_prompt(engine.tokenizer, c["prompt"], c["chat"], c["system"])
            ids = engine.encode(prompt)
            marks = set(engine.marks_from_text(prompt, ids, c["mark"], region)) if c["mark"] else set()
            marks |= set(engine.check_marks(c["mark_tokens"], len(ids)))
            request = Request(prompt, c["variants"], sorted(marks), c["max_tokens"], c["temperature"], c["seed"])
            comparison = engine.compare(request, capture=c["capture_attention"])
        except BadInput as exc:
            raise BadInput(f"comparison '{c['name']}': {exc}") from None
        comparisons.append(comparison)
        warnings += [f"comparison '{c['name']}': warning: {w}" for w in comparison.warnings]
    for w in warnings:  # only once all passed: a failing run prints its error line alone
        progress(w)
    return comparisons


def _check_conversation(engine, c: dict[str, Any]) -> None:
    """The first turn templates, tokenizes and prepares; each `mark` text occurs somewhere."""
    from lenscope.app.chat import conversation as convs
    from lenscope.app.core.engine import Request

    try:
        conv = convs.Conversation.start(c["system"], c["mode"], c["keep"])
        lay = convs.layout(engine, [*conv.messages, convs.Message("user", c["turns"][0])])
        every = "\n".join([c["system"] or "", *c["turns"]])
        missing = [m for m in c["mark"] if m not in every]
        if missing:
            raise BadInput(f"mark '{missing[0]}': occurs in no system or user message")
        engine.compare(Request(lay.text, c["variants"], [], c["max_tokens"], c["temperature"], c["seed"],
                               prompt_ids=lay.ids))
    except BadInput as exc:
        raise BadInput(f"comparison '{c['name']}': {exc}") from None


@contextmanager
def _output_folder(out: Path) -> Iterator[Path]:
    """A temp folder inside `out` (made if missing) while holding its lock; on failure,
    the temp folder goes, and so does `out` if this run made it."""
    created = _make_dirs(out)
    lock_existed = (out / LOCK).exists()
    try:
        lock = _lock(out)
    except BaseException:
        _remove_dirs(created)
        raise
    try:
        for stale in out.glob(TEMP_PREFIX + "*"):  # a killed run's; none is live while we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=out))
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        if not lock_existed:  # leave DIR as it was
            (out / LOCK).unlink(missing_ok=True)
        _remove_dirs(created)
        raise
    finally:
        lock.close()


def _make_dirs(out: Path) -> list[Path]:
    """Make `out` and its missing parents; return those made, deepest first."""
    missing = []
    d = out
    while not d.exists() and d != d.parent:
        missing.append(d)
        d = d.parent
    made: list[Path] = []
    try:
        for d in reversed(missing):
            d.mkdir()
            made.insert(0, d)
    except OSError as exc:
        _remove_dirs(made)
        raise BadInput(f"--out '{out}': cannot create {d} ({exc.strerror or exc})") from None
    return made


def _remove_dirs(dirs: list[Path]) -> None:
    for d in dirs:
        try:
            d.rmdir()
        except OSError:
            break


def _lock(out: Path):
    try:
        f = open(out / LOCK, "a+")  # noqa: SIM115 (held open for the run: the lock lives as long as it)
    except OSError as exc:
        raise BadInput(f"--out '{out}': cannot write there ({exc.strerror or exc})") from None
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        pid = f.read().strip()[:20] or "?"
        f.close()
        raise BadInput(f"--out '{out}': another lenscope run (pid {pid}) is writing there") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def _publish(tmp: Path, out: Path) -> None:
    """Move the finished files into `out`, each whole (os.replace), heatmaps before the
    reports that link them; a file of the same name keeps its mode."""
    files = sorted((p.relative_to(tmp) for p in tmp.rglob("*") if p.is_file()),
                   key=lambda rel: (rel.parts[0] != "heatmaps", str(rel)))
    for rel in files:
        if (out / rel).is_dir():
            raise BadInput(f"--out '{out}': '{rel}' in it is a folder")
    try:
        for rel in files:
            dst = out / rel
            dst.parent.mkdir(exist_ok=True)
            try:
                os.chmod(tmp / rel, stat.S_IMODE(os.stat(dst).st_mode))
            except FileNotFoundError:
                pass
            os.replace(tmp / rel, dst)
    except OSError as exc:
        raise BadInput(f"--out '{out}': cannot write there ({exc.strerror or exc})") from None


def write_svg(path: Path, matrix: np.ndarray, tokens: list[str], marks: list[int], title: str) -> None:
    from lenscope.app.reports.svg import svg

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(svg(matrix, tokens, marks, title), encoding="utf-8")


def _mean(xs: list) -> str:
    vals = [x for x in xs if x is not None]
    return f"{np.mean(vals):.3f}" if vals else "-"


_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}()#+!|~>-])")


def _md(text: Any) -> str:
    """Text that markdown shows as written: HTML escaped, markdown syntax backslashed,
    on one line (a heading or a table cell cannot span lines)."""
    text = html.escape(str(text), quote=False)
    return _MD_SPECIAL.sub(r"\\\1", re.sub(r"\s*[\r\n]+\s*", " ", text))


def write_reports(folder: str | Path, results: list[dict], meta: dict[str, Any]) -> list[Path]:
    """report.html and report.md of `results` into `folder` (made if missing), each written
    atomically: what the TUI's export writes for the comparison on screen."""
    from lenscope.app.io.session import atomic_write
    from lenscope.app.reports.html import render

    out = Path(folder).expanduser()
    if out.exists() and not out.is_dir():
        raise BadInput(f"export '{folder}': is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"export '{folder}': cannot make it ({exc.strerror or exc})") from None
    return [atomic_write(out / "report.html", render(results, meta)), atomic_write(out / "report.md", markdown(results))]


def markdown(results: list[dict]) -> str:
    from lenscope.app.reports import conversation as cr

    lines = ["# lenscope report", "", *cr.summary_markdown(cr.summary(results), _md)]
    for rec in results:
        if cr.is_conversation(rec):
            lines += cr.markdown_section(rec, _md)
            continue
        marked = rec["marked_token_indices"] or "none"
        lines += [f"## {_md(rec['comparison'])}", "", f"Prompt: {_md(rec['prompt'])}", "",
                  (f"Model {_md(rec['model'])} · T={rec['temperature']} · seed {rec['seed']} · marked tokens: "
                   f"{_md(marked)}"), "",
                  "| row | output | first divergence | mean KL (same prefix) | attention on marks |",
                  "|---|---|---|---|---|"]
        for row in rec["rows"]:
            div = "-" if row["first_divergence"] is None else row["first_divergence"]
            flag = "" if row["finite"] else " (NaN)"
            lines.append(f"| {_md(row['name'])}{flag} | {_md(row['text'])} | {div} | "
                         f"{_mean(row['kl_from_baseline'])} | {_mean(row['attention_to_marks'])} |")
        for svg in rec.get("heatmaps", []):
            lines.append(f"\n![attention]({svg})")
        lines.append("")
    return "\n".join(lines)
