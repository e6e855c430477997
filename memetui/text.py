"""Text shown to a person: one escaping policy for the terminal, Rich/Textual and HTML.

The engine returns raw strings (file names, labels, OCR text, error messages). Whatever shows
them escapes them *at display time* with one of these functions, and nowhere else:

- `terminal_safe`: control characters (C0, DEL, C1 such as 0x9B CSI), bidi overrides and
  isolates, and lone surrogates (undecodable bytes of a file name) become visible escapes such as
  ``\\x1b``, ``\\u202e``, ``\\udce9``: ESC/OSC/CSI sequences and RLO never reach a terminal.
- `markup_safe`: `terminal_safe`, then Rich markup escaped (``[bold]`` shows as typed), for the few
  places that must build a markup string (Textual notifications).
- `literal`: a `rich.text.Text` holding the terminal-safe text, never parsed as markup.
- `html_safe`: `terminal_safe`, then HTML-escaped (quotes too), for attribute and element text.
- `path_text`: a path (str, bytes or PathLike) as terminal-safe text; undecodable bytes show as
  ``\\xe9`` rather than failing.
"""

from __future__ import annotations

import html
import os
import unicodedata

_BIDI_CONTROLS = frozenset("\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _needs_escape(ch: str) -> bool:
    if ch in _BIDI_CONTROLS:
        return True
    category = unicodedata.category(ch)
    return category in ("Cc", "Cs", "Zl", "Zp") or (category == "Cf" and ch not in "\u200d")


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: an undecodable byte of a file name
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def terminal_safe(text: object) -> str:
    """`text` with every control, bidi-override and surrogate character shown as a visible escape."""
    text = text if isinstance(text, str) else str(text)
    if text.isprintable() and not any(ch in _BIDI_CONTROLS for ch in text):
        return text
    return "".join(_escape_char(ch) if _needs_escape(ch) else ch for ch in text)


def one_line(text: object, limit: int | None = None) -> str:
    """`terminal_safe` text on one line: newlines and tabs shown as spaces, cut to `limit` with '…'."""
    flat = " ".join(str(text).replace("\t", " ").splitlines())
    flat = terminal_safe(flat)
    if limit is not None and len(flat) > limit:
        flat = flat[: max(limit - 1, 0)] + "…"
    return flat


def markup_safe(text: object) -> str:
    """`terminal_safe` text with Rich markup escaped, to embed in a markup string."""
    from rich.markup import escape

    return escape(terminal_safe(text))


def literal(text: object, style: str = ""):
    """A rich `Text` of the terminal-safe text; never interpreted as markup."""
    from rich.text import Text

    return Text(terminal_safe(text), style=style)


def html_safe(text: object) -> str:
    """`terminal_safe` text, HTML-escaped for element text and quoted attributes."""
    return html.escape(terminal_safe(text), quote=True)


def path_text(path: str | bytes | os.PathLike) -> str:
    """A file path as terminal-safe text (bytes decoded with surrogateescape, then escaped)."""
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    return terminal_safe(os.fspath(path))
