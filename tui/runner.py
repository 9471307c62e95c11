"""The runner: the only place in tui/ that starts engine work.

Loading the model, runs, conversation turns, captures, head roles, logit-lens windows and
trees all run here, in thread workers, one at a time. `busy` names the job that holds the
model; it is set and cleared on the UI thread only, so two requests can never both start.
While a job runs, a new run, turn or tree is refused with a message (escape cancels the
job), and a capture or a view's computation waits its turn (the latest request of each
kind is kept). Workers report only with messages, which Textual delivers on the UI thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual.message import Message
from textual.worker import Worker, get_current_worker

from lenscope import models
from lenscope.batch import fit
from lenscope.batch.scores import Score
from lenscope.batch.tree import grow, tree_done, tree_progress
from lenscope.chat import conversation as convs
from lenscope.core.capture import RowCapture, capture_rows
from lenscope.core.engine import Engine
from lenscope.core.results import RunResult
from lenscope.errors import BadInput, reason
from lenscope.lenses.base import Variant
from lenscope.views.head_roles import measure
from lenscope.views.logit_lens import logit_lens

if TYPE_CHECKING:
    from textual.app import App

    from lenscope.chat.conversation import Conversation
    from lenscope.core.engine import Request

FLUSH_S = 0.05  # tokens reach the screen in batches at most this often
QUEUED = ("capture", "head roles", "logit lens")  # jobs that wait for the model instead of being refused


@dataclass
class ModelLoaded(Message):
    engine: Engine
    seconds: float


@dataclass
class Failed(Message):
    """A job failed ("model" for loading); one line."""

    what: str
    message: str


@dataclass
class RunProgress(Message):
    run: int  # which run: a new number is a new result
    result: RunResult  # a snapshot while generating; the finished result itself once `done`
    steps_per_s: float
    done: bool


@dataclass
class CaptureReady(Message):
    """Attention and hidden states of every row of run `run`, for every view."""

    run: int
    captures: dict[int, RowCapture]
    note: str


@dataclass
class TurnDone(Message):
    """A conversation turn finished (or was cancelled: `conversation` is None)."""

    run: int
    conversation: Any  # the conversation with the turn added (the worker ran on a copy)
    result: RunResult  # the turn as one comparison, for the views


@dataclass
class ViewReady(Message):
    """A view's computation finished: `apply` shows it (on the UI thread)."""

    apply: Callable[[], None]


@dataclass
class JobProgress(Message):
    """A line of progress from a long job (a tree), for the status line."""

    text: str


@dataclass
class JobDone(Message):
    """The job let go of the model."""

    job: str


class Runner:
    """Owns the engine; every method is called on the UI thread."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.engine: Engine | None = None
        self.busy: str | None = None
        self.pending: dict[str, Callable[[], None]] = {}  # job -> its body, started when the model is free

    # -- the one lock ---------------------------------------------------------------------------
    def free(self, then: str = "") -> bool:
        """True when no job holds the model; else False, and a line says which one does."""
        if self.busy is None:
            return True
        self.app.notify(f"the model is busy ({self.busy}): escape cancels it{then}", severity="warning")
        return False

    def start(self, job: str, body: Callable[[], None]) -> bool:
        """Run `body` in a worker when the model is free. Refused (False, with a message) while
        another job holds it, except captures and views, which wait."""
        if self.busy is not None and job in QUEUED:
            self.pending[job] = body
            return True
        if not self.free():
            return False
        self.busy = job
        self.app.run_worker(lambda: self._guarded(job, body), thread=True, group="engine", exit_on_error=False,
                            name=job)
        return True

    def _guarded(self, job: str, body: Callable[[], None]) -> None:
        try:
            body()
        except BadInput as exc:  # names what is wrong itself
            self.app.post_message(Failed(job, reason(exc)))
        except Exception as exc:  # whatever a lens or a view does: one line, the app keeps running
            self.app.post_message(Failed(job, f"{job} failed: {reason(exc)}"))
        finally:
            self.app.post_message(JobDone(job))

    def done(self, job: str) -> None:
        """JobDone arrived: the model is free; the oldest waiting job starts."""
        if self.busy == job:
            self.busy = None
        if self.pending and self.busy is None:
            first = next(iter(self.pending))
            self.start(first, self.pending.pop(first))

    def cancel(self) -> bool:
        """Cancel the job that holds the model and forget the waiting ones."""
        self.pending.clear()
        if self.busy is None:
            return False
        self.app.workers.cancel_group(self.app, "engine")
        return True

    # -- the jobs ---------------------------------------------------------------------------------
    def load(self, spec: str | None, trust_remote_code: bool) -> None:
        def body() -> None:
            t = time.perf_counter()
            try:
                engine = Engine(models.load(spec, trust_remote_code=trust_remote_code,
                                            progress=lambda text: self.app.post_message(JobProgress(text))))
            except Exception as exc:  # anything from a model folder: one line, the app stays
                self.app.post_message(Failed("model", reason(exc)))
                return
            self.app.post_message(ModelLoaded(engine, time.perf_counter() - t))

        self.start("load", body)

    def run(self, request: Request, number: int) -> bool:
        engine = self.engine

        def body() -> None:
            worker = get_current_worker()
            # prepare one variant at a time (compare reuses the work), so a failure names its variant
            for v in request.variants:
                try:
                    engine.prepare([v], engine.encode(request.prompt), request.marks)
                except Exception as exc:
                    raise BadInput(f"variant '{v.name}': {reason(exc)}") from exc
            run = engine.compare(request)
            report = self._reporter(number)
            steps = 0
            for _ in run.steps(should_stop=lambda: worker.is_cancelled):
                steps += 1
                report(run.result, steps)
            report(run.result, steps, done=True)
            if not run.result.cancelled:
                self._capture(worker, run.result, run.variants, number)

        return self.start("run", body)

    def turn(self, conv: Conversation, user: str, variants: list[Variant], values: tuple[int, float, int],
             number: int) -> bool:
        engine = self.engine

        def body() -> None:
            worker = get_current_worker()
            report = self._reporter(number)
            seen: list[RunResult] = []

            def on_step(row, result: RunResult) -> None:
                seen[:] = [result]
                report(result, max(len(r.top) for r in result.rows))

            max_tokens, temperature, seed = values
            record = convs.run_turn(engine, conv, user, variants, max_tokens=max_tokens, temperature=temperature,
                                    seed=seed, on_step=on_step, should_stop=lambda: worker.is_cancelled)
            result = convs.turn_result(record) if record is not None else seen[0] if seen else None
            if result is None:
                raise BadInput("cancelled before the first token")
            report(result, max(len(r.top) for r in result.rows), done=True)
            self.app.post_message(TurnDone(number, conv if record is not None else None, result))

        return self.start("turn", body)

    def _reporter(self, number: int) -> Callable[..., None]:
        """`report(result, steps, done=False)`: run `number`'s progress, a snapshot at most every
        FLUSH_S while it runs, and the result itself once done (nothing writes to it any more)."""
        t0 = last = time.perf_counter()

        def report(result: RunResult, steps: int, done: bool = False) -> None:
            nonlocal last
            now = time.perf_counter()
            if done or now - last >= FLUSH_S:
                self.app.post_message(RunProgress(number, result if done else result.snapshot(),
                                                  steps / max(now - t0, 1e-9), done))
                last = now

        return report

    def capture(self, result: RunResult, variants: list[Variant], number: int) -> None:
        """Capture a result's attention (a reopened session's, a turn's): waits for the model."""
        self.start("capture", lambda: self._capture(get_current_worker(), result, variants, number))

    def _capture(self, worker: Worker, result: RunResult, variants: list[Variant], number: int) -> None:
        """Every row's attention and hidden states in one batched forward, for every view; where
        that fails, row by row, so the note names the rows that could not be captured."""
        captures, skipped, note = {}, [], ""
        try:
            captures = dict(enumerate(capture_rows(self.engine, result, variants)))
        except Exception:
            for r in range(len(result.rows)):
                if worker.is_cancelled:
                    note = "capture cancelled"
                    break
                try:
                    captures[r] = capture_rows(self.engine, result, variants, [r])[0]
                except Exception as exc:
                    skipped.append(f"{result.rows[r].name} ({reason(exc)})")
        note = note or (f"capture skipped for {', '.join(skipped)}" if skipped else "")
        self.app.post_message(CaptureReady(number, captures, note))

    def head_roles(self, apply: Callable[[Any], None]) -> None:
        def body() -> None:
            roles = measure(self.engine)
            self.app.post_message(ViewReady(lambda: apply(roles)))

        self.start("head roles", body)

    def logit_lens(self, capture: RowCapture, positions: list[int], pinned: Any,
                   apply: Callable[[Any], None]) -> None:
        def body() -> None:
            shown = [p for p in positions if p < len(capture.ids)] or [len(capture.ids) - 1]  # a shorter baseline
            lens = logit_lens(self.engine, capture.hidden, shown, pinned=pinned)
            self.app.post_message(ViewReady(lambda: apply(lens)))

        self.start("logit lens", body)

    def fit(self, data: str, out: Any, apply: Callable[[Any], None]) -> bool:
        """Learn a steer lens from `data` into the folder `out` (lenscope fit's defaults);
        the status line follows the steps and the loss; escape cancels between steps."""
        def body() -> None:
            worker = get_current_worker()
            examples = fit.read_examples(self.engine, data)
            last = [0.0]

            def progress(step: int, total: int, loss: float) -> None:
                if worker.is_cancelled:
                    raise BadInput("fit cancelled: nothing written")
                if time.perf_counter() - last[0] >= 0.2 or step == total:
                    self.app.post_message(JobProgress(f"fitting a steer lens: step {step}/{total} · loss "
                                                      f"{loss:.3f} · escape cancels"))
                    last[0] = time.perf_counter()

            report = fit.fit(self.engine, examples, fit.FitOptions(), out, progress=progress)
            self.app.post_message(JobProgress(fit.summary(report)))
            self.app.post_message(ViewReady(lambda: apply(out / "lens.toml")))

        return self.start("fit", body)

    def tree(self, prompt: str, options: dict[str, Any], apply: Callable[[Any], None]) -> bool:
        def body() -> None:
            worker = get_current_worker()
            start, last = time.perf_counter(), [0.0]

            def progress(done: int, total: int, nodes: int) -> None:
                if worker.is_cancelled:
                    raise BadInput("cancelled")
                now = time.perf_counter()
                if now - last[0] >= 0.2:
                    self.app.post_message(JobProgress(tree_progress(done, total, nodes, now - start)))
                    last[0] = now

            tree = grow(self.engine, prompt, Score.from_data([{"kind": "fluency"}], "tree"), options,
                        progress=progress)
            # after every progress line (messages keep their order): the status ends with the result
            self.app.post_message(JobProgress(tree_done(tree, time.perf_counter() - start)))
            self.app.post_message(ViewReady(lambda: apply(tree)))

        return self.start("tree", body)
