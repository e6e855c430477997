"""The command palette's provider: every key-map action, found by its description."""

from __future__ import annotations

from functools import partial

from textual.command import Hit, Hits, Provider

from .keys import DEFAULT_KEYS


class ActionCommands(Provider):
    """Command palette: every key-map action by its description."""

    async def search(self, query: str) -> Hits:
        """Actions whose description (and first key) match what was typed."""
        matcher = self.matcher(query)
        app = self.app
        for _, keys, action, description, _ in DEFAULT_KEYS:
            label = f"{description} ({keys.split(',')[0].replace('_', ' ')})"
            score = matcher.match(label)
            if score > 0:
                yield Hit(score, matcher.highlight(label), partial(app.run_action, action), help=action)
