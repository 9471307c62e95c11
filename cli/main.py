"""`lenscope`: parse the command line (docs/guide/cli.md; JSON shapes in docs/json) and run one
command; bad input is one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from lenscope.cli import batch_commands, info_commands, prompt_commands
from lenscope.cli.common import Parser
from lenscope.errors import BadInput, one_line

# In the order `lenscope --help` lists them.
COMMANDS = [
    prompt_commands.add_tui, prompt_commands.add_generate, prompt_commands.add_score, prompt_commands.add_attention,
    prompt_commands.add_logit_lens, prompt_commands.add_geometry, prompt_commands.add_heads,
    batch_commands.add_run, batch_commands.add_search, batch_commands.add_tree, batch_commands.add_diff,
    batch_commands.add_fit,
    info_commands.add_models, info_commands.add_lenses, info_commands.add_doctor, info_commands.add_measure,
    prompt_commands.add_direction, info_commands.add_bench,
]


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(prog="lenscope", description="Watch a local language model think, and bend it at inference time.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for add in COMMANDS:
        add(sub)
    # `lenscope` alone, or with options only, is the TUI: say which options it takes
    tui_options = sub.choices["tui"].format_help().split("options:\n", 1)[1].split("\n", 1)[1]  # not -h
    ap.epilog = ("With no command (or `tui`), lenscope starts the terminal app, which takes:\n" + tui_options
                 + "\n`lenscope COMMAND --help` for a command's options; JSON shapes: docs/json/ in the repository.")
    return ap


def main(argv: Sequence[str] | None = None) -> None:
    _quiet_transformers()
    if argv is None:
        from lenscope.models.blas import maybe_reexec_with_openblas  # lazy: blas

        maybe_reexec_with_openblas(sys.argv[1:])
        argv = sys.argv[1:]
    argv = list(argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["tui", *argv]  # `lenscope --model M` starts the TUI
    try:
        _check_utf8(argv)
        args = build_parser().parse_args(argv)
        if getattr(args, "shard", None) == "tensor":  # from here on only rank 0 prints (distributed.py)
            from lenscope.batch.distributed import tensor_world  # lazy: blas

            tensor_world()
        args.func(args)
    except BadInput as exc:  # one line, whatever the input held (escapes, newlines, bad unicode)
        split = sys.modules.get("lenscope.batch.distributed")
        if split is not None and split.tensor_launch():
            split.end_on_refusal(one_line(str(exc)))
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
