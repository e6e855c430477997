"""OCR text shown to a person: escaped with memetui.text, the words of quoted terms highlighted."""

from __future__ import annotations

import re

from ..text import terminal_safe

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def match_spans(text: str, phrases: list[str]) -> list[tuple[int, int]]:
    """(start, end) of the words in raw `text` that occur in any of `phrases` (case-insensitive)."""
    wanted = {w.casefold() for phrase in phrases for w in _WORD.findall(phrase)}
    return [m.span() for m in _WORD.finditer(text) if m.group().casefold() in wanted]


def highlighted(text: str, phrases: list[str], style: str = "bold reverse"):
    """A rich Text of OCR `text`, every piece terminal-safe, words of `phrases` styled; never markup."""
    from rich.text import Text

    shown, at = Text(), 0
    for start, end in match_spans(text, phrases):  # spans on the raw text; each piece escaped alone
        shown.append(terminal_safe(text[at:start]))
        shown.append(terminal_safe(text[start:end]), style=style)
        at = end
    shown.append(terminal_safe(text[at:]))
    return shown
