"""Chat mode in the TUI: the template around the prompt, its tokens dimmed and
not markable, marks kept on the user's words, the header naming precision and template.

The demo model's template is a toy (`<|user|>TEXT\\n<|assistant|>`): chat is off by default
for it, and on here with ctrl+t."""

import json
from types import SimpleNamespace

from textual.command import CommandPalette
from textual.widgets import Checkbox, Input, TextArea
from textual.widgets.text_area import Selection
from tui_helpers import PROMPT, app, messages, ready

from lenscope.chat import templates as chat
from lenscope.tui.app import LenscopeApp
from lenscope.tui.compose.token_chips import TokenChips, chip_text


def marked_words(a):
    return sorted(a.ws.prompt_tokens[i] for i in a.ws.marks)


def user_start(a) -> int:
    """Index of the first token of the user's text in the templated prompt."""
    return min(set(range(len(a.ws.prompt_tokens))) - a.ws.template_tokens)


async def test_chat_toggle_dims_template_marks_user_tokens_and_runs_templated():
    a = app()
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        box = a.main.query_one("#chat", Checkbox)
        assert not a.ws.chat and not box.value and not box.disabled  # demo model: off, but it has a template
        assert "chat: <|user|>" in str(box.label)
        assert a.sub_title == "lenscope-demo · native · cpu · 4 layers"  # the precision that runs
        n_plain = len(a.ws.prompt_tokens)

        await pilot.press("ctrl+t")
        await pilot.pause()
        assert a.ws.chat and box.value and not a.main.query_one("#system", Input).disabled
        assert a.sub_title == "lenscope-demo · native · chat: <|user|> · cpu · 4 layers"
        templated = chat.apply(a.engine.tokenizer, PROMPT).text
        assert a.ws.model_text == templated
        assert a.ws.prompt_tokens[0] == "<|user|>" and a.ws.prompt_tokens[-1] == "<|assistant|>"
        assert {0, len(a.ws.prompt_tokens) - 1} <= a.ws.template_tokens
        assert len(a.ws.prompt_tokens) - len(a.ws.template_tokens) == n_plain  # the user's tokens, as before
        chips = a.main.query_one(TokenChips)
        assert chips.fixed == a.ws.template_tokens
        assert "template" in str(a.main.query_one("#tokens-label").render())

        # the template's tokens cannot be marked: space and a click say so and change nothing
        chips.focus()
        await pilot.press("home", "space")
        assert a.ws.marks == set() and any("chat template" in m for m in messages(a))
        await pilot.click(TokenChips, offset=(2, 0))  # on '<|user|>' (the chips have 1 cell of padding)
        assert a.ws.marks == set()

        # a user token: marked as today, stored as its index in the templated prompt
        blue = a.ws.prompt_tokens.index(" blue")
        await pilot.press(*["right"] * blue, "space")
        assert a.ws.marks == {blue} and blue >= user_start(a) > 0

        a.main.query_one("#max-tokens", Input).value = "3"
        await pilot.press("ctrl+r")
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        res = a.ws.result
        assert res.prompt == templated
        assert res.marked_token_indices == [blue] and res.prompt_tokens[blue] == " blue"
        assert res.prompt_token_ids == a.engine.encode(templated)


async def test_marks_follow_the_users_words_through_toggles_edits_and_system_text():
    a = app(marks=["blue"])
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        plain = set(a.ws.marks)
        assert marked_words(a) == [" blue"]
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert marked_words(a) == [" blue"] and a.ws.marks == {m + user_start(a) for m in plain}
        assert not [m for m in messages(a) if "could not be kept" in m]

        # an edit of the user's text: the mark stays on the same word (carry_marks)
        a.main.query_one("#prompt", TextArea).insert("once more, ", (0, 0))
        await pilot.pause()
        assert marked_words(a) == [" blue"] and a.ws.model_text.startswith("<|user|>once more, ")

        # a system message shifts everything: the mark moves with the word
        a.main.query_one("#system", Input).value = "be brief"
        await pilot.pause()
        assert "be brief" in a.ws.model_text and marked_words(a) == [" blue"]
        assert a.ws.model_text == chat.apply(a.engine.tokenizer, a.ws.prompt, "be brief").text
        # the system message's tokens are the template's: not markable
        brief = a.ws.prompt_tokens.index(" br")
        assert brief in a.ws.template_tokens

        await pilot.press("ctrl+t")
        await pilot.pause()
        assert not a.ws.chat and a.ws.template_tokens == set() and marked_words(a) == [" blue"]
        assert a.ws.model_text == a.ws.prompt
        assert "chat" not in a.sub_title


async def test_ctrl_k_in_chat_mode_marks_the_selected_user_tokens():
    a = app(chat=True)
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        assert a.ws.chat  # asked for: on even for the demo model
        area = a.main.query_one("#prompt", TextArea)
        start = PROMPT.index("blue")
        area.selection = Selection((0, 0), (0, start + 4))  # from the very start: no template token joins
        await pilot.press("ctrl+k")
        assert a.ws.marks and not a.ws.marks & a.ws.template_tokens
        assert "".join(a.ws.prompt_tokens[i] for i in sorted(a.ws.marks)) == PROMPT[: start + 4]


async def test_one_letter_prompt_and_system_from_the_constructor():
    """A prompt 'a' also occurs in '<|assistant|>': the user's span is still the user's text."""
    a = app(prompt="a", system="be brief")
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        assert a.ws.chat and a.main.query_one("#system", Input).value == "be brief"
        a_index = a.ws.prompt_tokens.index("a")
        assert set(range(len(a.ws.prompt_tokens))) - a.ws.template_tokens == {a_index}
        a.main.query_one(TokenChips).focus()
        await pilot.press("end", "space")
        assert a.ws.marks == set()  # '<|assistant|>' is the template's
        await pilot.press(*["left"] * (len(a.ws.prompt_tokens) - 1 - a_index), "space")
        assert a.ws.marks == {a_index}


async def test_palette_and_results_go_stale_on_toggle():
    a = app()
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        assert ("Toggle chat mode", "toggle_chat") in [(n, act) for n, act, _ in LenscopeApp.PALETTE]
        a.main.query_one("#max-tokens", Input).value = "2"
        await pilot.press("ctrl+r")
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        assert a.ws.result_inputs == a.ws.inputs_key()
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(a.screen, CommandPalette)
        await pilot.press(*"toggle chat")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert a.ws.chat and a.ws.result_inputs != a.ws.inputs_key()  # stale: the prompt the model reads changed
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert not a.ws.chat and a.ws.result_inputs == a.ws.inputs_key()


async def test_session_with_chat_on_saves_and_reopens(tmp_path):
    path = tmp_path / "s.json"
    a = app(marks=["blue"], chat=True, system="be brief")
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        chat_marks = sorted(a.ws.marks)
        a.main.query_one("#max-tokens", Input).value = "2"
        await pilot.press("ctrl+r")
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("ctrl+s")
        a.screen.query_one(Input).value = str(path)
        await pilot.press("enter")
        await pilot.pause()
        assert a.ws.chat  # saving changes nothing on screen
    data = json.loads(path.read_text())
    assert data["prompt"] == PROMPT and data["result"]["prompt"].startswith("<|assistant|>be brief")

    b = app(prompt="", session=str(path))
    async with b.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        assert b.ws.prompt == PROMPT and marked_words(b) == [" blue"]
        assert data["chat"] is True and data["system"] == "be brief" and data["marks"] == chat_marks
        assert b.ws.chat and b.main.query_one("#system", Input).value == "be brief"
        assert b.ws.result.prompt == data["result"]["prompt"]


def test_chat_on_by_default_only_for_chat_models():
    with_template = SimpleNamespace(chat_template="{{ messages }}")
    assert chat.suggests_chat(with_template, "smollm2")
    assert chat.suggests_chat(with_template, "org/Some-Model-Instruct")
    assert not chat.suggests_chat(with_template, "org/Some-Model-Base")
    assert not chat.suggests_chat(with_template, "lenscope-demo", demo=True)
    assert not chat.suggests_chat(SimpleNamespace(chat_template=None), "org/x-chat")


def test_move_marks_keeps_characters():
    old = [(0, 3), (3, 8), (8, 11)]  # "the blue sky" tokenized alone
    new = [(0, 8), (8, 11), (11, 16), (16, 19), (19, 30)]  # behind an 8-character template
    assert chat.move_marks({1}, old, 0, new, 8) == {2}
    assert chat.move_marks({0}, new, 8, old, 0) == set()  # a template token has nothing to go to
    assert chat.move_marks({9}, old, 0, new, 8) == set()


def test_chip_text_unchanged_for_template_tokens():
    assert chip_text("<|user|>") == "<|user|>" and chip_text("\n") == "⏎"
