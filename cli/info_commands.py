"""Commands about the installation and lenscope itself: `models`, `lenses`, `doctor`, `measure`,
`bench`."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from lenscope.cli.common import add_json, add_model, emit, int_range, load_engine
from lenscope.errors import BadInput, one_line, user_path
from lenscope.storage.datafile import dumps


def add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the models: bundled, named (fetched or not), converted and hub-cached")
    p.set_defaults(func=cmd_models)
    add_json(p, "models")


def cmd_models(args) -> None:
    from lenscope.models.sources import list_models  # lazy: blas

    found = list_models()
    if args.json:
        emit({"models": found})
        return

    print(f"{'MODEL (--model)':<24} {'KIND':<8} {'SIZE':>12}  {'STATE':<5}  PATH")
    for m in found:  # names and paths come from folders and files: escaped, never raw to the terminal
        name, path = one_line(str(m["name"])), one_line(str(m["path"]))
        state = "ready" if m["available"] else "not fetched (--model " + name + " fetches it)"
        print(f"{name:<24} {m['kind']:<8} {m['size_bytes'] / 2**20:8.1f} MiB  {state:<5}  {path}")
        if "architecture" in m:  # a GGUF in another program's store: what its header says
            arch = one_line(str(m["architecture"] or "?"))
            print(f"{'':<24} {arch}, {one_line(str(m['quantization']))}, {m['parameters'] / 1e9:.2f}B parameters")


def add_lenses(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lenses", help="list the lens kinds, their parameters, defaults and ranges")
    p.set_defaults(func=cmd_lenses)
    add_json(p, "lenses")


def cmd_lenses(args) -> None:
    from lenscope.lenses.registry import describe  # lazy: blas

    kinds = describe()
    if args.json:
        emit({"kinds": kinds})
        return
    for k in kinds:
        print(f"{k['kind']}: {k['summary']}")
        for p in k["params"]:
            rng = f" [{p['min']:g}, {p['max']:g}]" if "min" in p else ""
            choices = f" one of {'|'.join(p['choices'])}" if "choices" in p else ""
            print(f"  {p['name']} ({p['type']}, default {p['default']!r}){rng}{choices}: {p['help']}")


def add_doctor(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check the platform, MLX backend, BLAS, kernel self-tests and a model")
    p.set_defaults(func=cmd_doctor)
    add_model(p)
    p.add_argument("--remeasure", action="store_true",
                   help="forget every kept --precision auto choice, then measure this model's again")
    add_json(p, "doctor")


def cmd_doctor(args) -> None:
    from lenscope.lab.doctor import render, report  # lazy: blas

    if args.remeasure:
        from lenscope.models.precision_choice import forget  # lazy: blas

        forget()
    rep = report(args.model, args.precision)
    emit(rep) if args.json else print(render(rep))
    if not rep["model"].get("loads"):  # the report is still useful; the failing input gets its line
        raise BadInput(rep["model"].get("error") or f"model '{rep['model']['name']}': does not load")


def add_measure(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("measure", help="measure lens effects: recall/attribute (bundled model), counterfact/mood/patch (real ones)")
    p.set_defaults(func=cmd_measure)
    add_model(p)
    p.add_argument("what", choices=["recall", "attribute", "counterfact", "mood", "patch"],
                   help="recall/attribute: the demo model's episodes; counterfact/mood/patch: English prompt "
                        "sets for real models")
    p.add_argument("--lens", action="append", default=[], metavar="SPEC",
                   help="lens rows to compare with the baseline, specs or files, repeatable (default: emphasis for recall "
                        "and counterfact, steering for attribute; mood needs them)")
    p.add_argument("--n", type=int_range(1, 10000, "--n"), default=None, help="episodes or samples per row (default: 40 recall, 24 attribute, 48 counterfact/patch, 40 mood)")
    p.add_argument("--distances", default=None, help="numbers of filler sentences between fact and question, comma-separated, e.g. 0,4,8,16 "
                        "(default: 0,2,4,8,12,16,20 for recall, 0 for counterfact)")
    p.add_argument("--chat", action="store_true", help="counterfact/patch: use the chat template (mood always does)")
    add_json(p, "measure")


def cmd_measure(args) -> None:
    from lenscope.lab import measure  # lazy: blas

    try:
        distances = [int(x) for x in args.distances.split(",")] if args.distances else None
    except ValueError:
        raise BadInput(f"--distances must be integers separated by commas, got '{args.distances}'") from None
    if args.what in ("counterfact", "mood", "patch"):
        return _measure_real(args, distances)
    engine, _ = load_engine(args)
    if args.what == "recall":
        distances = distances or measure.DISTANCES
        specs = args.lens or ["emphasis:strength=2", "emphasis:strength=4"]
        rep = measure.recall(engine, specs, distances, n=args.n or 40)
        emit({"what": args.what, "model": engine.loaded.name, **rep}) if args.json else print(measure.render_recall(rep))
    else:
        specs = args.lens or [measure.STEER_SPEC, measure.STEER_SPEC.replace("strength=30", "strength=-30")]
        rep = measure.attribute(engine, specs, n=args.n or 24)
        emit({"what": args.what, "model": engine.loaded.name, **rep}) if args.json \
            else print(measure.render_attribute(rep))


def add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="time lenscope against plain decoding: ratios (lenses, captures, rows) from one run")
    p.set_defaults(func=cmd_bench)
    add_model(p)
    p.add_argument("--tokens", type=int_range(4, 1024, "--tokens"), default=48, help="tokens generated per timed run")
    p.add_argument("--repeats", type=int_range(1, 20, "--repeats"), default=3,
                   help="timed runs per measurement (the best counts)")
    p.add_argument("--launch", type=int_range(2, 64, "--launch"), metavar="N",
                   help="time an 8-comparison experiment run by one process and by N under mlx.launch, instead of "
                        "the ratios")
    p.add_argument("--tensor", action="store_true",
                   help="with --launch: the N processes hold the model split between them (--shard tensor) and "
                        "each runs every comparison; also reports both runs' decode tokens/s")
    p.add_argument("--against", choices=["llama.cpp"], help="also time llama.cpp (llama-cpp-python) on the GGUF the "
                                                          "model was converted from, in the same run")
    p.add_argument("--convert", metavar="GGUF", help="time converting a GGUF file (seconds, peak RSS) instead; "
                                                     "'llama-1b' writes a synthetic Llama 3.2 1B-shaped Q4_K_M file")
    add_json(p, "bench")


def cmd_bench(args) -> None:
    from lenscope.lab.bench import launch_bench, render, render_launch, run_bench  # lazy: blas

    if args.tensor and not args.launch:
        raise BadInput("--tensor: times a launch; give --launch N too")
    if args.convert:
        from lenscope.lab import convert_bench  # lazy: blas

        with tempfile.TemporaryDirectory(prefix="lenscope-convert-") as tmp:
            src = user_path(args.convert, f"--convert '{args.convert}'")
            if args.convert == "llama-1b":
                print("lenscope: writing a synthetic Llama 3.2 1B-shaped Q4_K_M GGUF", file=sys.stderr)
                src = convert_bench.synthetic_llama(Path(tmp) / "llama-1b-Q4_K_M.gguf")
            elif not src.is_file():
                raise BadInput(f"--convert '{args.convert}': no such file (or 'llama-1b')")
            rep = convert_bench.convert_bench(src, Path(tmp) / "out")
        emit({"conversion": rep}) if args.json else print(convert_bench.render(rep))
        return
    if args.launch:
        rep = launch_bench(args.model, args.launch, args.tokens, tensor=args.tensor)
        emit(rep) if args.json else print(render_launch(rep))
        return
    engine, _ = load_engine(args)
    if args.against == "llama.cpp":
        from lenscope.lab.bench import llama_cpp_source  # lazy: blas

        llama_cpp_source(engine)  # refused now, not after minutes of measuring
    native = None
    if "dequantized" in engine.loaded.precision:  # also time the stored, quantized path
        from lenscope import models  # lazy: blas
        from lenscope.core.engine import Engine  # lazy: blas

        native = Engine(models.load(args.model, trust_remote_code=args.trust_remote_code, precision="native"))
    rep = run_bench(engine, tokens=args.tokens, repeats=args.repeats, native=native,
                    against_llama_cpp=args.against == "llama.cpp")
    emit(rep) if args.json else print(render(rep))


def _measure_real(args, distances: list[int] | None) -> None:
    from lenscope.lab import measure_real  # lazy: blas

    progress = (lambda m: print(f"\r{m}   ", end="", file=sys.stderr)) if sys.stderr.isatty() else None
    engine, _ = load_engine(args)
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

    emit({"what": args.what, "model": engine.loaded.name, **rep}) if args.json else print(dumps(rep, indent=1))
