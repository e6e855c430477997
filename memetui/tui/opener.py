"""Open an original image with the system viewer, when there is a display to show it on."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def open_original(path: Path) -> str:
    """Start the system viewer on `path` when a display is available; the message to show (raw text)."""
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    has_display = sys.platform == "darwin" or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if has_display and shutil.which(opener):
        subprocess.Popen([opener, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return f"opening {path.name}"
    return f"no display: {path}"
