"""What the commands share: a parser that fails in one line, flags checked like lens values,
loading the model, the prompt and its marks, and JSON on stdout."""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from rich.console import Console

from lenscope.core.records import SCHEMA_VERSION
from lenscope.core.settings import SETTINGS
from lenscope.errors import BadInput
from lenscope.lenses.params import Param
from lenscope.storage.datafile import dumps

if TYPE_CHECKING:  # imported when a command runs: MLX loads after the BLAS re-exec
    from lenscope.core.engine import Engine


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each option's help says its default, unless it has none to say (not given, off, empty);
    descriptions and epilogs keep their lines."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "%(default)" in text or default is None or default is False or default == [] \
                or default is argparse.SUPPRESS or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"

    def _split_lines(self, text: str, width: int) -> list[str]:  # a path or name is never cut at its hyphen
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kw: Any) -> None:
        kw.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kw)

    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse prints usage too)
        # main prefixes "lenscope: "; a subcommand's parser names itself after it
        where = self.prog.removeprefix("lenscope").strip()
        raise BadInput(f"{where}: {message}" if where else message)


def checked(param, what: str):
    """An argparse type: a value checked by a `Param`, like every lens value."""

    def conv(text: str):
        try:
            return param.parse(text, "", label=what)
        except BadInput as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return conv


def int_range(lo: int, hi: int, what: str):
    return checked(Param(what, "int", None, "", lo, hi), what)


def add_setting(p: argparse.ArgumentParser, name: str, **kw: Any) -> None:
    """A generation setting's flag: type, range and default from core/settings.py, so the CLI,
    the TUI, experiments and sessions share them."""
    param = SETTINGS[name]
    flag = "--" + name.replace("_", "-")
    kw.setdefault("help", param.help)
    p.add_argument(flag, type=checked(param, flag), default=param.default, **kw)


def token_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--mark-tokens must be integers separated by commas, got '{text}'") from None


LENS_HELP = ("a lens spec, kind:key=value,... (`lenscope lenses` lists them; + stacks lenses), or a lens "
             "file (.toml/.json); repeatable: a row each")


def add_json(p: argparse.ArgumentParser, schema: str) -> None:
    p.add_argument("--json", action="store_true",
                   help=f"print JSON instead (its shape: docs/json/{schema}.schema.json)")


def add_model(p: argparse.ArgumentParser) -> None:
    from lenscope.models.sources import NAMED  # lazy: blas

    p.add_argument("--model", metavar="MODEL",
                   help="an mlx-lm model folder, a hub id (owner/name, from the hub cache), a .gguf file, or a "
                        f"named model ({', '.join(NAMED)}; fetched once); default: the bundled demo model")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="let a model folder's own Python code (auto_map) run; never without this flag")
    p.add_argument("--precision", choices=["auto", "native", "float32", "bfloat16", "float16"], default="auto",
                   help="native: the weights as stored; float32/bfloat16/float16: a quantized model dequantized "
                        "once; auto: on a CPU, the fastest of native, float32 and bfloat16 measured on the model's "
                        "own layers at load (doctor shows the times); native on a GPU")


def add_prompt(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--prompt", required=required, help="the prompt text")
    p.add_argument("--chat", action="store_true",
                   help="wrap the prompt in the model's chat template (marks are searched in your text only)")
    p.add_argument("--system", default=None, metavar="TEXT", help="a system message (with --chat)")
    p.add_argument("--mark", action="append", default=[], metavar="TEXT",
                   help="mark as important every prompt token overlapping each occurrence of TEXT (emphasis "
                        "lenses act on marks; attention on them is measured); repeatable")
    p.add_argument("--mark-tokens", type=token_list, default=[], metavar="I,J,...",
                   help="mark prompt tokens by 0-based index")


def emit(data: dict[str, Any]) -> None:
    """stdout JSON, versioned (docs/json: `schema_version`): standard JSON only (NaN/inf as
    null), see storage/datafile.py."""
    print(dumps({"schema_version": SCHEMA_VERSION, **data}))


def warn(warnings: Sequence[str]) -> None:
    for w in warnings:
        print(f"lenscope: warning: {w}", file=sys.stderr)


def add_shard(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shard", choices=["data", "tensor"], default="data",
                   help="under mlx.launch: data = each process loads the whole model (run, search: and takes a "
                        "share of the work); tensor = the model is split across the processes (heads and MLP "
                        "columns, the model's own shard()), each runs every row, process 0 prints and writes")


def load_engine(args) -> tuple[Engine, float]:
    from lenscope import models  # lazy: blas
    from lenscope.core.engine import Engine  # lazy: blas

    t = time.perf_counter()
    if getattr(args, "shard", "data") == "tensor":
        return _load_split(args), time.perf_counter() - t
    loaded = models.load(args.model, trust_remote_code=args.trust_remote_code, precision=args.precision,
                         progress=progress_printer())
    return Engine(loaded), time.perf_counter() - t


def _load_split(args) -> Engine:
    """The model split across the processes of an mlx.launch (core/tensor_parallel.py).
    Loaded lazily and split before it is evaluated a block at a time, so a process never
    holds more than its slice and one block. A process that cannot load stops them all,
    named by rank 0; so does a model that cannot be split, before any weight is read."""
    import mlx.core as mx  # lazy: blas

    from lenscope import models  # lazy: blas
    from lenscope.batch.distributed import tensor_world  # lazy: blas
    from lenscope.core import tensor_parallel  # lazy: blas
    from lenscope.core.engine import Engine  # lazy: blas
    from lenscope.models.loading import apply_precision  # lazy: blas

    here = tensor_world()
    split = tensor_parallel.TensorSplit(here.rank, here.size, here.group)
    with tensor_parallel.agreed(split):
        loaded = models.load(args.model, trust_remote_code=args.trust_remote_code, progress=progress_printer(),
                             lazy=True)
        tensor_parallel.check_shardable(loaded.model, here.size)
    apply_precision(loaded, args.precision, agree=lambda measured: here.gather([measured])[0], processes=here.size)
    tensor_parallel.shard(loaded.model, split)
    for layer in loaded.model.layers:  # each process's slice, read (and converted) now, a block at a time
        mx.eval(layer.parameters())
    mx.eval(loaded.model.parameters())
    return Engine(loaded)


def progress_printer(stream=None):
    """Loading messages on stderr; on a terminal a conversion's bar redraws one line."""
    stream = stream or sys.stderr
    tty = stream.isatty()
    pending = [False]  # a bar line is on screen without its newline

    def say(message: str) -> None:
        bar = tty and message.startswith("converting [")
        if pending[0] and not bar:
            print(file=stream)
        start = "\r" if bar else ""
        print(f"{start}lenscope: {message}", end="" if bar else "\n", file=stream, flush=True)
        pending[0] = bar

    return say


def model_prompt_of(engine: Engine, args) -> tuple[str, tuple[int, int] | None]:
    """The text the model reads and where the user's own text sits in it (None: all of it)."""
    if not args.prompt.strip():
        raise BadInput("--prompt: empty")
    if args.system is not None and not args.chat:
        raise BadInput("--system needs --chat")
    from lenscope.chat.templates import model_prompt  # lazy: blas

    return model_prompt(engine.tokenizer, args.prompt, args.chat, args.system)


def marks_of(engine: Engine, prompt: str, args, region: tuple[int, int] | None = None) -> list[int]:
    ids = engine.encode(prompt)
    marks = engine.tokens.marks_from_text(prompt, ids, args.mark, region) if args.mark else []
    return sorted(set(marks) | set(engine.tokens.check_marks(args.mark_tokens, len(ids))))


def variants_of(specs: Sequence[str]):
    from lenscope.lenses.spec import parse  # lazy: blas

    return [v for s in specs for v in parse(s)]


def stderr_console():
    return Console(stderr=True)
