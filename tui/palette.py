"""The command palette's provider: every action a `Key` gives a title (tui/keys.py)."""

from __future__ import annotations

from textual.command import DiscoveryHit, Hit, Hits, Provider


class LenscopeCommands(Provider):
    """Every app action in the command palette, listed before anything is typed."""

    async def discover(self) -> Hits:
        for name, action, help_text in self.app.PALETTE:  # type: ignore[attr-defined]
            yield DiscoveryHit(name, lambda a=action: self.app.palette_action(a), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, action, help_text in self.app.PALETTE:  # type: ignore[attr-defined]
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), lambda a=action: self.app.palette_action(a),
                          help=help_text)
