"""A long session in the TUI, as a person has one: many rows, every tab, the keys
with the prompt focused, one job on the model at a time, quitting with unsaved work, a
recovery file after a crash, and a seeded random session over all of it.

LENSCOPE_RANDOM_S sets the random session's time (default 60 s); LENSCOPE_RANDOM_SEEDS how
many seeds it cycles through (default 3); LENSCOPE_RANDOM_MODEL the model (default: the
bundled one; e.g. smollm2 or gemma3-270m for a run by hand).
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

from textual.widgets import Input, TabbedContent, TextArea, Tree
from tui_helpers import PROMPT, app, messages, ready

from lenscope.core.engine import Request
from lenscope.errors import BadInput
from lenscope.lenses.base import Variant
from lenscope.lenses.registry import KINDS
from lenscope.lenses.spec import build_lens
from lenscope.storage import session as sessions
from lenscope.tui.app import LenscopeApp
from lenscope.tui.compose.variant_list import VariantList
from lenscope.tui.dialogs.choice_dialog import Choice
from lenscope.tui.dialogs.lens_dialogs import PathPrompt
from lenscope.tui.tabs import TABS
from lenscope.tui.tree.tree_panel import TreePanel

SCREENS = Path(__file__).resolve().parents[1] / "tui"


async def settle(pilot, limit: float = 60.0) -> None:
    """Until no job holds the model (a finished job may start a waiting one)."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if not pilot.app.running:
            return
        await pilot.pause(0.05)
    raise AssertionError(f"the model stayed busy ({pilot.app.runner.busy})")


def unhooked(engine) -> bool:
    """No hook left in the model, and an identity row equals the baseline."""
    if any("_lens_state" in vars(m) for _, m in engine.model.named_modules()):
        return False
    res = engine.compare(Request(PROMPT, [Variant("identity", [build_lens({"kind": "identity"}, "t")])], [], 4,
                                 0.0, 0)).run()
    return res.rows[1].token_ids == res.rows[0].token_ids


# -- what a long session found, each once ----------------------------------------------------------------
async def test_twelve_rows_run_and_every_tab_renders():
    a = app(marks=["blue"], lens_specs=[f"emphasis:strength={n}" for n in range(1, 12)])
    async with a.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert len(a.ws.result.rows) == 12 and set(a.ws.captures) == set(range(12))
        for view in TABS:
            await pilot.press(view.key)
            await pilot.pause()
            assert a.main.query_one(TabbedContent).active == view.id
            assert a._exception is None, view.id
        await settle(pilot)
        assert a._exception is None and unhooked(a.engine)


async def test_tab_keys_and_export_work_from_the_prompt():
    a = app()
    async with a.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        assert isinstance(a.focused, TextArea)
        for view in TABS[1:]:
            await pilot.press(view.key)
            assert a.main.query_one(TabbedContent).active == view.id
            await pilot.press("f2")
            assert isinstance(a.focused, TextArea)
        assert a.main.query_one("#prompt", TextArea).selected_text == ""  # f7 did not select all
        await pilot.press("ctrl+g")
        assert "nothing to export yet" in messages(a)[-1]
        await pilot.press("ctrl+e")  # the prompt's own end of line still works
        assert a.main.query_one("#prompt", TextArea).cursor_location[1] > 0


async def test_jobs_never_overlap_on_the_model():
    a = app(marks=["blue"], lens_specs=["emphasis:strength=3"])
    async with a.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        a.main.query_one("#max-tokens", Input).value = "24"
        await pilot.pause()
        a.action_run()  # ctrl+r, without waiting for the app to go idle (the run may be over by then)
        assert a.runner.busy == "run"
        a.tabs.grow_wanted({"budget": 8})  # refused while the run holds the model
        a.tabs.roles_wanted()  # a view's computation waits its turn
        assert "head roles" in a.runner.pending
        await pilot.pause()
        assert any("busy (run)" in m for m in messages(a))
        await settle(pilot)
        assert a.ws.head_roles is not None and len(a.ws.captures) == 2
        assert unhooked(a.engine)


async def test_tree_options_progress_and_arrows():
    a = app()
    async with a.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("f8")
        panel = a.main.query_one(TreePanel)
        panel.query_one("#tree-k", Input).value = "3"
        panel.query_one("#tree-budget", Input).value = "12"
        panel.query_one("#tree-beam", Input).value = "oops"
        panel.focus_tree()
        await pilot.press("g")
        assert "tree: beam must be" in messages(a)[-1]
        panel.query_one("#tree-beam", Input).value = "2"
        panel.focus_tree()
        await pilot.press("g")
        await settle(pilot)
        assert panel.grown is not None and panel.grown.options["k"] == 3 and panel.grown.options["budget"] == 12
        status = str(a.main.query_one("#status").render())
        assert status.startswith(f"tree grown: {len(panel.grown.nodes)} nodes") and "growing" not in status
        tree = panel.query_one(Tree)
        assert tree.has_focus
        before = tree.cursor_line
        await pilot.press("down")
        assert tree.cursor_line == before + 1


async def test_user_text_is_never_read_as_markup():
    a = app(lens_specs=["bias:words=[Red]|X", 'constrain:regex="([A-Z][a-z]+)"'])
    async with a.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        shown = [str(o.prompt) for o in a.main.query_one(VariantList).options]
        assert "[Red]" in shown[0] and "[A-Z][a-z]+" in shown[1]


async def test_default_screen_shows_a_lens_at_work():
    a = LenscopeApp(show_speed=False)  # no prompt, marks or lenses: the first look
    async with a.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        assert a.ws.marks and len(a.ws.variants) >= 1
        await pilot.press("ctrl+r")
        await settle(pilot)
        texts = [r.text for r in a.ws.result.rows]
        assert any(t != texts[0] for t in texts[1:]), texts


# -- nothing lost -----------------------------------------------------------------------------------------
async def test_quit_with_unsaved_work_asks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = app(lens_specs=["identity"])
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+r")
        await settle(pilot)
        await pilot.press("ctrl+q")
        assert isinstance(a.screen, Choice)
        await pilot.press("escape")  # cancel: still here, nothing lost
        assert not isinstance(a.screen, Choice) and a.is_running
        await pilot.press("ctrl+q", "s")
        assert isinstance(a.screen, PathPrompt)
        await pilot.press("enter")
        await pilot.pause()
    saved = sessions.load(tmp_path / "session.json")
    assert saved.result is not None and a.return_code in (None, 0)


async def test_quit_without_changes_does_not_ask():
    a = app()
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert not a.is_running


async def test_recovery_file_after_each_run_and_offered_after_a_crash(tmp_path):
    a = app(lens_specs=["identity"], recovery=tmp_path)
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+r")
        await settle(pilot)
        own = tmp_path / f"{os.getpid()}.json"
        assert sessions.load(own).result is not None
        texts = [r.text for r in a.ws.result.rows]
    dead = tmp_path / "999999999.json"  # as if that process had been killed
    own.rename(dead)
    b = app(prompt="something else", recovery=tmp_path)
    async with b.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        assert isinstance(b.screen, Choice)
        await pilot.press("r")
        await settle(pilot)
        assert b.ws.prompt == PROMPT and [r.text for r in b.ws.result.rows] == texts
        assert not dead.exists()


async def test_the_recovery_file_follows_every_edit_and_a_run_start(tmp_path):
    """A kill while editing loses at most the last second; a kill in the prefill loses nothing."""
    from lenscope.tui.session_actions import AUTOSAVE_S

    a = app(lens_specs=["identity"], recovery=tmp_path)
    own = tmp_path / f"{os.getpid()}.json"
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.pause(AUTOSAVE_S + 0.3)
        assert not own.exists()  # nothing edited yet: nothing to recover
        area = a.pane.query_one("#prompt", TextArea)
        area.focus()
        area.move_cursor(area.document.end)
        await pilot.press(*" a note")
        a.ws.variants.append(Variant("emphasis:strength=2", [build_lens({"kind": "emphasis", "strength": 2}, "test")]))
        a.main.query_one(VariantList).show()
        await pilot.pause(AUTOSAVE_S + 0.3)
        kept = sessions.load(own)  # killed here: the edits are back on relaunch
        assert kept.prompt == PROMPT + " a note" and [v.name for v in kept.variants][-1] == "emphasis:strength=2"
        assert kept.result is None
        await pilot.press("ctrl+r")  # written as the run starts, before any token
        assert sessions.load(own).prompt == PROMPT + " a note"
        await settle(pilot)
    own.rename(tmp_path / "999999999.json")
    b = app(prompt="something else", recovery=tmp_path)
    async with b.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("r")
        await settle(pilot)
        assert b.ws.prompt == PROMPT + " a note" and b.ws.variants[-1].name == "emphasis:strength=2"


# -- a seeded random session ---------------------------------------------------------------------------------
WORDS = {"positive": ["blue"], "negative": ["red"], "token": "blue", "a": "blue", "b": "red",
         "concepts": ["blue", "red"], "source": "the key is red.", "words": ["blue"], "regex": "[a-z ]+",
         "text": " green"}


def random_lens(rng: random.Random, kind: str, n_layers: int, n_heads: int):
    """A lens of `kind` with random valid parameters (the registry's ranges, kept small), or None."""
    entry: dict = {"kind": kind}
    for p in KINDS[kind].params:
        if rng.random() < 0.5:
            continue
        if p.type == "float" and p.min is not None:
            entry[p.name] = round(rng.uniform(max(p.min, -4), min(p.max, 4)), 2)
        elif p.type == "int" and p.min is not None and p.name not in ("steps", "seed", "at_step"):
            entry[p.name] = rng.randint(int(p.min), int(min(p.max, p.min + 3)))
        elif p.type == "choice":
            entry[p.name] = rng.choice(p.choices)
        elif p.type == "ints" and p.name == "layers":
            entry[p.name] = sorted(rng.sample(range(n_layers), rng.randint(1, n_layers)))
        elif p.type == "ints" and p.name == "heads":
            entry[p.name] = sorted(rng.sample(range(n_heads), rng.randint(1, n_heads)))
    for name, value in WORDS.items():
        if any(p.name == name for p in KINDS[kind].params) and name not in entry:
            entry[name] = value
    entry.pop("lark", None), entry.pop("json_schema", None), entry.pop("file", None), entry.pop("model", None)
    entry.pop("other", None), entry.pop("points", None)
    try:
        return build_lens(entry, f"random {kind}")
    except BadInput:
        return None


KEYS = ["tab", "shift+tab", "up", "down", "left", "right", "home", "end", "pageup", "pagedown", "enter", "space",
        "backspace", "escape", "a", "e", "t", "x", "c", "r", "m", "d", "g", "o", "p", "k", "z", "[", "]", "{", "}",
        "comma", "full_stop", "ctrl+k", "ctrl+t", "ctrl+up", "ctrl+down", "f1", "ctrl+p", "b", "1", " "]
SIZES = [(80, 24), (100, 30), (120, 40), (160, 50)]


async def random_session(seed: int, seconds: float, tmp_path: Path) -> dict:
    rng = random.Random(seed)
    found = {"ops": 0, "runs": 0, "turns": 0}
    a = app(model=os.environ.get("LENSCOPE_RANDOM_MODEL"), lens_specs=["identity"], marks=["blue"])
    async with a.run_test(size=rng.choice(SIZES)) as pilot:
        await ready(pilot)
        a.main.query_one("#max-tokens", Input).value = "4"
        engine = a.engine
        kinds = [k for k in KINDS if k not in ("patch", "fitted", "adapter")]  # a second prompt, files: their own tests
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            op = rng.choice(["rows", "rows", "mark", "run", "run", "cancel", "tab", "keys", "keys", "resize",
                             "conversation", "save"])
            found["ops"] += 1
            while isinstance(a.screen, (Choice, PathPrompt)) or len(a.screen_stack) > 2:
                await pilot.press("escape")
            if op == "rows":
                lenses = [random_lens(rng, rng.choice(kinds), engine.n_layers, engine.n_heads)
                          for _ in range(rng.randint(0, 11))]
                a.ws.variants = [Variant(lens.label(), [lens]) for lens in lenses if lens is not None]
                a.pane.show_variants(0)
            elif op == "mark" and a.ws.prompt_tokens:
                a.pane.set_marks(set(rng.sample(range(len(a.ws.prompt_tokens)), 2)) - a.ws.template_tokens)
            elif op in ("run", "cancel"):
                await pilot.press("ctrl+r")
                if op == "cancel":
                    await pilot.pause(rng.random() * 0.3)
                    await pilot.press("escape")
                await settle(pilot)
                found["runs" if a.ws.conversation is None else "turns"] += 1
                assert a._exception is None
                assert unhooked(engine), f"seed {seed}: hooks left after op {found['ops']}"
                for view in TABS:
                    await pilot.press(view.key)
                    await pilot.pause()
                await settle(pilot)
            elif op == "tab":
                await pilot.press(rng.choice(TABS).key)
            elif op == "keys":
                chain = a.screen.focus_chain
                if chain:
                    rng.choice(chain).focus()
                await pilot.press(*rng.choices(KEYS, k=rng.randint(1, 5)))
            elif op == "resize":
                await pilot.resize_terminal(*rng.choice(SIZES))
            elif op == "conversation":
                await settle(pilot)
                await pilot.press("ctrl+n")
                if a.ws.conversation is not None and not a.ws.prompt.strip():
                    a.main.query_one("#prompt", TextArea).text = "what color is the key?"
            elif op == "save":
                await settle(pilot)
                path = tmp_path / f"s{seed}.json"
                sessions.save(a.sessions.current(), path)
                assert a.sessions.open(str(path))
                await settle(pilot)
            await pilot.pause()
            assert a._exception is None, f"seed {seed}, op {found['ops']} ({op})"
        while len(a.screen_stack) > 2:
            await pilot.press("escape")
        await settle(pilot)
        assert a._exception is None and unhooked(engine)
    return found


async def test_random_sessions(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # sessions and lens files written by keys land here
    seconds = float(os.environ.get("LENSCOPE_RANDOM_S", "60"))
    seeds = int(os.environ.get("LENSCOPE_RANDOM_SEEDS", "3"))
    total: dict = {}
    for seed in range(seeds):
        for k, v in (await random_session(seed, seconds / seeds, tmp_path)).items():
            total[k] = total.get(k, 0) + v
    print(f"random sessions: {seeds} seeds, {seconds:g} s, {total}")
    assert total["runs"] + total["turns"] > 0


async def test_removed_variants_come_back_with_u_and_one_toast_says_so():
    a = app(lens_specs=["identity", "emphasis:strength=2", "decay", "steer:token=blue,strength=4"])
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        names = [v.name for v in a.ws.variants]
        listed = a.main.query_one(VariantList)
        listed.focus()
        listed.highlighted = 1
        await pilot.press("x", "x", "x")
        await pilot.pause()
        assert [v.name for v in a.ws.variants] == [names[0]]
        assert len(a._notifications) == 1 and "3 removed" in next(iter(a._notifications)).message
        await pilot.press("u", "u", "u")
        await pilot.pause()
        assert [v.name for v in a.ws.variants] == names
        assert len(a._notifications) == 1


async def test_hostile_recovery_folders_never_stop_the_tui(tmp_path, monkeypatch):
    """A PID past C long, a folder named like a recovery file, and a folder that will not
    let a file go: the TUI starts, restores what it can, says what it could not remove, quits."""
    rec = tmp_path / "recovery"
    rec.mkdir()
    (rec / ("9" * 40 + ".json")).write_text(json.dumps(sessions.Session(prompt="from a huge pid").to_json()))
    (rec / "12345678.json").mkdir()  # a folder by a recovery file's name
    real_unlink = Path.unlink

    def read_only(self, missing_ok=False):  # as a read-only folder answers (root ignores chmod)
        if self.parent == rec:
            raise PermissionError(13, "Permission denied")
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", read_only)
    a = app(recovery=rec)
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        assert isinstance(a.screen, Choice)  # the huge PID's file is offered: no process has that id
        await pilot.press("r")
        await settle(pilot)
        assert a.ws.prompt == "from a huge pid"
        assert any("cannot remove it" in m for m in messages(a))
        await pilot.press("ctrl+q")
        await pilot.pause()
        if isinstance(a.screen, Choice):
            await pilot.press("d")
            await pilot.pause()
        assert not a.is_running
