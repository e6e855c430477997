"""Open an original image with the system viewer, when there is a display to show it on."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def open_original(target: Path | str) -> str:
    """Start the system viewer on a file (or the browser on a URL) when a display is available;
    returns the message to show (raw text)."""
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    has_display = sys.platform == "darwin" or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if has_display and shutil.which(opener):
        subprocess.Popen([opener, str(target)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return f"opening {target.name if isinstance(target, Path) else target}"
    return f"no display: {target}"
