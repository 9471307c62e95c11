"""Help that says what works: every option explains itself and its default, `--model` names
every kind of model it takes, `lenscope --help` shows the TUI's options, errors carry one
prefix, and `lenscope models` has a header."""

from __future__ import annotations

import argparse

import pytest

from lenscope.app.cli.main import build_parser


def commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_option_has_help_and_says_its_default(name):
    parser = commands()[name]
    text = " ".join(parser.format_help().split())
    for action in parser._actions:
        assert action.help, f"lenscope {name}: {action.dest} has no help"
        shown = action.default not in (None, [], argparse.SUPPRESS) and action.default is not False
        if action.option_strings and shown:
            assert f"(default: {action.default})" in text, f"lenscope {name} {action.option_strings[0]}: no default"
    if any(a.dest == "model" for a in parser._actions):
        model_help = " ".join(next(a for a in parser._actions if a.dest == "model").help.split())
        for kind in ("folder", "hub id", ".gguf", "smollm2", "bundled demo model"):
            assert kind in model_help, f"lenscope {name} --model help does not name {kind}"


def test_top_level_help_shows_the_tui_options(run_cli):
    code, out, _ = run_cli("--help")
    assert code == 0
    tail = out.split("starts the terminal app", 1)[1]
    for option in ("--model", "--session", "--prompt", "--mark", "--lens", "--chat"):
        assert option in tail


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "lenscope: unrecognized arguments: --bogus"),
    (["generate"], "lenscope: generate: the following arguments are required: --prompt"),
    (["nosuch"], "lenscope: argument command: invalid choice: 'nosuch'"),
])
def test_errors_carry_one_prefix(run_cli, args, message):
    code, out, err = run_cli(*args)
    assert code == 2 and err.startswith(message) and err.count("lenscope:") == 1


def test_models_prints_a_header_row(run_cli):
    code, out, _ = run_cli("models")
    header, first, *_ = out.splitlines()
    assert header.split() == ["MODEL", "(--model)", "KIND", "SIZE", "STATE", "PATH"]
    assert first.split()[0] == "lenscope-demo"
