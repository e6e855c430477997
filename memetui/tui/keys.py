"""The key map: default bindings (DESIGN.md) and user remapping from keys.json in the config dir.

keys.json maps binding ids to comma-separated keys, e.g. {"step_forward": "l,right,d"}.
"""

from __future__ import annotations

import json
from pathlib import Path

from textual.binding import Binding

from ..paths import user_config_dir

# (id, keys, action, description, shown in footer)
DEFAULT_KEYS: list[tuple[str, str, str, str, bool]] = [
    ("edit_query", "slash", "edit_query", "query", True),
    ("add_image", "i", "add_image(1)", "+image", True),
    ("add_negative", "minus", "add_image(-1)", "-image", False),
    ("next_direction", "j", "move_direction(1)", "next dir", False),
    ("previous_direction", "k", "move_direction(-1)", "prev dir", False),
    ("step_forward", "l,right", "step(1)", "step +", True),
    ("step_back", "h,left", "step(-1)", "step -", True),
    ("cycle_mode", "m", "cycle_mode", "mode", True),
    ("new_random", "n", "new_random", "new random", False),
    ("smaller_step", "left_square_bracket", "step_size(-1)", "step÷", False),
    ("larger_step", "right_square_bracket", "step_size(1)", "step×", False),
    ("undo", "u", "undo", "undo", True),
    ("redo", "ctrl+r", "redo", "redo", False),
    ("toggle_focus", "tab", "toggle_focus", "panel/grid", False),
    ("detail", "enter", "detail", "detail", False),
    ("gallery", "f", "gallery", "feature gallery", True),
    ("copy_path", "y", "copy_path", "copy path", False),
    ("open_original", "o", "open_original", "open", False),
    ("bookmark", "b", "bookmark", "bookmark", False),
    ("export", "e", "export", "export", False),
    ("help", "question_mark", "help", "help", True),
    ("quit", "q", "quit", "quit", True),
]


def default_bindings() -> list[Binding]:
    """App bindings with ids, so a keymap can remap them."""
    return [
        Binding(keys, action, description, show=show, id=binding_id, priority=binding_id == "toggle_focus")
        for binding_id, keys, action, description, show in DEFAULT_KEYS
    ]


def keys_file() -> Path:
    """Where users remap keys."""
    return user_config_dir() / "keys.json"


def load_keymap(path: Path | None = None) -> dict[str, str]:
    """User remapping {binding id: keys}; unknown ids and malformed files are ignored (with reason)."""
    path = path or keys_file()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    known = {binding_id for binding_id, *_ in DEFAULT_KEYS}
    return {str(k): str(v) for k, v in data.items() if k in known and isinstance(v, str) and v.strip()} \
        if isinstance(data, dict) else {}


def help_rows(keymap: dict[str, str]) -> list[tuple[str, str]]:
    """(keys, description) rows for the help screen, with the user's remapping applied."""
    rows = [(keymap.get(binding_id, keys).replace("_", " "), description)
            for binding_id, keys, _, description, _ in DEFAULT_KEYS]
    rows.append(("ctrl+p", "command palette"))
    return rows
