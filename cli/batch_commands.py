"""Commands over many comparisons: `run`, `search`, `tree` and `diff`."""

from __future__ import annotations

import argparse
import sys
import time
from importlib import metadata
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from lenscope.batch import diff as run_diff
from lenscope.cli.common import (
    add_json,
    add_model,
    add_prompt,
    add_setting,
    add_shard,
    checked,
    emit,
    load_engine,
    model_prompt_of,
    stderr_console,
    variants_of,
)
from lenscope.core.settings import TREE_PARAMS
from lenscope.errors import BadInput, one_line, user_path
from lenscope.reports.terminal import print_tree
from lenscope.storage import datafile


def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="a batch of comparisons: results.jsonl + report.md + report.html (+ SVG)",
                       epilog="Under `mlx.launch -n N -- lenscope run ...` each process runs its share and rank 0 "
                              "writes the merged results (docs: Beyond one machine).")
    p.set_defaults(func=cmd_run)
    add_model(p)
    add_shard(p)
    p.add_argument("experiment", metavar="EXPERIMENT_FILE",
                   help="an experiment .toml file (docs: The command line; examples/ has some)")
    p.add_argument("--out", required=True, metavar="DIR", help="the output folder: results.jsonl, report.md, report.html, heatmaps/ (made if missing)")
    p.add_argument("--resume", action="store_true",
                   help="keep the comparisons an interrupted run of this experiment finished in --out; run the rest")


def cmd_run(args) -> None:
    from lenscope.batch import experiment, experiment_file, outdir  # lazy: blas
    from lenscope.batch.distributed import world  # lazy: blas

    here = world()  # under mlx.launch: this rank's share (batch/distributed.py)
    exp = experiment_file.load(args.experiment)  # the whole file checked, no model needed
    out = outdir.check_out(args.out, experiment_file.outputs(exp))  # before any work
    outdir.check_kind(out, "run")  # not a search's folder
    if args.model is None and exp["model"]:
        args.model = exp["model"]
    engine, _ = load_engine(args)

    meta = {"lenscope": metadata.version("lenscope"), "model": engine.loaded.name,
            "precision": engine.loaded.precision, "backend": engine.backend,
            "reproduce": f"lenscope run {args.experiment} --out {args.out}"
                         + (f" --model {args.model}" if args.model and not exp["model"] else "")}
    results = experiment.run(engine, exp, out, progress=lambda m: print(one_line(m), file=sys.stderr, flush=True),
                             meta=meta, resume=args.resume, world=here)
    if not here.leader:
        return
    print(one_line(f"{len(results)} comparison(s): {out / 'results.jsonl'}, {out / 'report.md'}, "
                   f"{out / 'report.html'}"))


def add_search(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="tune a lens stack toward a score: results.jsonl, best.toml, report.md",
                       epilog="Under `mlx.launch -n N -- lenscope search ...` the candidates' batches are shared out "
                              "(docs: Beyond one machine).")
    p.set_defaults(func=cmd_search)
    p.add_argument("search", metavar="SEARCH_FILE", help="the search file (TOML; docs: Scores, search and trees)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder; this search's own (same file, any budget, same model) is resumed")
    add_model(p)
    add_shard(p)


def cmd_search(args) -> None:
    from lenscope.batch import outdir  # lazy: blas
    from lenscope.batch import search as searches  # lazy: blas
    from lenscope.batch.distributed import world  # lazy: blas
    from lenscope.models.sources import model_identity  # lazy: blas
    from lenscope.storage.files import atomic_write  # lazy: blas

    here = world()  # under mlx.launch: this rank's share (batch/distributed.py)
    search = searches.load(args.search)  # the whole file is checked before a model loads
    if args.model is None:
        args.model = search.model
    out = outdir.check_out(args.out, ["results.jsonl", "best.toml", "report.md"])
    search.identity = searches.identity(search, model_identity(args.model))
    # a new folder, or this search's own: what it holds is read (and checked) before the model loads
    known = searches.Results(out / "results.jsonl") if outdir.check_kind(out, "search", search.identity) else None
    engine, _ = load_engine(args)
    with Progress(transient=True, console=stderr_console(), disable=not here.leader) as bar:
        task = bar.add_task("search", total=None)
        summary = searches.run(engine, search, out, lambda done, total: bar.update(task, completed=done, total=total),
                               world=here, known=known)
    if not here.leader:
        return
    if not summary["candidates"]:
        raise BadInput(f"search '{args.search}': no candidate was scored")
    atomic_write(out / "best.toml", searches.best_lens_file(search, summary))
    atomic_write(out / "report.md", searches.report(search, summary))
    best = summary["candidates"][0]
    print(f"best: {best['name']} · score {best['score']:.4g} (baseline {summary['baseline']['score']:.4g}) · "
          f"{out / 'best.toml'}, {out / 'report.md'}")


def add_tree(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tree", help="branch where the model hesitates, score the leaves, keep the best (beam)")
    p.set_defaults(func=cmd_tree)
    add_model(p)
    add_prompt(p, required=True)
    p.add_argument("--lens", default=None, metavar="SPEC", help="one lens stack every node runs under: kind:key=value,... (+ stacks lenses) or a lens file")
    p.add_argument("--score", default=None, metavar="FILE", help="a TOML file of [[score]] tables (default: the built-in fluency score)")
    for name in ("temperature", "seed"):
        add_setting(p, name)

    for name, param in TREE_PARAMS.items():
        p.add_argument(f"--{name}", type=checked(param, f"--{name}"), default=param.default, help=param.help)
    add_json(p, "tree")


def cmd_tree(args) -> None:
    from lenscope.batch.scores import Score  # lazy: blas
    from lenscope.batch.tree import grow, tree_progress  # lazy: blas

    if args.score:
        score = Score.from_data(datafile.read(args.score, f"score file '{args.score}'", "toml").get("score"),
                                f"score file '{args.score}'")
    else:
        score = Score.from_data([{"kind": "fluency"}], "default score")
    variants = variants_of([args.lens]) if args.lens else []
    if len(variants) > 1:
        raise BadInput(f"--lens '{args.lens}': holds {len(variants)} variants; a tree runs under one stack")
    engine, _ = load_engine(args)
    prompt, _ = model_prompt_of(engine, args)
    start = time.perf_counter()

    def progress(done: int, total: int, nodes: int) -> None:  # on a terminal only: a redrawn line
        if sys.stderr.isatty():
            print(f"\r{tree_progress(done, total, nodes, time.perf_counter() - start)}   ", end="", file=sys.stderr,
                  flush=True)

    tree = grow(engine, prompt, score, {k: getattr(args, k) for k in TREE_PARAMS}, args.temperature, args.seed,
                variants[0] if variants else None, progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    if args.json:
        emit({"model": engine.loaded.name, **tree.to_json()})
        return

    print_tree(tree)


def add_diff(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diff", help="which comparisons changed between two runs (folders or results.jsonl)")
    p.set_defaults(func=cmd_diff)
    p.add_argument("run_a", help="run A: its --out folder or its results.jsonl")
    p.add_argument("run_b", help="run B, compared with A")
    p.add_argument("--html", metavar="FILE", help="also write the diff as an HTML page")
    add_json(p, "diff")


def cmd_diff(args) -> None:
    from lenscope.storage.files import atomic_write  # lazy: blas

    d = run_diff.diff(run_diff.load_run(args.run_a), run_diff.load_run(args.run_b))
    if args.html:
        atomic_write(args.html, run_diff.to_html(d, args.run_a, args.run_b))
    if args.json:
        emit(d)
        return
    for line in run_diff.to_text(d):
        print(one_line(line))

def add_fit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit", help="learn a lens from examples: steer vectors, a LoReFT edit, or a LoRA adapter",
                       epilog="DIR/lens.toml is a lens file (--lens DIR/lens.toml); a lora DIR is an mlx-lm adapter "
                              "folder (--lens DIR, mlx_lm.generate --adapter-path DIR). docs: Learning a lens.")
    p.set_defaults(func=cmd_fit)
    add_model(p)
    p.add_argument("--data", required=True, metavar="FILE.jsonl",
                   help="JSON lines: {prompt, completion}, {messages}, {text}, or pairs {prompt, chosen, rejected}")
    p.add_argument("--kind", choices=["steer", "reft", "lora"], default="steer", help="what is learned (default steer)")
    p.add_argument("--out", required=True, metavar="DIR", help="where the lens (or adapter) and fit.json are written")
    p.add_argument("--layers", metavar="L|L|...", help="layers (steer, reft; default the middle one); "
                                                       "lora: the number of last layers adapted (default 4)")
    p.add_argument("--positions", default="all", help="steer, reft: all, prompt, generated or marked (default all)")
    p.add_argument("--rank", type=int, default=4, help="reft and lora rank (default 4)")
    p.add_argument("--steps", type=int, default=30, help="optimizer steps (default 30)")
    p.add_argument("--batch", type=int, default=4, help="examples per step (default 4)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 0.01; lora 1e-4)")
    p.add_argument("--kl", type=float, default=0.1, help="weight of the KL-from-baseline penalty (default 0.1)")
    p.add_argument("--heldout", type=float, default=0.2, help="share of examples held out (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="the split, the order and the initial tensors (default 0)")


def cmd_fit(args) -> None:
    from lenscope.batch import fit  # lazy: blas

    if not 1 <= args.steps <= 100_000 or not 1 <= args.batch <= 1024 or not 0 <= args.heldout < 1 \
            or not 0 <= args.kl < 1e6 or not 1 <= args.rank <= 4096:
        raise BadInput("fit: --steps 1..100000, --batch 1..1024, --heldout in [0, 1), --kl >= 0, --rank 1..4096")
    out = user_path(args.out, f"--out '{args.out}'")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInput(f"--out '{args.out}': exists and is not an empty folder")
    try:
        layers = tuple(int(x) for x in args.layers.split("|")) if args.layers else None
    except ValueError:
        raise BadInput(f"--layers '{args.layers}': whole numbers separated by |") from None
    if args.kind == "lora":
        from lenscope.batch import fit_lora  # lazy: blas

        report = fit_lora.fit(args.model, user_path(args.data, "--data"), Path(out), num_layers=(layers or (4,))[0],
                              rank=args.rank, steps=args.steps, batch=args.batch, lr=args.lr or 1e-4,
                              heldout=args.heldout, seed=args.seed)
        print(one_line(fit_lora.summary(report)))
        return
    opts = fit.FitOptions(kind=args.kind, layers=layers, positions=fit.check_positions(args.positions),
                          rank=args.rank, steps=args.steps, batch=args.batch, lr=args.lr or 0.01, kl=args.kl,
                          heldout=args.heldout, seed=args.seed)
    records = fit.read_records(args.data)  # a missing or broken file is said before the model loads
    engine, _ = load_engine(args)
    examples = fit.read_examples(engine, args.data, records)
    with Progress(TextColumn("fit"), BarColumn(), TextColumn("{task.completed}/{task.total} loss {task.fields[loss]}"),
                  TimeRemainingColumn(), console=stderr_console(), transient=True) as bar:
        task = bar.add_task("fit", total=opts.steps, loss="-")
        report = fit.fit(engine, examples, opts, Path(out),
                         progress=lambda step, total, loss: bar.update(task, completed=step, loss=f"{loss:.4f}"))
    print(one_line(fit.summary(report)))
    print(one_line(f"wrote {out / 'lens.toml'} ({out / 'lens.safetensors'}) and {out / 'fit.json'}"))
