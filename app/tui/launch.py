"""Starting the Textual App: the one place where app/ meets screens/."""

from __future__ import annotations

import os
import sys


def run_tui(args) -> None:
    from lenscope.app.models.sources import cache_root
    from lenscope.screens.app import LenscopeApp

    # the session is kept in the cache after every run, and offered back after a crash
    app = LenscopeApp(model=args.model, prompt=args.prompt, marks=args.mark, lens_specs=args.lens,
                      session=args.session, trust_remote_code=args.trust_remote_code,
                      chat=True if args.chat else None, system=args.system, recovery=cache_root() / "recovery")
    app.run()
    # MLX used from worker threads can abort in its exit-time destructors
    # (ml-explore/mlx#3126); everything is saved by now, so leave without them.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(app.return_code or 0)
