"""Help that says what works (and outputs that say what they mean): every option explains itself and its default, `--model` names
every kind of model it takes, `lenscope --help` shows the TUI's options, errors carry one
prefix, and `lenscope models` has a header."""

from __future__ import annotations

import argparse
import html
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lenscope.cli.main import build_parser


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
    (["nosuch"], "lenscope: argument COMMAND: invalid choice: 'nosuch'"),
])
def test_errors_carry_one_prefix(run_cli, args, message):
    code, _out, err = run_cli(*args)
    assert code == 2 and err.startswith(message) and err.count("lenscope:") == 1


def test_models_prints_a_header_row(run_cli):
    _code, out, _ = run_cli("models")
    header, first, *_ = out.splitlines()
    assert header.split() == ["MODEL", "(--model)", "KIND", "SIZE", "STATE", "PATH"]
    assert first.split()[0] == "lenscope-demo"


# -- terminal and report outputs as informative as the HTML -------------------------------------

def test_piped_tree_marks_the_best_leaves_in_words(run_cli):
    code, out, _ = run_cli("tree", "--prompt", "the key is blue. the key is", "--budget", "10", "--beam", "2")
    assert code == 0 and "\x1b[" not in out  # piped: no colour
    assert "★ best 1" in out and "★ best 2" in out and "★ best 3" not in out


@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40))
@settings(max_examples=200, deadline=None)
def test_markdown_shows_text_as_written(text):
    """What md_escape writes renders (CommonMark, markdown-it) to the text itself on one line:
    no HTML, no emphasis or links, and no entities left in the file for <, > or &."""
    from markdown_it import MarkdownIt

    from lenscope.reports.markdown import md_escape

    escaped = md_escape(text)
    assert "&lt;" not in escaped and "\n" not in escaped
    rendered = html.unescape(MarkdownIt("commonmark").renderInline(escaped))
    assert rendered == re.sub(r"\s*[\r\n]+\s*", " ", text).replace("\x00", "\ufffd")


def test_report_md_shows_a_chat_prompt_as_its_tokens(run_cli, tmp_path):
    exp = tmp_path / "chat.toml"
    exp.write_text('[[comparison]]\nname = "c"\nprompt = "hi"\nchat = true\nmax_tokens = 2\n')
    code, _, err = run_cli("run", str(exp), "--out", str(tmp_path / "out"), "--model", "lenscope-demo")
    assert code == 0, err
    md = (tmp_path / "out" / "report.md").read_text()
    prompt = next(line for line in md.splitlines() if line.startswith("Prompt: "))
    assert "&lt;" not in md and "\\<" in prompt


def test_long_row_names_wrap_in_the_html_report():
    from lenscope.reports.html import CSS

    assert "overflow-wrap:anywhere" in CSS and "minmax(min(18em,100%),1fr)" in CSS and "min-width:0" in CSS
