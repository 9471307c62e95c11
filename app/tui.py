"""The Textual App: the one place where app/ meets screens/."""

from __future__ import annotations


def run_tui(args) -> None:
    from screens.app import LenscopeApp

    LenscopeApp(model=args.model, prompt=args.prompt, marks=args.mark, lens_specs=args.lens,
                session=args.session, trust_remote_code=args.trust_remote_code).run()
