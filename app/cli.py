"""The `lenscope` command line (CONTRACT.md): the TUI and the scriptable commands."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from lenscope.app.errors import BadInput, one_line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse prints usage too)
        raise BadInput(f"{self.prog}: {message}")


def _checked(param, what: str):
    """An argparse type: a value checked by a `Param`, like every lens value."""

    def conv(text: str):
        try:
            return param.parse(text, "", label=what)
        except BadInput as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return conv


def _int_range(lo: int, hi: int, what: str):
    from lenscope.lenses.base import Param  # imports MLX: only once parsing, after the BLAS re-exec

    return _checked(Param(what, "int", None, "", lo, hi), what)


def _add_setting(p: argparse.ArgumentParser, name: str, **kw: Any) -> None:
    """A generation setting's flag: type, range and default from app/settings.py, so the CLI,
    the TUI, experiments and sessions share them."""
    from lenscope.app.settings import SETTINGS

    param = SETTINGS[name]
    flag = "--" + name.replace("_", "-")
    p.add_argument(flag, type=_checked(param, flag), default=param.default, help=param.help, **kw)


def _token_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--mark-tokens must be integers separated by commas, got '{text}'") from None


def _add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="local mlx-lm model folder or hub id (default: the bundled demo model)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow a model's own Python code (off by default)")
    p.add_argument("--precision", choices=["auto", "native", "float32", "float16"], default="auto",
                   help="auto: a quantized model runs dequantized to float32 on a CPU with a fast BLAS")


def _add_prompt(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--prompt", required=required, help="the prompt text")
    p.add_argument("--chat", action="store_true",
                   help="wrap the prompt in the model's chat template (marks are searched in your text only)")
    p.add_argument("--system", default=None, metavar="TEXT", help="a system message (with --chat)")
    p.add_argument("--mark", action="append", default=[], metavar="TEXT",
                   help="mark every prompt token overlapping each occurrence of TEXT (repeatable)")
    p.add_argument("--mark-tokens", type=_token_list, default=[], metavar="I,J,...", help="mark prompt tokens by index")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="lenscope", description="Watch a local language model think, and bend it at inference time.")
    sub = ap.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("tui", help="the terminal app (default)")
    p.set_defaults(func=cmd_tui)
    _add_model(p)
    _add_prompt(p, required=False)
    p.add_argument("--session", help="open a saved session file")
    p.add_argument("--lens", action="append", default=[], metavar="SPEC", help="a lens variant column (repeatable)")

    p = sub.add_parser("generate", help="one comparison: baseline row + one row per --lens")
    p.set_defaults(func=cmd_generate)
    _add_model(p)
    _add_prompt(p, required=True)
    p.add_argument("--lens", action="append", default=[], metavar="SPEC", help="lens spec or file (repeatable)")
    for name in ("max_tokens", "temperature", "seed"):
        _add_setting(p, name)
    p.add_argument("--capture-attention", action="store_true", help="add attention (mean over layers and heads)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("score", help="log-probability of a continuation after the prompt, per row")
    p.set_defaults(func=cmd_score)
    _add_model(p)
    _add_prompt(p, required=True)
    p.add_argument("--continuation", required=True, help="the text to score after the prompt")
    p.add_argument("--lens", action="append", default=[], metavar="SPEC", help="lens spec or file (repeatable)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("attention", help="attention matrix of one layer (mean over heads unless --head)")
    p.set_defaults(func=cmd_attention)
    _add_model(p)
    _add_prompt(p, required=True)
    p.add_argument("--layer", type=_int_range(-1024, 1023, "--layer"), default=-1)
    p.add_argument("--head", type=_int_range(0, 1023, "--head"), default=None)
    p.add_argument("--lens", action="append", default=[], metavar="SPEC", help="apply this lens stack while capturing")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("logit-lens", help="per layer and position, the token the model would predict there")
    p.set_defaults(func=cmd_logit_lens)
    _add_model(p)
    _add_prompt(p, required=True)
    p.add_argument("--lens", action="append", default=[], metavar="SPEC", help="lens spec or file (repeatable)")
    for name in ("max_tokens", "temperature", "seed"):
        _add_setting(p, name)
    p.add_argument("--positions", default="prompt", metavar="prompt|last|all|I,J,...",
                   help="positions of prompt + output to decode: prompt (default: the last prompt token, which "
                        "chose the first output token), last, all, or indices")
    p.add_argument("--top-k", type=_int_range(1, 50, "--top-k"), default=5)
    p.add_argument("--pin", action="append", default=[], metavar="TOKEN",
                   help="follow this token's probability across layers (its first token; repeatable)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("geometry", help="per layer and position, how far each row's hidden states are from the baseline's")
    p.set_defaults(func=cmd_geometry)
    _add_model(p)
    _add_prompt(p, required=True)
    p.add_argument("--lens", action="append", default=[], metavar="SPEC", help="lens spec or file (repeatable)")
    for name in ("max_tokens", "temperature", "seed"):
        _add_setting(p, name)
    p.add_argument("--layer", type=_int_range(-1024, 1024, "--layer"), default=-1,
                   help="hidden state for the PCA (0: embeddings, l + 1: after block l; default the last)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("heads", help="head roles measured on the model: previous-token, induction, attention sink")
    p.set_defaults(func=cmd_heads)
    _add_model(p)
    p.add_argument("--length", type=_int_range(4, 512, "--length"), default=32,
                   help="length of the random sequence that is repeated")
    _add_setting(p, "seed")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("run", help="a batch of comparisons: results.jsonl + report.md + report.html (+ SVG)",
                       epilog="Under `mlx.launch -n N -- lenscope run ...` each process runs its share and rank 0 "
                              "writes the merged results (README: Beyond one machine).")
    p.set_defaults(func=cmd_run)
    _add_model(p)
    p.add_argument("experiment", help="an experiment .toml file")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--resume", action="store_true",
                   help="keep the comparisons an interrupted run of this experiment finished in --out; run the rest")

    p = sub.add_parser("search", help="tune a lens stack toward a score: results.jsonl, best.toml, report.md",
                       epilog="Under `mlx.launch -n N -- lenscope search ...` the candidates' batches are shared out "
                              "(README: Beyond one machine).")
    p.set_defaults(func=cmd_search)
    p.add_argument("search", help="the search file (TOML)")
    p.add_argument("--out", required=True, help="output folder; a search already there is resumed")
    _add_model(p)

    p = sub.add_parser("tree", help="branch where the model hesitates, score the leaves, keep the best (beam)")
    p.set_defaults(func=cmd_tree)
    _add_model(p)
    _add_prompt(p, required=True)
    p.add_argument("--lens", default=None, metavar="SPEC", help="a lens stack every node runs under")
    p.add_argument("--score", default=None, metavar="FILE", help="a TOML file of [[score]] tables (default: fluency)")
    for name in ("temperature", "seed"):
        _add_setting(p, name)
    from lenscope.app.tree import TREE_PARAMS

    for name, param in TREE_PARAMS.items():
        p.add_argument(f"--{name}", type=_checked(param, f"--{name}"), default=param.default, help=param.help)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("diff", help="which comparisons changed between two runs (folders or results.jsonl)")
    p.set_defaults(func=cmd_diff)
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.add_argument("--html", metavar="FILE", help="also write the diff as an HTML page")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("models", help="bundled, named (fetched or not), converted and hub-cached models")
    p.set_defaults(func=cmd_models)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("lenses", help="the lens kinds, their parameters, defaults and ranges")
    p.set_defaults(func=cmd_lenses)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("doctor", help="platform, MLX backend, BLAS, kernel self-tests, default model")
    p.set_defaults(func=cmd_doctor)
    _add_model(p)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("measure", help="measured lens effects on the model: recall by distance, mood counts")
    p.set_defaults(func=cmd_measure)
    _add_model(p)
    p.add_argument("what", choices=["recall", "attribute", "counterfact", "mood", "patch"],
                   help="recall/attribute: the demo model's episodes; counterfact/mood/patch: English prompt "
                        "sets for real models")
    p.add_argument("--lens", action="append", default=[], metavar="SPEC",
                   help="lens rows to compare with the baseline (default: emphasis for recall, steering for attribute)")
    p.add_argument("--n", type=_int_range(1, 10000, "--n"), default=None, help="episodes or samples per row")
    p.add_argument("--distances", default=None, help="filler sentences, e.g. 0,4,8,16 (recall, counterfact)")
    p.add_argument("--chat", action="store_true", help="counterfact/patch: use the chat template (mood always does)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("direction", help="compute a steering direction from contrast prompts and save it")
    p.set_defaults(func=cmd_direction)
    _add_model(p)
    p.add_argument("--positive", required=True, help="texts for the + side, separated by |")
    p.add_argument("--negative", required=True, help="texts for the - side, separated by |")
    p.add_argument("--layer", type=_int_range(0, 1023, "--layer"), required=True)
    p.add_argument("--method", choices=["mean", "pca"], default="mean")
    p.add_argument("--out", required=True, help="a .npy or .safetensors file")

    p = sub.add_parser("bench", help="performance ratios measured in one run")
    p.set_defaults(func=cmd_bench)
    _add_model(p)
    p.add_argument("--tokens", type=_int_range(4, 1024, "--tokens"), default=48)
    p.add_argument("--repeats", type=_int_range(1, 20, "--repeats"), default=3)
    p.add_argument("--launch", type=_int_range(2, 64, "--launch"), metavar="N",
                   help="instead: time an 8-comparison experiment run by one process and by N under mlx.launch")
    p.add_argument("--json", action="store_true")
    return ap


def main(argv: Sequence[str] | None = None) -> None:
    _quiet_transformers()
    if argv is None:
        from lenscope.app.blas import maybe_reexec_with_openblas

        maybe_reexec_with_openblas(sys.argv[1:])
        argv = sys.argv[1:]
    argv = list(argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["tui", *argv]  # `lenscope --model M` starts the TUI
    try:
        _check_utf8(argv)
        args = build_parser().parse_args(argv)
        args.func(args)
    except BadInput as exc:  # one line, whatever the input held (escapes, newlines, bad unicode)
        print(f"lenscope: {one_line(str(exc))}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:  # `lenscope ... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)


def _quiet_transformers() -> None:
    """Tokenizers log warnings (e.g. "sequence longer than 512") on stderr: lenscope says
    what matters itself, and a stray line breaks the one-line error contract."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # read when transformers is imported
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.set_verbosity_error()


def _check_utf8(argv: Sequence[str]) -> None:
    """Bytes that are not UTF-8 arrive surrogate-escaped (PEP 383): refuse them here, as
    text they could not be tokenized, printed or saved."""
    for i, arg in enumerate(argv):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            flag = argv[i - 1] if i and argv[i - 1].startswith("-") else arg.split("=")[0] if arg.startswith("--") \
                else f"argument {i + 1}"
            raise BadInput(f"{flag}: not valid UTF-8 ({arg!r:.60})") from None


def _emit(data: Any) -> None:
    """stdout JSON: standard JSON only (NaN/inf as null), see app/datafile.py."""
    from lenscope.app.datafile import dumps

    print(dumps(data))


def _warn(warnings: Sequence[str]) -> None:
    for w in warnings:
        print(f"lenscope: warning: {w}", file=sys.stderr)


def _load(args) -> tuple[Any, float]:
    from lenscope.app import models
    from lenscope.app.engine import Engine

    t = time.perf_counter()
    loaded = models.load(args.model, trust_remote_code=args.trust_remote_code, precision=args.precision,
                         progress=lambda m: print(f"lenscope: {m}", file=sys.stderr))
    return Engine(loaded), time.perf_counter() - t


def _prompt(engine, args) -> tuple[str, tuple[int, int] | None]:
    """The text the model reads and where the user's own text sits in it (None: all of it)."""
    if not args.prompt.strip():
        raise BadInput("--prompt: empty")
    if args.system is not None and not args.chat:
        raise BadInput("--system needs --chat")
    from lenscope.app.chat import model_prompt

    return model_prompt(engine.tokenizer, args.prompt, args.chat, args.system)


def _marks(engine, prompt: str, args, region: tuple[int, int] | None = None) -> list[int]:
    ids = engine.encode(prompt)
    marks = engine.marks_from_text(prompt, ids, args.mark, region) if args.mark else []
    return sorted(set(marks) | set(engine.check_marks(args.mark_tokens, len(ids))))


def _variants(specs: Sequence[str]):
    from lenscope.lenses.spec import parse

    return [v for s in specs for v in parse(s)]


def cmd_generate(args) -> None:
    from lenscope.app.engine import Request

    if not args.prompt.strip():
        raise BadInput("--prompt: empty")
    variants = _variants(args.lens)
    engine, load_s = _load(args)
    prompt, region = _prompt(engine, args)
    marks = _marks(engine, prompt, args, region)
    run = engine.compare(Request(prompt, variants, marks, args.max_tokens, args.temperature, args.seed),
                         capture=args.capture_attention)
    _warn(run.warnings)
    result = run.run()
    result.timing = {"load_s": load_s, **result.timing}
    if args.capture_attention:
        from lenscope.app.capture import attention_summary

        result.attention = attention_summary(engine, result, run.variants)
    if args.json:
        _emit(result.to_json())
        return
    from lenscope.app.report import print_comparison

    print_comparison(result)


def cmd_attention(args) -> None:
    if not args.prompt.strip():
        raise BadInput("--prompt: empty")
    if len(args.lens) > 1:
        raise BadInput(f"--lens given {len(args.lens)} times; attention shows one stack (join lenses with +)")
    variants = _variants(args.lens)
    if len(variants) > 1:
        raise BadInput(f"--lens '{args.lens[0]}': holds {len(variants)} variants; attention takes one")
    engine, _ = _load(args)
    prompt, region = _prompt(engine, args)
    ids = engine.encode(prompt)
    marks = _marks(engine, prompt, args, region)
    lenses = variants[0].lenses if variants else []
    n = engine.n_layers
    if not -n <= args.layer < n:
        raise BadInput(f"--layer {args.layer}: the model has {n} layers (0..{n - 1}, or negative from the end)")
    layer = args.layer % n
    probs = engine.capture_attention(ids, lenses, marks=marks, layers=[layer])[0]  # (H, L, L)
    if args.head is not None and args.head >= probs.shape[0]:
        raise BadInput(f"--head {args.head}: the model has {probs.shape[0]} heads")
    matrix = probs[args.head] if args.head is not None else probs.mean(axis=0)
    tokens = [engine.token_text(i) for i in ids]
    if args.json:
        _emit({"model": engine.loaded.name, "layer": layer, "head": args.head, "heads": int(probs.shape[0]),
               "tokens": tokens, "token_ids": ids, "marked_token_indices": marks,
               "lens": variants[0].normalized() if variants else None,
               "matrix": [[round(float(x), 6) for x in row] for row in matrix]})
        return
    from rich.console import Console

    from lenscope.app.heatmap import Heatmap

    Console().print(Heatmap(matrix, tokens, tokens, marked=marks,
                            title=f"layer {layer}, {'head ' + str(args.head) if args.head is not None else 'mean of heads'}"))


def _compare_and_capture(args):
    """The comparison `generate` would run, then each row captured for the views."""
    from lenscope.app.engine import Request
    from lenscope.app.inspection import capture_row

    if not args.prompt.strip():
        raise BadInput("--prompt: empty")
    variants = _variants(args.lens)
    engine, _ = _load(args)
    prompt, region = _prompt(engine, args)
    marks = _marks(engine, prompt, args, region)
    run = engine.compare(Request(prompt, variants, marks, args.max_tokens, args.temperature, args.seed), capture=True)
    _warn(run.warnings)
    result = run.run()
    return engine, result, [capture_row(engine, result, run.variants, r) for r in range(len(result.rows))]


def _positions(text: str, n: int, prompt_len: int) -> list[int]:
    if text == "prompt":
        return [prompt_len - 1]
    if text == "last":
        return [n - 1]
    if text == "all":
        return list(range(n))
    try:
        picked = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise BadInput(f"--positions: 'prompt', 'last', 'all' or indices like 3,7,-1; got '{text}'") from None
    bad = [p for p in picked if not -n <= p < n]
    if bad or not picked:
        raise BadInput(f"--positions: {bad[0] if bad else text!r} is outside prompt + output (0..{n - 1})")
    return [p % n for p in picked]


def cmd_logit_lens(args) -> None:
    from lenscope.app.inspection import logit_lens_json

    engine, result, caps = _compare_and_capture(args)
    pinned = []
    for text in args.pin:
        ids = engine.encode(text)
        if not ids:
            raise BadInput(f"--pin '{text}': encodes to no token")
        pinned.append(ids[0])
    rows = [logit_lens_json(engine, c, _positions(args.positions, len(c.ids), c.prompt_len), args.top_k, pinned) for c in caps]
    data = {"model": engine.loaded.name, "layers": engine.n_layers, "prompt_len": len(result.prompt_token_ids),
            "rows": rows}
    if args.json:
        _emit(data)
        return
    from lenscope.app.report import print_logit_lens

    print_logit_lens(data)


def cmd_geometry(args) -> None:
    from lenscope.app.inspection import geometry_json

    engine, _, caps = _compare_and_capture(args)
    n = engine.n_layers + 1
    if not -n <= args.layer < n:
        raise BadInput(f"--layer {args.layer}: hidden states are 0..{n - 1} (0: embeddings), or negative from the end")
    data = {"model": engine.loaded.name, **geometry_json(caps, args.layer)}
    if args.json:
        _emit(data)
        return
    from lenscope.app.report import print_geometry

    print_geometry(data)


def cmd_heads(args) -> None:
    from lenscope.app import head_roles

    engine, _ = _load(args)
    roles = head_roles.measure(engine, args.length, args.seed)
    data = {"model": engine.loaded.name, "layers": engine.n_layers, "heads": engine.n_heads, **roles.to_json()}
    if args.json:
        _emit(data)
        return
    for role in head_roles.ROLES:
        heads = roles.heads(role)
        shown = ", ".join(f"L{layer}.H{h} {roles.scores[role][layer, h]:.2f}" for layer, h in heads[:12])
        more = f" (+{len(heads) - 12} more)" if len(heads) > 12 else ""
        print(f"{role:>10}: {len(heads)} head(s) {shown}{more}")


def cmd_score(args) -> None:
    from lenscope.app.score import score

    variants = _variants(args.lens)
    engine, _ = _load(args)
    prompt, region = _prompt(engine, args)
    marks = _marks(engine, prompt, args, region)
    _, c_ids, rows = score(engine, prompt, args.continuation, variants, marks)
    tokens = [engine.token_text(i) for i in c_ids]
    data = {"model": engine.loaded.name, "prompt": prompt, "continuation": args.continuation,
            "rows": [r.to_json(tokens) for r in rows]}
    if args.json:
        _emit(data)
        return
    print(f"log p({args.continuation!r} | prompt), {len(c_ids)} tokens, natural log")
    for row in data["rows"]:
        total = "-inf" if row["logprob"] is None else f"{row['logprob']:.4f}"
        print(f"  {row['name']}: {total}")


def cmd_run(args) -> None:
    from lenscope.app import experiment
    from lenscope.app.distributed import world

    here = world()  # under mlx.launch: this rank's share (app/distributed.py)
    exp = experiment.load(args.experiment)  # the whole file checked, no model needed
    out = experiment.check_out(args.out, experiment.outputs(exp))  # before any work
    if args.model is None and exp["model"]:
        args.model = exp["model"]
    engine, _ = _load(args)
    from importlib import metadata

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


def cmd_search(args) -> None:
    from pathlib import Path

    from rich.progress import Progress

    from lenscope.app import search as searches
    from lenscope.app.session import atomic_write

    from lenscope.app.distributed import world

    here = world()  # under mlx.launch: this rank's share (app/distributed.py)
    search = searches.load(args.search)  # the whole file is checked before a model loads
    if args.model is None:
        args.model = search.model
    engine, _ = _load(args)
    out = Path(args.out)
    with Progress(transient=True, console=_stderr_console(), disable=not here.leader) as bar:
        task = bar.add_task("search", total=None)
        summary = searches.run(engine, search, out, lambda done, total: bar.update(task, completed=done, total=total),
                               world=here)
    if not here.leader:
        return
    if not summary["candidates"]:
        raise BadInput(f"search '{args.search}': no candidate was scored")
    atomic_write(out / "best.toml", searches.best_lens_file(search, summary))
    atomic_write(out / "report.md", searches.report(search, summary))
    best = summary["candidates"][0]
    print(f"best: {best['name']} · score {best['score']:.4g} (baseline {summary['baseline']['score']:.4g}) · "
          f"{out / 'best.toml'}, {out / 'report.md'}")


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def cmd_tree(args) -> None:
    from lenscope.app import datafile
    from lenscope.app.scores import Score
    from lenscope.app.tree import TREE_PARAMS, grow

    if args.score:
        score = Score.from_data(datafile.read(args.score, f"score file '{args.score}'", "toml").get("score"),
                                f"score file '{args.score}'")
    else:
        score = Score.from_data([{"kind": "fluency"}], "default score")
    variants = _variants([args.lens]) if args.lens else []
    if len(variants) > 1:
        raise BadInput(f"--lens '{args.lens}': holds {len(variants)} variants; a tree runs under one stack")
    engine, _ = _load(args)
    prompt, _ = _prompt(engine, args)
    tree = grow(engine, prompt, score, {k: getattr(args, k) for k in TREE_PARAMS}, args.temperature, args.seed,
                variants[0] if variants else None)
    if args.json:
        _emit({"model": engine.loaded.name, **tree.to_json()})
        return
    from lenscope.app.report import print_tree

    print_tree(tree)


def cmd_diff(args) -> None:
    from lenscope.app import run_diff
    from lenscope.app.session import atomic_write

    d = run_diff.diff(run_diff.load_run(args.run_a), run_diff.load_run(args.run_b))
    if args.html:
        atomic_write(args.html, run_diff.to_html(d, args.run_a, args.run_b))
    if args.json:
        _emit(d)
        return
    print(f"{len(d['changed'])} changed, {d['unchanged']} unchanged")
    for c in d["changed"]:
        print(one_line(f"{c['comparison']}:"))
        for r in c["rows"]:
            if "only_in" in r:
                print(one_line(f"  {r['row']}: only in {r['only_in'].upper()}"))
            else:
                print(one_line(f"  {r['row']}: parts at token {r['parts_at']}: {r['text_a']!r} -> {r['text_b']!r}"))
    for key, label in (("only_in_a", "only in A"), ("only_in_b", "only in B")):
        if d[key]:
            print(one_line(f"{label}: {', '.join(d[key])}"))


def cmd_models(args) -> None:
    from lenscope.app.model_sources import list_models

    found = list_models()
    if args.json:
        _emit({"models": found})
        return
    for m in found:
        state = "ready" if m["available"] else "not fetched (--model " + m["name"] + " fetches it)"
        print(f"{m['name']:<24} {m['kind']:<8} {m['size_bytes'] / 2**20:8.1f} MiB  {state}  {m['path']}")


def cmd_lenses(args) -> None:
    from lenscope.lenses.registry import describe

    kinds = describe()
    if args.json:
        _emit({"kinds": kinds})
        return
    for k in kinds:
        print(f"{k['kind']}: {k['summary']}")
        for p in k["params"]:
            rng = f" [{p['min']:g}, {p['max']:g}]" if "min" in p else ""
            choices = f" one of {'|'.join(p['choices'])}" if "choices" in p else ""
            print(f"  {p['name']} ({p['type']}, default {p['default']!r}){rng}{choices}: {p['help']}")


def cmd_doctor(args) -> None:
    from lenscope.app.doctor import render, report

    rep = report(args.model, args.precision)
    _emit(rep) if args.json else print(render(rep))
    if not rep["model"].get("loads"):  # the report is still useful; the failing input gets its line
        raise BadInput(rep["model"].get("error") or f"model '{rep['model']['name']}': does not load")


def cmd_bench(args) -> None:
    from lenscope.app.bench import launch_bench, render, render_launch, run_bench

    if args.launch:
        rep = launch_bench(args.model, args.launch, args.tokens)
        _emit(rep) if args.json else print(render_launch(rep))
        return
    engine, _ = _load(args)
    native = None
    if "dequantized" in engine.loaded.precision:  # also time the stored, quantized path
        from lenscope.app import models
        from lenscope.app.engine import Engine

        native = Engine(models.load(args.model, trust_remote_code=args.trust_remote_code, precision="native"))
    rep = run_bench(engine, tokens=args.tokens, repeats=args.repeats, native=native)
    _emit(rep) if args.json else print(render(rep))


def cmd_measure(args) -> None:
    from lenscope.app import measure

    try:
        distances = [int(x) for x in args.distances.split(",")] if args.distances else None
    except ValueError:
        raise BadInput(f"--distances must be integers separated by commas, got '{args.distances}'") from None
    if args.what in ("counterfact", "mood", "patch"):
        return _measure_real(args, distances)
    engine, _ = _load(args)
    if args.what == "recall":
        distances = distances or measure.DISTANCES
        specs = args.lens or ["emphasis:strength=2", "emphasis:strength=4"]
        rep = measure.recall(engine, specs, distances, n=args.n or 40)
        _emit(rep) if args.json else print(measure.render_recall(rep))
    else:
        specs = args.lens or [measure.STEER_SPEC, measure.STEER_SPEC.replace("strength=30", "strength=-30")]
        rep = measure.attribute(engine, specs, n=args.n or 24)
        _emit(rep) if args.json else print(measure.render_attribute(rep))


def _measure_real(args, distances: list[int] | None) -> None:
    from lenscope.app import measure_real

    progress = (lambda m: print(f"\r{m}   ", end="", file=sys.stderr)) if sys.stderr.isatty() else None
    engine, _ = _load(args)
    if args.what == "counterfact":
        specs = args.lens or ["emphasis:strength=1", "emphasis:strength=2"]
        rep = measure_real.counterfact(engine, specs, n=args.n or 48, filler=distances or [0], chat=args.chat,
                                       progress=progress)
    elif args.what == "mood":
        if not args.lens:
            raise BadInput("measure mood: give the steering rows with --lens")
        rep = measure_real.mood(engine, args.lens, n=args.n or 40, progress=progress)
    else:
        rep = measure_real.patch(engine, n=args.n or 48, chat=args.chat, progress=progress)
    if progress:
        print(file=sys.stderr)
    from lenscope.app.datafile import dumps

    _emit(rep) if args.json else print(dumps(rep, indent=1))


def cmd_direction(args) -> None:
    from lenscope.app.session import check_writable, save_direction
    from lenscope.lenses import directions

    if not args.out.endswith((".npy", ".safetensors")):
        raise BadInput(f"--out '{args.out}': use .npy or .safetensors")
    check_writable(args.out, f"--out '{args.out}'")  # before computing anything
    pos = [t for t in args.positive.split("|") if t.strip()]
    neg = [t for t in args.negative.split("|") if t.strip()]
    if not pos or not neg:
        raise BadInput(f"--{'positive' if not pos else 'negative'}: no texts (separate several with |)")
    engine, _ = _load(args)
    if args.layer >= engine.n_layers:
        raise BadInput(f"--layer {args.layer}: the model has {engine.n_layers} layers")
    d = directions.contrast(engine, args.layer, pos, neg, args.method)
    path = save_direction(args.out, d)
    print(f"saved a unit direction ({d.shape[0]} values, layer {args.layer}, {args.method}) to {path}")


def cmd_tui(args) -> None:
    from lenscope.app.tui import run_tui

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise BadInput("the TUI needs a terminal (stdin or stdout is not one); for scripts use "
                       "`lenscope generate` or `lenscope run`")

    run_tui(args)
