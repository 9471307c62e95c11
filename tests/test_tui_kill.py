"""`kill -9` of the real TUI (a `lenscope` process on a pseudo-terminal) while editing, right
after ctrl+r, and in the middle of a conversation turn; the next launch offers what it held
and restores it (here the relaunch is driven with Pilot on the same recovery folder)."""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest
from tui_helpers import app, ready

from lenscope.tui.dialogs.choice_dialog import Choice

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")


class Terminal:
    """`lenscope ARGS` on a 100x30 pseudo-terminal; what it draws is read and dropped."""

    def __init__(self, cache: Path, *args: str) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        env = {**os.environ, "LENSCOPE_CACHE": str(cache), "TERM": "xterm-256color"}
        self.proc = subprocess.Popen([sys.executable, "-m", "lenscope", *args], stdin=slave, stdout=slave,
                                     stderr=slave, env=env, start_new_session=True)
        os.close(slave)
        self.seen = bytearray()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 1 << 16)
            except OSError:
                return
            if not chunk:
                return
            self.seen += chunk[-4096:]

    def send(self, keys: bytes, pause: float = 0.4) -> None:
        os.write(self.master, keys)
        time.sleep(pause)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        os.close(self.master)


def wait_for(check, seconds: float = 60.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def recovery_file(folder: Path, pid: int) -> Path:
    return folder / "recovery" / f"{pid}.json"


def holds(path: Path, text: str) -> bool:
    try:
        return text in path.read_text(encoding="utf-8")
    except OSError:
        return False


async def restored(cache: Path):
    """Relaunch on the same recovery folder, press r on the offer: the app it restored."""
    b = app(prompt="something else", recovery=cache / "recovery")
    async with b.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        assert isinstance(b.screen, Choice), "the recovery file was offered"
        await pilot.press("r")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        return b


def start(cache: Path) -> Terminal:
    term = Terminal(cache, "--prompt", "the key is blue.")
    wait_for(lambda: b"model loaded" in term.seen or b"ctrl+r runs" in term.seen)
    term.send(b"\x05")  # ctrl+e: the end of the prompt's line
    return term


async def test_kill_while_editing_loses_at_most_the_last_second(tmp_path):
    term = start(tmp_path)
    term.send(b" the door is red.", pause=0.1)
    own = recovery_file(tmp_path, term.proc.pid)
    wait_for(lambda: holds(own, "the door is red."), 10)
    term.kill()
    b = await restored(tmp_path)
    assert b.ws.prompt == "the key is blue. the door is red."


async def test_kill_right_after_ctrl_r_loses_nothing(tmp_path):
    term = start(tmp_path)
    term.send(b" question: what color is the key?\x12", pause=0.0)  # the text, then ctrl+r at once
    own = recovery_file(tmp_path, term.proc.pid)
    wait_for(lambda: holds(own, "what color is the key?"), 10)
    term.kill()
    b = await restored(tmp_path)
    assert b.ws.prompt == "the key is blue. question: what color is the key?"


async def test_kill_in_the_middle_of_a_conversation_turn(tmp_path):
    term = start(tmp_path)
    term.send(b"\x0e")  # ctrl+n: conversation mode
    term.send(b" first turn\x12")  # ctrl+r: the first turn runs
    own = recovery_file(tmp_path, term.proc.pid)
    wait_for(lambda: holds(own, "first turn"), 20)
    term.kill()
    b = await restored(tmp_path)
    assert b.ws.conversation is not None
    texts = [m.text for m in b.ws.conversation.messages]
    assert any("first turn" in t for t in texts) or "first turn" in b.ws.prompt
