"""Starting the Textual App from the command line (imports Textual only when it starts)."""

from __future__ import annotations

import os
import sys

from lenscope.errors import BadInput


def run_tui(args) -> None:
    from lenscope.models.sources import cache_root  # lazy: blas
    from lenscope.tui.app import LenscopeApp  # lazy: startup

    # the session is kept in the cache after every run, and offered back after a crash
    app = LenscopeApp(model=args.model, prompt=args.prompt, marks=args.mark, lens_specs=args.lens,
                      session=args.session, trust_remote_code=args.trust_remote_code,
                      chat=True if args.chat else None, system=args.system, recovery=cache_root() / "recovery")
    app.model_note = getattr(args, "model_note", "")
    app.run()
    # MLX used from worker threads can abort in its exit-time destructors
    # (ml-explore/mlx#3126); everything is saved by now, so leave without them.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(app.return_code or 0)


def session_model(session: str | None, model: str | None) -> tuple[str | None, str]:
    """The model to open a session with: its own (refused in one line, before the TUI starts,
    when it cannot be found), or `--model` when given, with a note for the header when that
    differs from the session's. A session that cannot be read opens as before (the TUI says why)."""
    from lenscope.models.sources import DEMO_MODEL_NAME, model_exists  # lazy: blas
    from lenscope.storage import session as sessions  # lazy: blas

    if not session:
        return model, ""
    try:
        saved = sessions.load(session).model
    except BadInput:
        return model, ""
    if model is None:
        if saved and saved != DEMO_MODEL_NAME and not model_exists(saved):
            raise BadInput(f"session '{session}': its model '{saved}' cannot be found here (give --model to open "
                           "it with another)")
        return saved, ""
    if (saved or DEMO_MODEL_NAME) != model:
        return model, f"session made with {saved or DEMO_MODEL_NAME}"
    return model, ""
