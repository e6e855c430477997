"""Benchmark: cold start of `memetui` to first results on screen, in a real terminal (tmux).

    python bench/bench_startup.py [--index sample_index] [--runs 5]

Starts the real console script in a detached tmux session and polls capture-pane until the
result grid shows its score lines; prints each run and the median. Compare: `python -c "import
torch"` alone (what a start-up that loaded CLIP eagerly would at least pay).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

SCORE = re.compile(r"[+-]\d\.\d{3}")


def cold_start(index: Path, width: int = 150, height: int = 48) -> float:
    """Seconds from launching `memetui INDEX` until >= 12 result scores are on screen."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    command = f"HF_HUB_OFFLINE=1 TERM=xterm-256color {sys.executable} -m memetui.cli {index} --no-history"
    started = time.perf_counter()
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", str(width), "-y", str(height), command], check=True)
    try:
        while time.perf_counter() - started < 60:
            screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", name], capture_output=True, text=True).stdout
            if len(SCORE.findall(screen)) >= 12:
                return time.perf_counter() - started
            time.sleep(0.02)
        raise SystemExit("no results on screen after 60 s")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def main() -> None:
    """Print each run, the median, and `import torch` for scale."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from memetui.paths import SAMPLE_INDEX

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=SAMPLE_INDEX)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs = [cold_start(args.index) for _ in range(args.runs)]
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True, env={**os.environ})
    torch_import = time.perf_counter() - started
    print("cold start -> first results on screen: " + ", ".join(f"{r:.2f}" for r in runs) + " s")
    print(f"median {statistics.median(runs):.2f} s (target <= 3 s); `python -c 'import torch'` alone: {torch_import:.2f} s")


if __name__ == "__main__":
    main()
