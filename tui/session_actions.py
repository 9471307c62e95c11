"""Sessions from the TUI: save, open, export a report, and nothing lost.

Nothing lost: quitting with unsaved changes asks (save / discard / cancel); while the app
runs, the session is written atomically to a recovery file within a second of every edit
and when a run or turn starts (`RECOVERY/<pid>.json`), removed when the app quits as
asked; a recovery file whose process is gone is offered at the next launch.
"""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from lenscope.chat import conversation as convs
from lenscope.errors import BadInput, reason
from lenscope.reports.export import write_reports
from lenscope.reports.html import attention_row
from lenscope.storage import session as sessions
from lenscope.storage.files import process_alive
from lenscope.tui.compose.compose_pane import ComposePane
from lenscope.tui.dialogs.choice_dialog import Choice
from lenscope.tui.dialogs.lens_dialogs import PathPrompt

if TYPE_CHECKING:
    from lenscope.tui.app import LenscopeApp


AUTOSAVE_S = 1.0  # how often the recovery file follows the edits


def orphaned_recovery(folder: Path) -> Path | None:
    """The newest recovery file whose process is gone (a file: a folder or link by that name is
    no session; an unreadable folder offers nothing)."""
    def mtime(p: Path) -> float:
        try:
            return p.stat().st_mtime
        except OSError:
            return 0.0

    try:
        files = [p for p in folder.glob("*.json") if p.stem.isdigit() and p.is_file() and not p.is_symlink()
                 and not process_alive(int(p.stem))]
    except OSError:
        return None
    return max(files, key=mtime, default=None)


class SessionActions:
    def __init__(self, app: LenscopeApp, recovery: Path | None) -> None:
        self.app = app
        self.ws = app.ws
        self.path: str | None = None  # the session file last saved or opened
        self.recovery = recovery  # the folder of recovery files; None: none written
        self.clean = ""  # the session as last saved, opened or started: quitting from it asks nothing
        self._written: str | None = None  # the session as last written to the recovery file

    def current(self) -> sessions.Session:
        # marks index the tokens the model reads: the templated prompt's in chat mode
        self.app.main.query_one(ComposePane).pull_fields()
        return self.ws.session(self.app.model_spec)

    def _key(self) -> str:
        return json.dumps(self.current().to_json(), sort_keys=True, default=str)

    def mark_clean(self) -> None:
        self.clean = self._key()

    @property
    def dirty(self) -> bool:
        return self._key() != self.clean

    # -- save and open ------------------------------------------------------------------------------
    def save(self, then=None) -> None:
        def chosen(path: str | None) -> None:
            if not path:
                return
            try:
                saved = sessions.save(self.current(), path)
            except (BadInput, OSError) as exc:
                self.app.notify(f"session '{path}': {exc}", severity="error", timeout=8)
                return
            self.path = str(saved)
            self.mark_clean()
            self.app.notify(f"saved session to {saved}")
            if then:
                then()

        self.app.push_screen(PathPrompt("Save session as (JSON)", self.path or "session.json"), chosen)

    def ask_open(self) -> None:
        self.app.push_screen(PathPrompt("Open session (JSON)", self.path or "session.json"),
                             lambda p: self.open(p) if p else None)

    def open(self, path: str, quiet: bool = False) -> bool:
        app = self.app
        if not app.runner.free(then=", then open the session"):
            return False
        try:
            s = sessions.load(path)
        except Exception as exc:  # whatever a bad file does, one line, and nothing here changes
            why = reason(exc).removeprefix(f"session '{path}': ")
            app.notify(f"session '{path}': {why}", severity="error", timeout=10)
            return False
        ws = self.ws
        ws.open(s)
        result = ws.result
        pane = app.main.query_one(ComposePane)
        pane.show_workspace()
        # without chat fields in the file, its prompt is what the model read: chat off
        ws.chat_choice = pane.show_chat(ws.chat or ws.conversation is not None)
        pane.retokenize()
        pane.set_marks(ws.marks)
        app.conversations.show()
        ws.result_inputs = ws.inputs_key()
        app.show_result(result)
        app.tabs.show_captures({}, "attention is not saved in sessions: ctrl+r runs again" if result else "")
        if (s.model or None) != (app.model_spec or None):
            app.notify(f"session was made with model {s.model or 'the bundled one'}; this one is "
                       f"{app.model_spec or 'the bundled one'}", severity="warning", timeout=10)
        if not quiet:
            again = "ctrl+r sends the next turn" if ws.conversation is not None else "ctrl+r runs again"
            app.notify(f"opened {path}" + (f" with saved outputs ({again})" if result else ""))
            self.path = path
            self.mark_clean()
        if result is not None:
            self.recapture()
        return True

    def recapture(self) -> None:
        """A reopened session's outputs, made by this model from these inputs: capture their attention
        again (sessions do not save it); otherwise say how to get it."""
        app, res = self.app, self.ws.result
        engine = app.engine
        if engine is None:
            return  # model_ready calls this again
        if (res is None or res.model != engine.loaded.name or res.cancelled
                or [r.name for r in res.rows] != [v.name for v in self.ws.rows()]
                or engine.tokens.encode(res.prompt) != res.prompt_token_ids):
            app.set_status("saved outputs shown · attention is not saved in sessions: ctrl+r runs again")
            return
        app.set_status("saved outputs shown · capturing their attention…")
        app.run_number += 1
        app.shown_run = app.run_number  # the session's result is this "run"
        app.runner.capture(res, self.ws.rows(), app.run_number)

    # -- export -------------------------------------------------------------------------------------------
    def export(self) -> None:
        app = self.app
        if self.ws.result is None:
            app.notify("nothing to export yet: run a comparison (ctrl+r)", severity="warning")
            return

        def chosen(folder: str | None) -> None:
            if not folder:
                return

            record = {"comparison": "lenscope tui", **self.ws.result.to_json()}
            conv = self.ws.conversation
            engine = app.engine
            if conv is not None and conv.turns:  # the whole conversation, as `lenscope run` writes one
                record = convs.record("lenscope tui conversation", engine, conv, [v.name for v in self.ws.variants])
            elif self.ws.captures:  # as `run` with capture_attention: the mean over layers and heads per row
                record["attention"] = {"rows": [attention_row(c.name, c.tokens, c.attention)
                                                for _, c in sorted(self.ws.captures.items())]}
            # what the outputs ran with, not what the model loaded with now
            meta = {"lenscope": metadata.version("lenscope"), "model": app.model_spec or engine.loaded.name,
                    "precision": record.get("precision") or engine.loaded.precision, "backend": engine.backend,
                    "reproduce": "lenscope tui" + (f" --model {app.model_spec}" if app.model_spec else "")
                                 + (f" --session {self.path}" if self.path else "")}
            try:
                written = write_reports(folder, [record], meta)
            except (BadInput, OSError) as exc:
                app.notify(f"export '{folder}': {exc}", severity="error", timeout=8)
                return
            app.notify(f"wrote {', '.join(str(p) for p in written)}")

        app.push_screen(PathPrompt("Export report into folder", "report"), chosen)

    # -- nothing lost ---------------------------------------------------------------------------------
    def own_recovery(self) -> Path | None:
        return self.recovery / f"{os.getpid()}.json" if self.recovery else None

    def follow_edits(self) -> None:
        """Every second, the session is written to the recovery file when it changed: a kill at
        any moment (editing, prefill, mid-turn) loses at most the last second of typing."""
        self.app.set_interval(AUTOSAVE_S, self.recover)

    def recover(self) -> None:
        """The session as it is, written atomically to the recovery file when it changed since
        the last write (and, before the first, since it was opened or started)."""
        target = self.own_recovery()
        if target is None:
            return
        key = self._key()
        if key == self._written or (self._written is None and key == self.clean):
            return
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            sessions.save(self.current(), target)
            self._written = key
        except (BadInput, OSError) as exc:  # a full disk must not stop the app: say it once
            self.app.notify(f"recovery file '{target}': {exc}", severity="warning")
            self.recovery = None

    def offer_recovery(self) -> None:
        """At launch: a recovery file left by a process that is gone is offered for restoring."""
        if self.recovery is None:
            return
        found = orphaned_recovery(self.recovery)
        if found is None:
            return

        def answered(answer: str | None) -> None:
            # the file goes only once what it holds is back (or the person said discard)
            if answer == "r" and not self.open(str(found), quiet=True):
                return
            if answer == "r":
                self.app.notify(f"restored the session from {found}; ctrl+s saves it")
            if answer in ("r", "d"):
                _remove(self.app, found)

        self.app.push_screen(Choice("Restore the last session?",
                                    f"lenscope stopped without saving; its session was kept in {found}",
                                    [("r", "Restore"), ("d", "Discard"), ("escape", "Later")]), answered)

    def quit(self) -> None:
        """Quit, asking first when there are unsaved changes."""
        if not self.dirty:
            self._leave()
            return

        def answered(answer: str | None) -> None:
            if answer == "s":
                self.save(then=self._leave)
            elif answer == "d":
                self._leave()

        self.app.push_screen(Choice("Quit with unsaved changes?",
                                    "the prompt, marks, variants or outputs changed since the session was "
                                    "last saved", [("s", "Save"), ("d", "Discard"), ("escape", "Cancel")]), answered)

    def _leave(self) -> None:
        target = self.own_recovery()
        if target is not None:
            _remove(self.app, target)
        self.app.exit()


def _remove(app: LenscopeApp, path: Path) -> None:
    """A recovery file removed; a folder that will not have it removed is said, not a crash."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        app.notify(f"recovery file '{path}': cannot remove it ({exc.strerror or exc})", severity="warning")
