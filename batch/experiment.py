"""`lenscope run EXPERIMENT.toml --out DIR`: a batch of comparisons and their report.

Writes DIR/results.jsonl (one `generate --json` object per line, plus "comparison"),
DIR/report.md, DIR/report.html and DIR/heatmaps/*.svg (with capture_attention).

Nothing is written until everything is checked: `experiment_file.load` checks the whole
file without a model, `outdir.check_out` the output folder, and `run` every comparison
against the model (marks, layers, sizes) before generating. After each comparison its
heatmaps and the three reports go into DIR through `outdir` (each file replaced whole). A
run that fails or is killed leaves the comparisons it finished (a failure before the first
leaves DIR as it was); `--resume` keeps them.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lenscope.batch.distributed import World, append_shard, read_shards
from lenscope.batch.experiment_file import svg_name
from lenscope.batch.outdir import MANIFEST, finished, made_for, manifest, output_folder, publish, work_id
from lenscope.chat import conversation as convs
from lenscope.chat import templates as chat
from lenscope.core.capture import capture_rows
from lenscope.core.engine import Request
from lenscope.core.records import SCHEMA_VERSION
from lenscope.errors import BadInput
from lenscope.lenses.spec import to_data
from lenscope.models.sources import model_identity
from lenscope.reports import conversation as cr
from lenscope.reports.html import attention_row, render
from lenscope.reports.markdown import markdown
from lenscope.reports.svg import line_chart, write_svg
from lenscope.storage import datafile

if TYPE_CHECKING:
    from lenscope.core.engine import Engine


def run(engine: Engine, experiment: dict[str, Any], out_dir: Path, progress: Callable[[str], None] = print,
        meta: dict[str, Any] | None = None, resume: bool = False, world=None) -> list[dict]:
    """Run every comparison; after each one the reports are rewritten (each file replaced
    whole), so an interrupted run leaves its finished comparisons, and `resume` keeps those
    made for the same work (outdir.finished: the `work` hash of each line) and runs the rest.
    `meta`: how the run was made (command, version), shown in the HTML report.

    Under `mlx.launch` (`world`, batch/distributed.py) each rank runs its share, one comparison
    per round; after each round rank 0 has every finished record and writes the reports, in
    the order one process would. Each rank also keeps its own in DIR/shards/rank-R.jsonl,
    which `resume` reads too (a rank that died)."""
    world = world or World()
    say = progress if world.leader else (lambda m: None)
    out = Path(out_dir)
    names = [c["name"] for c in experiment["comparisons"]]
    model = model_identity(engine.loaded.name)  # by content: another model of the same name is other work
    works = [work_id(definition(c), model) for c in experiment["comparisons"]]
    done, skipped = finished(out, works) if resume else ({}, 0)
    if resume:
        if skipped:
            say(f"resume: {skipped} line(s) of {out / 'results.jsonl'} were made for other work "
                "(another prompt, lens, setting or model) and run again")
        for item in read_shards(out):
            if _shard_item(item, works):
                done.setdefault(item["index"], item["record"])
    if world.size > 1:  # the ranks agree on what is left: each read its own disk
        theirs = world.gather([{"index": i, "record": r} for i, r in sorted(done.items())])
        if world.tensor:  # every rank runs every comparison: rank 0's list, exactly
            done = {}
        for item in theirs:
            done.setdefault(item["index"], item["record"])
    todo = [i for i in range(len(names)) if i not in done]
    mine = world.rounds(todo)
    comparisons = _prepare(engine, experiment, say, skip=set(range(len(names))) - set(mine))
    results: list[dict | None] = [done.get(i) for i in range(len(names))]
    if done:
        say(f"resuming: {len(done)} of {len(names)} comparison(s) already in {out / 'results.jsonl'}")
    if world.tensor:
        say(f"{world.size} processes hold one model split between them (tensor parallel)")
    if world.data_parallel:
        say(f"{world.size} processes: {len(todo)} comparison(s) in {len(mine)} round(s)")
        if not resume and world.leader:
            shutil.rmtree(out / "shards", ignore_errors=True)  # an earlier run's
        world.gather([])  # nobody writes a shard before the old ones are gone
    t0 = time.perf_counter()
    with output_folder(out) if world.leader else _no_folder() as tmp:
        # a rank killed after writing its shard line but before the leader drew that
        # comparison's heatmaps left a record without them: draw them now, as a full run would
        undrawn = [i for i, r in done.items() if r.get("attention") and "heatmaps" not in r] if world.leader else []
        for i in undrawn:
            _write_heatmaps(tmp, i, results[i])
        if undrawn:
            _write_reports(tmp, out, results, meta)
        for k, i in enumerate(mine):
            left = "" if k == 0 else f" · {_clock(time.perf_counter() - t0)} so far, ~" \
                f"{_clock((time.perf_counter() - t0) / k * (len(mine) - k))} left"
            if not world.data_parallel:
                say(f"[{i + 1}/{len(names)}] {names[i]}{left}")
            record = None if i is None else {"schema_version": SCHEMA_VERSION,
                                             **_run_one(engine, experiment["comparisons"][i], comparisons[i]),
                                             "work": works[i]}
            if i is not None:
                comparisons[i] = None  # its prepared lenses (weight deltas) can go
                if world.data_parallel:
                    append_shard(world.shard_file(out), {"index": i, "comparison": names[i], "record": record})
            mine_now = [{"index": i, "record": record}] if i is not None else []
            got = mine_now if world.tensor else world.gather(mine_now)  # tensor: every rank made the same
            for item in got:
                results[item["index"]] = item["record"]
            if world.data_parallel:
                finished_now = sum(r is not None for r in results)
                say(f"[{finished_now}/{len(names)}] {', '.join(names[item['index']] for item in got)}{left}")
            if world.leader:
                for item in got:
                    _write_heatmaps(tmp, item["index"], item["record"])
                _write_reports(tmp, out, results, meta)
    if world.data_parallel:
        say(f"{world.gathers} exchange(s) between the {world.size} processes: {world.gather_s:.2f} s in all "
            "(waiting for the slowest rank of each round included)")
    return [r for r in results if r is not None]


def _shard_item(item: Any, works: list[str]) -> bool:
    """A shard line of this experiment: its index holds the same work (not just the same name)."""
    return isinstance(item, dict) and isinstance(item.get("index"), int) and 0 <= item["index"] < len(works) \
        and made_for(item.get("record"), works[item["index"]])


def definition(c: dict[str, Any]) -> dict[str, Any]:
    """What a comparison (or conversation) is, as data: its name and checked keys, the lens
    stacks as normalized data (a constrain grammar's text included, not the spec text, whose
    file paths depend on the current folder), the check's parts."""
    out = {k: v for k, v in c.items() if k not in ("lens", "variants", "check")}
    out["variants"] = to_data(list(c["variants"]))["variant"]
    if c.get("check") is not None:
        out["check"] = [[p.label(), p.weight] for p in c["check"].parts]
    return out


@contextmanager
def _no_folder() -> Iterator[None]:
    yield None


def _run_one(engine: Engine, c: dict[str, Any], comparison) -> dict[str, Any]:
    """One comparison (or conversation) run, as its line of results.jsonl."""
    if "turns" in c:
        return _run_conversation(engine, c)
    result = comparison.run()
    record = {"comparison": c["name"], **result.to_json()}
    if c["capture_attention"]:
        rows = []
        for cap in capture_rows(engine, result, comparison.variants, hidden=False):
            probs = cap.attention
            rows.append(attention_row(cap.name, cap.tokens, probs, heads=c["report_heads"]))
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
        write_svg(tmp / svg_name(i, r), np.array(row["mean"]), row["tokens"], record["marked_token_indices"],
                  f"{record['comparison']} · {row['name']} · mean over layers and heads")
        svgs.append(svg_name(i, r))
    record["heatmaps"] = svgs


def _write_reports(tmp: Path, out_dir: Path, results: list[dict | None], meta: dict[str, Any] | None) -> None:
    so_far = [r for r in results if r is not None]
    summary = cr.summary(so_far)
    if summary["conversations"] >= 2:
        for name, svg in cr.summary_charts(summary, partial(line_chart, x_label="turn", first=1, width=420,
                                                             height=160)).items():
            (tmp / name).write_text(svg, encoding="utf-8")
    (tmp / "results.jsonl").write_text("".join(datafile.dumps(r) + "\n" for r in so_far), encoding="utf-8")
    (tmp / "report.md").write_text(markdown(so_far), encoding="utf-8")
    (tmp / "report.html").write_text(render(so_far, meta or {}), encoding="utf-8")
    (tmp / MANIFEST).write_text(manifest("run"), encoding="utf-8")  # this folder is a run's
    publish(tmp, Path(out_dir))


def _run_conversation(engine: Engine, c: dict[str, Any]) -> dict[str, Any]:
    """Every turn of a conversation comparison; its record holds the whole conversation."""
    conv = None
    for conv, _ in conversation_turns(engine, c, c["variants"], mode=c["mode"], keep=c["keep"],
                                      max_tokens=c["max_tokens"], temperature=c["temperature"], seed=c["seed"],
                                      fluency=True):
        pass
    return convs.record(c["name"], engine, conv, c["lens"])


def conversation_turns(engine: Engine, c: dict[str, Any], variants: list, *, mode: str, keep: int, max_tokens: int,
                       temperature: float, seed: int, fluency: bool = False) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Conversation comparison `c` (experiment_file's), one turn at a time: yields the growing
    conversation and each turn's record; a turn that fails is one line naming it. Experiments
    and conversation searches both run conversations through here."""
    conv = convs.Conversation.start(c["system"], mode, keep)
    conv.marks += convs.text_marks(conv.messages, c["mark"], ("system",))
    conv.concepts = list(c["track"])
    for user in c["turns"]:
        try:
            record = convs.run_turn(engine, conv, user, variants, max_tokens=max_tokens, temperature=temperature,
                                    seed=seed, mark=c["mark"], check=c["check"], fluency=fluency)
        except BadInput as exc:
            raise BadInput(f"comparison '{c['name']}' turn {len(conv.turns) + 1}: {exc}") from None
        yield conv, record


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"


def _prepare(engine: Engine, experiment: dict[str, Any], progress: Callable[[str], None], skip: set[int] = frozenset()) -> list:
    """Every comparison checked against the model and prepared, before anything runs
    (those in `skip`, finished by an earlier run, are not)."""
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
            marks = set(engine.tokens.marks_from_text(prompt, ids, c["mark"], region)) if c["mark"] else set()
            marks |= set(engine.tokens.check_marks(c["mark_tokens"], len(ids)))
            request = Request(prompt, c["variants"], sorted(marks), c["max_tokens"], c["temperature"], c["seed"])
            comparison = engine.compare(request, capture=c["capture_attention"])
        except BadInput as exc:
            raise BadInput(f"comparison '{c['name']}': {exc}") from None
        comparisons.append(comparison)
        warnings += [f"comparison '{c['name']}': warning: {w}" for w in comparison.warnings]
    for w in warnings:  # only once all passed: a failing run prints its error line alone
        progress(w)
    return comparisons


def _check_conversation(engine: Engine, c: dict[str, Any]) -> None:
    """The first turn templates, tokenizes and prepares; each `mark` text occurs somewhere."""
    try:
        conv = convs.Conversation.start(c["system"], c["mode"], c["keep"])
        lay = convs.layout(engine.tokens, [*conv.messages, convs.ChatMessage("user", c["turns"][0])])
        every = "\n".join([c["system"] or "", *c["turns"]])
        missing = [m for m in c["mark"] if m not in every]
        if missing:
            raise BadInput(f"mark '{missing[0]}': occurs in no system or user message")
        engine.compare(Request(lay.text, c["variants"], [], c["max_tokens"], c["temperature"], c["seed"],
                               prompt_ids=lay.ids))
        if c["check"] is not None:
            c["check"].prepare(engine)
    except BadInput as exc:
        raise BadInput(f"comparison '{c['name']}': {exc}") from None
