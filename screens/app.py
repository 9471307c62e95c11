"""LenscopeApp: owns the session state, starts workers, routes messages to widgets.

Widgets never call the model: generation and capture run in thread workers that post
batched progress messages; the UI stays responsive while they run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from textual import on, work
from textual.app import App
from textual.binding import Binding
from textual.command import Hit, Hits, Provider
from textual.message import Message
from textual.widgets import Input, ProgressBar, Static, TabbedContent, TextArea
from textual.worker import get_current_worker

from app import session as sessions
from app.errors import BadInput
from app.marks import carry_marks, overlapping
from app.results import RunResult, from_json
from lenses.base import Variant
from lenses.spec import parse, to_data
from screens.comparison import ComparisonView
from screens.heatmap_panel import HeatmapPanel
from screens.help import HelpScreen
from screens.lens_dialogs import LensForm, LensPicker, PathPrompt, SpecEditor
from screens.main import MainScreen
from screens.token_chips import TokenChips
from screens.variant_list import VariantList

FLUSH_S = 0.05  # tokens reach the screen in batches at most this often
DEFAULT_PROMPT = ("the key is blue. one day, tom went to the park. the sun was warm. "
                  "question: what color is the key? answer: the key is")


@dataclass
class RunProgress(Message):
    result: RunResult
    steps_per_s: float
    done: bool


@dataclass
class CaptureReady(Message):
    attention: dict[int, np.ndarray]
    note: str


class LenscopeCommands(Provider):
    """Every app action in the command palette."""

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, action, help_text in self.app.PALETTE:  # type: ignore[attr-defined]
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), lambda a=action: self.app.run_action(a), help=help_text)


class LenscopeApp(App):
    TITLE = "lenscope"
    CSS_PATH = "lenscope.tcss"
    COMMANDS = App.COMMANDS | {LenscopeCommands}
    BINDINGS = [
        Binding("ctrl+r", "run", "run", priority=True),
        Binding("escape", "cancel", "cancel", show=False),
        Binding("ctrl+s", "save_session", "save"),
        Binding("ctrl+o", "open_session", "open"),
        Binding("ctrl+k", "mark_selection", "mark selection", show=False),
        Binding("f1", "help", "help"),
        Binding("f2", "tab('compose')", "compose", show=False),
        Binding("f3", "tab('compare')", "compare", show=False),
        Binding("f4", "tab('heatmap')", "heatmap", show=False),
    ]
    PALETTE = [
        ("Run comparison", "run", "baseline + every variant, side by side (ctrl+r)"),
        ("Cancel run", "cancel", "stop generating; partial output stays (escape)"),
        ("Add lens variant", "add_variant", "pick a lens kind and edit its parameters"),
        ("Edit lens variant", "edit_variant", "edit the highlighted variant"),
        ("Edit variant as spec", "edit_variant_spec", "KIND:key=value stacked with +"),
        ("Remove lens variant", "remove_variant", "remove the highlighted variant"),
        ("Load lens file", "load_lens_file", "variants from a .toml or .json lens file"),
        ("Save lens file", "save_lens_file", "write the variants to a lens file"),
        ("Save session", "save_session", "prompt, marks, variants, settings and outputs as JSON"),
        ("Open session", "open_session", "load a saved session and show its outputs"),
        ("Mark selection", "mark_selection", "mark every token the prompt selection overlaps"),
        ("Clear marks", "clear_marks", "unmark every token"),
        ("Show compose tab", "tab('compose')", "prompt, tokens, variants (f2)"),
        ("Show compare tab", "tab('compare')", "the rows side by side (f3)"),
        ("Show heatmap tab", "tab('heatmap')", "attention heatmaps and charts (f4)"),
        ("Help", "help", "every key (f1)"),
    ]

    def __init__(self, model: str | None = None, prompt: str | None = None, marks: list[str] | None = None,
                 lens_specs: list[str] | None = None, session: str | None = None,
                 trust_remote_code: bool = False, show_speed: bool = True) -> None:
        super().__init__()
        self.show_speed = show_speed  # off in snapshot tests: timings differ run to run
        self.model_spec = model
        self.trust_remote_code = trust_remote_code
        self.engine: Any = None
        self.load_error = ""
        self.initial_prompt = prompt if prompt is not None else DEFAULT_PROMPT
        self.initial_mark_texts = marks or []
        self.initial_specs = lens_specs or []
        self.session_path = session
        self.variants: list[Variant] = []
        self.prompt_ids: list[int] = []
        self.prompt_tokens: list[str] = []
        self.marks: set[int] = set()
        self.result: RunResult | None = None
        self.attention: dict[int, np.ndarray] = {}
        self.running = False

    # -- start-up ------------------------------------------------------------------------
    async def on_mount(self) -> None:
        self.main = MainScreen()
        await self.push_screen(self.main)
        self.main.query_one("#prompt", TextArea).text = self.initial_prompt
        for spec in self.initial_specs:
            try:
                self.variants += parse(spec)
            except BadInput as exc:
                self.notify(str(exc), severity="error", timeout=8)
        self.main.query_one(VariantList).show(self.variants)
        if self.session_path:
            self.open_session(self.session_path)
        self.set_status("loading model…")
        self.main.query_one(ProgressBar).update(total=None)
        self.load_model()

    @work(thread=True, exclusive=True, group="load")
    def load_model(self) -> None:
        from app import models
        from app.engine import Engine

        try:
            t = time.perf_counter()
            loaded = models.load(self.model_spec, trust_remote_code=self.trust_remote_code)
            engine = Engine(loaded)
            self.call_from_thread(self.model_ready, engine, time.perf_counter() - t)
        except BadInput as exc:
            self.call_from_thread(self.model_failed, str(exc))

    def model_ready(self, engine: Any, seconds: float) -> None:
        self.engine = engine
        self.sub_title = f"{engine.loaded.name} · {engine.backend} · {engine.n_layers} layers"
        self.main.query_one(ProgressBar).update(total=1, progress=1)
        took = f" in {seconds:.1f}s" if self.show_speed else ""
        self.set_status(f"model loaded{took} · ctrl+r runs · f1 help")
        self.retokenize()
        if self.initial_mark_texts:
            try:
                self.set_marks(set(engine.marks_from_text(self.current_prompt(), self.prompt_ids,
                                                          self.initial_mark_texts)))
            except BadInput as exc:
                self.notify(str(exc), severity="error", timeout=8)

    def model_failed(self, message: str) -> None:
        self.load_error = message
        self.main.query_one(ProgressBar).update(total=1, progress=0)
        self.set_status(f"[red]{message}[/]")
        self.notify(message, severity="error", timeout=12)

    def set_status(self, text: str) -> None:
        self.main.query_one("#status", Static).update(text)

    # -- prompt and marks ------------------------------------------------------------------
    def current_prompt(self) -> str:
        return self.main.query_one("#prompt", TextArea).text

    @on(TextArea.Changed, "#prompt")
    def prompt_changed(self) -> None:
        self.retokenize()

    def retokenize(self) -> None:
        if self.engine is None:
            return
        prompt = self.current_prompt()
        ids = self.engine.encode(prompt) if prompt else []
        tokens = [self.engine.token_text(i) for i in ids]
        if self.prompt_tokens:
            self.marks = carry_marks(self.prompt_tokens, tokens, self.marks)
        else:  # first tokenization (marks from the command line or a session): keep them
            self.marks = {m for m in self.marks if m < len(tokens)}
        self.prompt_ids, self.prompt_tokens = ids, tokens
        chips = self.main.query_one(TokenChips)
        chips.tokens = tokens
        chips.marks = set(self.marks)

    def set_marks(self, marks: set[int]) -> None:
        self.marks = set(marks)
        self.main.query_one(TokenChips).marks = set(marks)

    @on(TokenChips.MarksChanged)
    def marks_changed(self, event: TokenChips.MarksChanged) -> None:
        self.marks = set(event.marks)

    def action_mark_selection(self) -> None:
        area = self.main.query_one("#prompt", TextArea)
        if self.engine is None or area.selection.is_empty:
            self.notify("select some prompt text first (shift+arrows), then ctrl+k", severity="warning")
            return
        doc = area.document
        a, b = sorted((doc.get_index_from_location(area.selection.start),
                       doc.get_index_from_location(area.selection.end)))
        hit = overlapping(self.engine.token_spans(self.current_prompt(), self.prompt_ids), a, b)
        if not hit:
            self.notify("the selection overlaps no token", severity="warning")
            return
        self.set_marks(self.marks | hit)
        self.notify(f"marked {len(hit)} token(s)")

    def action_clear_marks(self) -> None:
        self.set_marks(set())

    # -- variants ------------------------------------------------------------------------
    def _highlighted(self) -> int | None:
        idx = self.main.query_one(VariantList).highlighted
        return idx if self.variants and idx is not None and idx < len(self.variants) else None

    def _set_variant(self, index: int | None, variant: Variant | None) -> None:
        if variant is None:
            return
        if index is None:
            self.variants.append(variant)
            index = len(self.variants) - 1
        else:
            self.variants[index] = variant
        self.main.query_one(VariantList).show(self.variants, index)

    def action_add_variant(self) -> None:
        def picked(kind: str | None) -> None:
            if kind:
                self.push_screen(LensForm(kind), lambda v: self._set_variant(None, v))

        self.push_screen(LensPicker(), picked)

    def action_edit_variant(self) -> None:
        i = self._highlighted()
        if i is None:
            self.notify("no variant to edit: press a to add one", severity="warning")
            return
        v = self.variants[i]
        if len(v.lenses) == 1:
            self.push_screen(LensForm(v.lenses[0].kind, v), lambda nv: self._set_variant(i, nv))
        else:
            self.action_edit_variant_spec()

    def action_edit_variant_spec(self) -> None:
        i = self._highlighted()
        v = self.variants[i] if i is not None else None
        spec = "+".join(lens.label() for lens in v.lenses) if v else ""
        self.push_screen(SpecEditor(spec, v.name if v else ""), lambda nv: self._set_variant(i, nv))

    def action_remove_variant(self) -> None:
        i = self._highlighted()
        if i is not None:
            removed = self.variants.pop(i)
            self.main.query_one(VariantList).show(self.variants, i)
            self.notify(f"removed {removed.name}")

    def action_move_variant(self, delta: int) -> None:
        i = self._highlighted()
        if i is None or not 0 <= i + delta < len(self.variants):
            return
        self.variants[i], self.variants[i + delta] = self.variants[i + delta], self.variants[i]
        self.main.query_one(VariantList).show(self.variants, i + delta)

    def action_load_lens_file(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                try:
                    new = parse(path) if path.endswith((".toml", ".json")) else []
                    if not new:
                        raise BadInput(f"lens file '{path}': use .toml or .json")
                except BadInput as exc:
                    self.notify(str(exc), severity="error", timeout=8)
                    return
                self.variants += new
                self.main.query_one(VariantList).show(self.variants, len(self.variants) - 1)
                self.notify(f"loaded {len(new)} variant(s) from {path}")

        self.push_screen(PathPrompt("Load lens file (.toml or .json)", "lenses.toml"), chosen)

    def action_save_lens_file(self) -> None:
        def chosen(path: str | None) -> None:
            if not path:
                return
            import json

            import tomli_w

            data = to_data(self.variants)
            try:
                text = tomli_w.dumps(data) if path.endswith(".toml") else json.dumps(data, indent=1)
                sessions.atomic_write(Path(path), text)
            except (BadInput, OSError) as exc:
                self.notify(f"lens file '{path}': {exc}", severity="error", timeout=8)
                return
            self.notify(f"wrote {len(self.variants)} variant(s) to {path}")

        self.push_screen(PathPrompt("Write lens file (.toml or .json)", "lenses.toml"), chosen)

    # -- running -------------------------------------------------------------------------
    def _settings(self) -> tuple[int, float, int]:
        def read(widget_id: str, conv, lo, hi, what):
            raw = self.main.query_one(widget_id, Input).value.strip()
            try:
                value = conv(raw)
            except ValueError:
                raise BadInput(f"{what}: '{raw}' is not a number") from None
            if not lo <= value <= hi:
                raise BadInput(f"{what}: {value} is outside [{lo}, {hi}]")
            return value

        return (read("#max-tokens", int, 1, 4096, "max tokens"), read("#temperature", float, 0, 10, "temperature"),
                read("#seed", int, 0, 2**31 - 1, "seed"))

    def action_run(self) -> None:
        if self.engine is None:
            self.notify(f"no model loaded: {self.load_error}" if self.load_error else "the model is still loading",
                        severity="error" if self.load_error else "warning")
            return
        if self.running:
            self.notify("a run is in progress: escape cancels it", severity="warning")
            return
        prompt = self.current_prompt()
        try:
            if not prompt.strip():
                raise BadInput("prompt: empty")
            max_tokens, temperature, seed = self._settings()
        except BadInput as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        from app.engine import Request

        request = Request(prompt, list(self.variants), sorted(self.marks), max_tokens, temperature, seed)
        self.running = True
        self.attention = {}
        self.main.query_one(ProgressBar).update(total=max_tokens, progress=0)
        self.set_status("prefill…")
        self.main.query_one(TabbedContent).active = "compare"
        self.main.query_one(ComparisonView).focus()
        self.generate(request)

    @work(thread=True, exclusive=True, group="run")
    def generate(self, request) -> None:
        worker = get_current_worker()
        try:
            run = self.engine.compare(request)
        except BadInput as exc:
            self.call_from_thread(self.run_failed, str(exc))
            return
        last = time.perf_counter()
        t0 = last
        steps = 0
        try:
            for _ in run.steps(should_stop=lambda: worker.is_cancelled):
                steps += 1
                now = time.perf_counter()
                if now - last >= FLUSH_S:
                    self.post_message(RunProgress(run.result, steps / (now - t0), False))
                    last = now
        except Exception as exc:  # a lens failing mid-run: report, keep the app alive
            self.call_from_thread(self.run_failed, f"run failed: {type(exc).__name__}: {exc}")
            return
        self.post_message(RunProgress(run.result, steps / max(time.perf_counter() - t0, 1e-9), True))
        if not run.result.cancelled:
            self.capture(run)

    def capture(self, run) -> None:
        """After generation: one forward per row with capture on, for the heatmap."""
        from app.capture import row_attention

        attention, skipped = {}, []
        for r in range(len(run.result.rows)):
            try:
                attention[r] = row_attention(self.engine, run.result, run.variants, r)
            except BadInput:
                skipped.append(run.result.rows[r].name)
        note = f"capture skipped for {', '.join(skipped)} (too long)" if skipped else ""
        self.post_message(CaptureReady(attention, note))

    def run_failed(self, message: str) -> None:
        self.running = False
        self.set_status(f"[red]{message}[/]")
        self.notify(message, severity="error", timeout=10)

    def on_run_progress(self, message: RunProgress) -> None:
        self.result = message.result
        view = self.main.query_one(ComparisonView)
        speed = message.steps_per_s if self.show_speed else None
        view.set_result(message.result, running=not message.done, steps_per_s=speed)
        longest = max(len(r.top) for r in message.result.rows)
        self.main.query_one(ProgressBar).update(progress=longest)
        if message.done:
            self.running = False
            self.main.query_one(ProgressBar).update(total=max(longest, 1), progress=max(longest, 1))
            state = "cancelled" if message.result.cancelled else "done"
            rate = f" at {message.steps_per_s:.1f} steps/s" if self.show_speed else ""
            self.set_status(f"{state}: {longest} steps{rate}"
                            + ("" if message.result.cancelled else " · capturing attention…"))
            self.main.query_one(HeatmapPanel).set_data(message.result, {})
        else:
            self.set_status(f"generating… step {longest}")

    def on_capture_ready(self, message: CaptureReady) -> None:
        self.attention = message.attention
        self.main.query_one(HeatmapPanel).set_data(self.result, self.attention)
        self.set_status("attention captured · f4 shows the heatmap" + (f" · {message.note}" if message.note else ""))

    def action_cancel(self) -> None:
        if self.running:
            self.workers.cancel_group(self, "run")
            self.set_status("cancelling…")

    # -- sessions ------------------------------------------------------------------------
    def current_session(self) -> sessions.Session:
        try:
            max_tokens, temperature, seed = self._settings()
        except BadInput:
            max_tokens, temperature, seed = 48, 0.0, 0
        return sessions.Session(prompt=self.current_prompt(), marks=sorted(self.marks), variants=self.variants,
                                model=self.model_spec, seed=seed, temperature=temperature, max_tokens=max_tokens,
                                result=self.result.to_json() if self.result else None)

    def action_save_session(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                try:
                    saved = sessions.save(self.current_session(), path)
                except (BadInput, OSError) as exc:
                    self.notify(f"session '{path}': {exc}", severity="error", timeout=8)
                    return
                self.session_path = str(saved)
                self.notify(f"saved session to {saved}")

        self.push_screen(PathPrompt("Save session as (JSON)", self.session_path or "session.json"), chosen)

    def action_open_session(self) -> None:
        self.push_screen(PathPrompt("Open session (JSON)", self.session_path or "session.json"),
                         lambda p: self.open_session(p) if p else None)

    def open_session(self, path: str) -> None:
        try:
            s = sessions.load(path)
        except BadInput as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return
        self.session_path = path
        self.main.query_one("#prompt", TextArea).text = s.prompt
        self.variants = list(s.variants)
        self.main.query_one(VariantList).show(self.variants)
        self.main.query_one("#max-tokens", Input).value = str(s.max_tokens)
        self.main.query_one("#temperature", Input).value = f"{s.temperature:g}"
        self.main.query_one("#seed", Input).value = str(s.seed)
        self.prompt_tokens = []  # marks come from the file, not carried from the old prompt
        self.retokenize()
        self.set_marks(set(s.marks))
        self.result = from_json(s.result) if s.result else None
        self.main.query_one(ComparisonView).set_result(self.result)
        self.main.query_one(HeatmapPanel).set_data(self.result, {})
        if self.model_spec is None and s.model:
            self.notify(f"session was made with model {s.model}; start with --model to use it")
        self.notify(f"opened {path}" + (" with saved outputs (ctrl+r runs again)" if self.result else ""))

    # -- navigation ------------------------------------------------------------------------
    def action_tab(self, tab: str) -> None:
        self.main.query_one(TabbedContent).active = tab
        target = {"compose": "#prompt", "compare": ComparisonView, "heatmap": HeatmapPanel}[tab]
        self.main.query_one(target).focus()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())
