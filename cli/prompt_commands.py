"""Commands on one prompt: the TUI, `generate`, `score`, `attention`, `logit-lens`, `geometry`,
`heads` and `direction`."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from lenscope.cli.common import (
    LENS_HELP,
    add_json,
    add_model,
    add_prompt,
    add_setting,
    add_shard,
    emit,
    int_range,
    load_engine,
    marks_of,
    model_prompt_of,
    variants_of,
    warn,
)
from lenscope.errors import BadInput
from lenscope.lenses import words
from lenscope.reports.terminal import print_comparison, print_geometry, print_logit_lens
from lenscope.tui.launch import run_tui, session_model


def add_tui(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tui", help="the terminal app (default)")
    p.set_defaults(func=cmd_tui)
    add_model(p)
    add_prompt(p, required=False)
    p.add_argument("--session", metavar="FILE", help="open a session saved from the TUI (ctrl+s; a .json file)")
    p.add_argument("--lens", action="append", default=[], metavar="SPEC", help=LENS_HELP)


def cmd_tui(args) -> None:
    args.model, args.model_note = session_model(args.session, args.model)  # a session brings its model
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise BadInput("the TUI needs a terminal (stdin or stdout is not one); for scripts use "
                       "`lenscope generate` or `lenscope run`")

    run_tui(args)


def add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="one comparison: baseline row + one row per --lens")
    p.set_defaults(func=cmd_generate)
    add_model(p)
    add_shard(p)
    add_prompt(p, required=True)
    p.add_argument("--lens", action="append", default=[], metavar="SPEC", help=LENS_HELP)
    for name in ("max_tokens", "temperature", "seed"):
        add_setting(p, name)
    p.add_argument("--capture-attention", action="store_true", help="add each row's attention (mean over layers and heads) to the output")
    add_json(p, "comparison")


def cmd_generate(args) -> None:
    from lenscope.core.engine import Request  # lazy: blas

    if not args.prompt.strip():
        raise BadInput("--prompt: empty")
    variants = variants_of(args.lens)
    engine, load_s = load_engine(args)
    prompt, region = model_prompt_of(engine, args)
    marks = marks_of(engine, prompt, args, region)
    run = engine.compare(Request(prompt, variants, marks, args.max_tokens, args.temperature, args.seed),
                         capture=args.capture_attention)
    warn(run.warnings)
    result = run.run()
    result.timing = {"load_s": load_s, **result.timing}
    if args.capture_attention:
        from lenscope.core.capture import attention_summary  # lazy: blas

        result.attention = attention_summary(engine, result, run.variants)
    if args.json:
        emit(result.to_json())
        return

    print_comparison(result)


def add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="log-probability of a continuation after the prompt, per row")
    p.set_defaults(func=cmd_score)
    add_model(p)
    add_prompt(p, required=True)
    p.add_argument("--continuation", required=True, help="the text to score after the prompt")
    p.add_argument("--lens", action="append", default=[], metavar="SPEC", help=LENS_HELP)
    add_json(p, "score")


def cmd_score(args) -> None:
    from lenscope.core.logprob import score  # lazy: blas

    variants = variants_of(args.lens)
    engine, _ = load_engine(args)
    prompt, region = model_prompt_of(engine, args)
    marks = marks_of(engine, prompt, args, region)
    _, c_ids, rows = score(engine, prompt, args.continuation, variants, marks)
    tokens = [engine.token_text(i) for i in c_ids]
    data = {"model": engine.loaded.name, "prompt": prompt, "continuation": args.continuation,
            "rows": [r.to_json(c_ids, tokens) for r in rows]}
    if args.json:
        emit(data)
        return
    print(f"log p({args.continuation!r} | prompt), {len(c_ids)} tokens, natural log")
    for row in data["rows"]:
        total = "-inf" if row["logprob"] is None else f"{row['logprob']:.4f}"
        print(f"  {row['name']}: {total}")


def add_attention(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("attention", help="attention matrix of one layer (mean over heads unless --head)")
    p.set_defaults(func=cmd_attention)
    add_model(p)
    add_shard(p)
    add_prompt(p, required=True)
    p.add_argument("--layer", type=int_range(-1024, 1023, "--layer"), default=-1,
                   help="the block, 0-based (negative: from the end)")
    p.add_argument("--head", type=int_range(0, 1023, "--head"), default=None,
                   help="one head, 0-based (default: the mean over heads)")
    p.add_argument("--lens", action="append", default=[], metavar="SPEC", help="one lens stack applied while capturing: kind:key=value,... (+ stacks lenses) or a lens file")
    add_json(p, "attention")


def cmd_attention(args) -> None:
    if not args.prompt.strip():
        raise BadInput("--prompt: empty")
    if len(args.lens) > 1:
        raise BadInput(f"--lens given {len(args.lens)} times; attention shows one stack (join lenses with +)")
    variants = variants_of(args.lens)
    if len(variants) > 1:
        raise BadInput(f"--lens '{args.lens[0]}': holds {len(variants)} variants; attention takes one")
    engine, _ = load_engine(args)
    prompt, region = model_prompt_of(engine, args)
    ids = engine.encode(prompt)
    marks = marks_of(engine, prompt, args, region)
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
        emit({"model": engine.loaded.name, "layer": layer, "head": args.head, "heads": int(probs.shape[0]),
               "tokens": tokens, "token_ids": ids, "marked_token_indices": marks,
               "lens": variants[0].normalized() if variants else None,
               "matrix": [[round(float(x), 6) for x in row] for row in matrix]})
        return

    from lenscope.views.heatmap import Heatmap  # lazy: startup

    Console().print(Heatmap(matrix, tokens, tokens, marked=marks,
                            title=f"layer {layer}, {'head ' + str(args.head) if args.head is not None else 'mean of heads'}"))


def add_logit_lens(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("logit-lens", help="per layer and position, the token the model would predict there")
    p.set_defaults(func=cmd_logit_lens)
    add_model(p)
    add_shard(p)
    add_prompt(p, required=True)
    p.add_argument("--lens", action="append", default=[], metavar="SPEC", help=LENS_HELP)
    for name in ("max_tokens", "temperature", "seed"):
        add_setting(p, name)
    p.add_argument("--positions", default="prompt", metavar="prompt|last|all|I,J,...",
                   help="which positions of prompt + output to decode: prompt = the last prompt token (it chose "
                        "the first output token); last = the final token; all; or 0-based indices")
    p.add_argument("--top-k", type=int_range(1, 50, "--top-k"), default=5, help="tokens shown per layer and position")
    p.add_argument("--pin", action="append", default=[], metavar="TOKEN",
                   help="follow this token's probability across layers (its first token; repeatable)")
    add_json(p, "logit-lens")


def cmd_logit_lens(args) -> None:
    from lenscope.views.logit_lens import logit_lens_json  # lazy: blas

    engine, result, caps = _compare_and_capture(args)
    pinned = []
    for text in args.pin:
        pinned.append(words.word_ids(engine.tokenizer, text, "--pin")[0])
    rows = [logit_lens_json(engine, c, _positions(args.positions, len(c.ids), c.prompt_len), args.top_k, pinned) for c in caps]
    data = {"model": engine.loaded.name, "layers": engine.n_layers, "prompt_len": len(result.prompt_token_ids),
            "rows": rows}
    if args.json:
        emit(data)
        return

    print_logit_lens(data)


def add_geometry(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("geometry", help="per layer and position, how far each row's hidden states are from the baseline's")
    p.set_defaults(func=cmd_geometry)
    add_model(p)
    add_prompt(p, required=True)
    p.add_argument("--lens", action="append", default=[], metavar="SPEC", help=LENS_HELP)
    for name in ("max_tokens", "temperature", "seed"):
        add_setting(p, name)
    p.add_argument("--layer", default="-1", metavar="L",
                   help="the states the PCA reads: the output of block L (as lens layers= count), negative = "
                        "from the end, emb = the token embeddings")
    add_json(p, "geometry")


def cmd_geometry(args) -> None:
    from lenscope.views.hidden_states import geometry_json  # lazy: blas

    n = None
    if args.layer != "emb":
        try:
            n = int(args.layer)
        except ValueError:
            raise BadInput(f"--layer {args.layer!r}: a block number (negative: from the end) or emb") from None
    engine, _, caps = _compare_and_capture(args)
    blocks = engine.n_layers
    if n is not None and not -blocks <= n < blocks:
        raise BadInput(f"--layer {n}: the model has {blocks} blocks (0..{blocks - 1}, negative from the end, or emb)")
    index = 0 if n is None else n % blocks + 1  # hidden state l + 1 is block l's output
    data = {"model": engine.loaded.name, **geometry_json(caps, index)}
    if args.json:
        emit(data)
        return

    print_geometry(data)


def add_heads(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("heads", help="head roles measured on the model: previous-token, induction, attention sink")
    p.set_defaults(func=cmd_heads)
    add_model(p)
    add_shard(p)
    p.add_argument("--length", type=int_range(4, 512, "--length"), default=32,
                   help="length of the random sequence that is repeated")
    add_setting(p, "seed", help="seed of the random token sequence")
    add_json(p, "heads")


def cmd_heads(args) -> None:
    from lenscope.views import head_roles  # lazy: startup

    engine, _ = load_engine(args)
    roles = head_roles.measure(engine, args.length, args.seed)
    data = {"model": engine.loaded.name, "layers": engine.n_layers, "heads": engine.n_heads, **roles.to_json()}
    if args.json:
        emit(data)
        return
    for role in head_roles.ROLES:
        heads = roles.heads(role)
        shown = ", ".join(f"L{layer}.H{h} {roles.scores[role][layer, h]:.2f}" for layer, h in heads[:12])
        more = f" (+{len(heads) - 12} more)" if len(heads) > 12 else ""
        print(f"{role:>10}: {len(heads)} head(s) {shown}{more}")


def add_direction(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("direction", help="compute a steering direction from contrast prompts and save it")
    p.set_defaults(func=cmd_direction)
    add_model(p)
    p.add_argument("--positive", required=True, help="texts for the + side, separated by | (paired with --negative in order; quote the argument)")
    p.add_argument("--negative", required=True, help="texts for the - side, separated by |")
    p.add_argument("--layer", type=int_range(0, 1023, "--layer"), required=True,
                   help="the block (0-based) whose output, the residual stream, the texts are read at")
    p.add_argument("--method", choices=["mean", "pca"], default="mean",
                   help="mean: the mean of the paired (positive - negative) differences; pca: their first principal "
                        "component (as repeng)")
    p.add_argument("--out", required=True, help="a .npy or .safetensors file (a steer lens reads it: steer:file=PATH)")


def cmd_direction(args) -> None:
    from lenscope.lenses import directions  # lazy: blas
    from lenscope.storage.files import check_writable, save_direction  # lazy: blas

    if not args.out.endswith((".npy", ".safetensors")):
        raise BadInput(f"--out '{args.out}': use .npy or .safetensors")
    check_writable(args.out, f"--out '{args.out}'")  # before computing anything
    pos = [t for t in args.positive.split("|") if t.strip()]
    neg = [t for t in args.negative.split("|") if t.strip()]
    if not pos or not neg:
        raise BadInput(f"--{'positive' if not pos else 'negative'}: no texts (separate several with |)")
    engine, _ = load_engine(args)
    if args.layer >= engine.n_layers:
        raise BadInput(f"--layer {args.layer}: the model has {engine.n_layers} layers")
    d = directions.contrast(engine, args.layer, pos, neg, args.method)
    path = save_direction(args.out, d)
    print(f"saved a unit direction ({d.shape[0]} values, layer {args.layer}, {args.method}) to {path}")


def _compare_and_capture(args):
    """The comparison `generate` would run, then each row captured for the views."""
    from lenscope.core.capture import capture_rows  # lazy: blas
    from lenscope.core.engine import Request  # lazy: blas

    if not args.prompt.strip():
        raise BadInput("--prompt: empty")
    variants = variants_of(args.lens)
    engine, _ = load_engine(args)
    prompt, region = model_prompt_of(engine, args)
    marks = marks_of(engine, prompt, args, region)
    run = engine.compare(Request(prompt, variants, marks, args.max_tokens, args.temperature, args.seed), capture=True)
    warn(run.warnings)
    result = run.run()
    return engine, result, capture_rows(engine, result, run.variants)


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
