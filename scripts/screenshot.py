"""Screenshot the real app in a real terminal: tmux runs memetui, capture-pane -e, rich -> SVG -> PNG.

    python scripts/screenshot.py [--index sample_index] [--keys "l l"] [--out docs/screenshot.png]

Needs tmux and rsvg-convert (Debian: librsvg2-bin).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    """Run memetui in tmux, send keys, capture the coloured screen, write SVG and PNG."""
    from rich.console import Console
    from rich.text import Text

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default=str(ROOT / "sample_index"))
    parser.add_argument("--keys", default="", help="space-separated tmux key names to send before the capture")
    parser.add_argument("--size", default="160x46")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    name = f"shot-{uuid.uuid4().hex[:6]}"
    command = f"HF_HUB_OFFLINE=1 TERM=xterm-256color COLORTERM=truecolor {sys.executable} -m memetui.cli {args.index} --no-history"
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", str(width), "-y", str(height), command], check=True)
    try:
        time.sleep(6)
        for key in args.keys.split():
            subprocess.run(["tmux", "send-keys", "-t", name, key], check=True)
            time.sleep(1.5)
        time.sleep(3)
        screen = subprocess.run(["tmux", "capture-pane", "-e", "-p", "-t", name], capture_output=True, text=True).stdout
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
    console = Console(record=True, width=width, file=open("/dev/null", "w"), color_system="truecolor")
    console.print(Text.from_ansi(screen), end="")
    svg = args.out.with_suffix(".svg")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    console.save_svg(str(svg), title="memetui")
    subprocess.run(["rsvg-convert", "-o", str(args.out), str(svg)], check=True)
    svg.unlink()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
