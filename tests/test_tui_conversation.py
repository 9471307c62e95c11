"""Conversation mode in the TUI: each run is the next turn, marks on turn 1 hold over the
turns that follow, a tracked concept is drawn and measured, the kept row can change, and a
saved conversation reopens as it was."""

import io

from rich.console import Console
from textual.widgets import Checkbox, TextArea
from tui_helpers import app, messages, ready

from lenscope.chat.conversation import Mark
from lenscope.tui.compose.token_chips import TokenChips
from lenscope.tui.talk.conversation_panel import ConversationPanel, fade_text, transcript_text


async def send(pilot, text: str) -> None:
    a = pilot.app
    a.main.query_one("#prompt", TextArea).text = text
    await pilot.pause()
    await pilot.press("ctrl+r")
    await a.workers.wait_for_complete()
    await pilot.pause()
    await a.workers.wait_for_complete()  # the capture that follows a keep-mode turn
    await pilot.pause()


def panel_text(a) -> str:
    """The conversation tab as a person reads it: header, fade chart and transcript."""
    panel = a.main.query_one(ConversationPanel)
    console = Console(width=100, record=True, file=io.StringIO())
    console.print(panel._header())
    console.print(fade_text(panel.conv, panel.span_index, 90))
    console.print(transcript_text(panel.conv))
    return console.export_text()


async def test_five_turns_with_a_mark_in_turn_one(tmp_path):
    a = app(prompt="the key is blue.", lens_specs=["emphasis:strength=3"])
    async with a.run_test(size=(100, 34)) as pilot:
        await ready(pilot)
        a.main.query_one("#max-tokens").value = "4"
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert a.ws.conversation is not None and a.ws.chat
        assert a.main.query_one("#conversation-mode", Checkbox).value
        # mark 'blue' in the first user message (the pending prompt)
        blue = next(i for i, t in enumerate(a.ws.prompt_tokens) if t.strip() == "blue" and i not in a.ws.template_tokens)
        a.main.query_one(TokenChips).set_marks({blue})
        await pilot.pause()
        await send(pilot, "the key is blue.")
        assert not messages(a) or "error" not in " ".join(messages(a))
        conv = a.ws.conversation
        assert len(conv.turns) == 1 and conv.marks == [Mark(0, 11, 15)]
        assert a.main.query_one("#prompt", TextArea).text == ""
        for user in ("what colour is it?", "and the door?", "where is tom?", "say the colour again"):
            await send(pilot, user)
        assert len(conv.turns) == 1  # the worker ran each turn on a copy: what was on screen never changed
        conv = a.ws.conversation
        assert len(conv.turns) == 5 and [t["user"] for t in conv.turns][1] == "what colour is it?"
        # the mark held: it is measured at every turn, and still on 'blue' in the tokens shown
        assert all(t["spans"] == ["turn 1: 'blue'"] for t in conv.turns)
        assert [a.ws.prompt_tokens[i].strip() for i in sorted(a.ws.marks)] == ["blue"]
        distances = [t["rows"][0]["distances"][0] for t in conv.turns]
        assert distances == sorted(distances) and len(set(distances)) == 5
        text = panel_text(a)
        assert "user 5: say the colour again" in text and "share of attention on turn 1: 'blue'" in text
        # the lens row emphasised the mark more than the baseline at every turn
        assert all(t["rows"][1]["shares"][0] > t["rows"][0]["shares"][0] for t in conv.turns)

        # track a concept from the conversation tab
        await pilot.press("f9")
        await pilot.press("t")
        await pilot.pause()
        await pilot.press(*"key", "enter")
        await pilot.pause()
        assert conv.concepts == ["key"] and a.ws.tracked
        assert all(a.ws.prompt_tokens[i].strip().lower() == "key" for i in a.ws.tracked)
        # keep the lens row's reply instead: the last assistant message changes to it
        await pilot.press("k")
        await pilot.pause()
        assert conv.keep == 1 and conv.messages[-1].text == conv.turns[-1]["rows"][1]["text"]

        # save and reopen: the same conversation, marks and tracked concept
        path = tmp_path / "talk.json"
        await pilot.press("ctrl+s")
        await pilot.pause()
        dialog = a.screen.query_one("Input")
        dialog.value = str(path)
        await pilot.press("enter")
        await pilot.pause()
        saved = conv.to_json()
        await pilot.press("ctrl+n")  # off: a plain comparison again
        await pilot.pause()
        assert a.ws.conversation is None
        a.sessions.open(str(path))
        await a.workers.wait_for_complete()
        await pilot.pause()
        assert a.ws.conversation is not None and a.ws.conversation.to_json() == saved
        assert a.main.query_one("#conversation-mode", Checkbox).value


async def test_branches_mode_gives_each_row_its_own_history():
    a = app(prompt="hello", lens_specs=["bias:words=mia,value=8"])
    async with a.run_test(size=(100, 34)) as pilot:
        await ready(pilot)
        a.main.query_one("#max-tokens").value = "4"
        await pilot.press("ctrl+n")
        await pilot.pause()
        a.action_branches()
        await send(pilot, "the key is blue.")
        await send(pilot, "what colour is it?")
        conv = a.ws.conversation
        assert conv.mode == "branches" and len(conv.turns) == 2
        assert conv.branches[1][1].text == conv.turns[0]["rows"][1]["text"] != conv.branches[0][1].text
        assert [r.name for r in a.ws.result.rows] == ["baseline", "bias:words=mia,value=8"]
        a.action_branches()  # too late to change
        await pilot.pause()
        assert any("set before the first turn" in m for m in messages(a)), messages(a)
        assert a.ws.conversation.mode == "branches"


async def test_chat_stays_on_while_a_conversation_is_on():
    a = app(prompt="hello")
    async with a.run_test(size=(100, 34)) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+n")
        await pilot.pause()
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert a.ws.chat and a.ws.conversation is not None
        assert a.main.query_one("#chat", Checkbox).value
        assert any("needs the chat template" in m for m in messages(a))
        await pilot.press("ctrl+n", "ctrl+t")  # conversation off first: then chat can go
        await pilot.pause()
        assert not a.ws.chat and a.ws.conversation is None
