"""Screenshot the real app in a real terminal: tmux runs memetui, capture-pane -e, rich -> SVG -> PNG.

    python scripts/screenshot.py [--index sample_index] [--keys "l l"] [--out docs/screenshot.png]
    python scripts/screenshot.py --shot docs/step-0.png "/ c a t Enter" --shot docs/step-1.png "l l"

Each `--shot OUT KEYS` sends its keys (tmux key names, space-separated; a literal space is
`Space`) to the same running app and then captures it, so a sequence of shots shows one session.
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


def save_png(screen: str, width: int, out: Path) -> None:
    """Render the ANSI text of a captured pane to OUT (PNG, through an SVG written beside it)."""
    from rich.console import Console
    from rich.text import Text

    console = Console(record=True, width=width, file=open("/dev/null", "w"), color_system="truecolor")
    console.print(Text.from_ansi(screen), end="")
    svg = out.with_suffix(".svg")
    out.parent.mkdir(parents=True, exist_ok=True)
    console.save_svg(str(svg), title="memetui")
    subprocess.run(["rsvg-convert", "-o", str(out), str(svg)], check=True)
    svg.unlink()
    print(f"wrote {out}")


def capture(name: str) -> str:
    """The pane's text with its colours (ANSI)."""
    return subprocess.run(["tmux", "capture-pane", "-e", "-p", "-t", name],
                          capture_output=True, text=True, check=True).stdout


def wait_for_app(name: str, timeout: float = 90.0) -> None:
    """Wait until the app has drawn its status bar (start-up takes seconds on a busy machine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and " images" not in capture(name):
        time.sleep(0.5)
    time.sleep(2)


def main() -> None:
    """Run memetui in tmux, send each shot's keys, capture the coloured screen after each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default=str(ROOT / "sample_index"))
    parser.add_argument("--keys", default="", help="space-separated tmux key names to send before the capture")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    parser.add_argument("--shot", nargs=2, action="append", metavar=("OUT", "KEYS"),
                        help="capture to OUT after sending KEYS (repeatable; replaces --keys/--out)")
    parser.add_argument("--size", default="160x46")
    parser.add_argument("--wait", type=float, default=1.5, help="seconds after each key")
    args = parser.parse_args()
    shots = [(Path(out), keys) for out, keys in args.shot] if args.shot else [(args.out, args.keys)]
    width, height = map(int, args.size.split("x"))
    name = f"shot-{uuid.uuid4().hex[:6]}"
    command = (f"HF_HUB_OFFLINE=1 TERM=xterm-256color COLORTERM=truecolor {sys.executable} -m memetui.cli "
               f"{args.index} --no-history --graphics halfblock")
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", str(width), "-y", str(height), command], check=True)
    try:
        wait_for_app(name)
        for out, keys in shots:
            for key in keys.split():
                subprocess.run(["tmux", "send-keys", "-t", name, key], check=True)
                time.sleep(args.wait)
            time.sleep(3)
            save_png(capture(name), width, out)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


if __name__ == "__main__":
    main()
