"""The real `memetui` in a real terminal (tmux): the grid and the feature panel are on screen."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def capture(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout


def wait_for(session: str, predicate, timeout: float = 60.0) -> str:
    deadline = time.time() + timeout
    screen = ""
    while time.time() < deadline:
        screen = capture(session)
        if predicate(screen):
            return screen
        time.sleep(0.2)
    raise AssertionError(f"screen never matched; last screen:\n{screen}")


def test_memetui_in_tmux_shows_grid_and_feature_panel(tiny_model_dir, tmp_path):
    from conftest import build_tiny_index, make_image_folder
    from memetui.cli import main

    index = build_tiny_index(make_image_folder(tmp_path / "images", 30), tmp_path / "index")
    assert main(["train-sae", str(index), "--latents", "64", "--k", "4", "--epochs", "2", "--batch", "16",
                 "--name", "tiny", "--device", "cpu"]) == 0
    name = f"memetui-test-{uuid.uuid4().hex[:8]}"
    env = {"MEMETUI_MODELS": str(tiny_model_dir), "HF_HUB_OFFLINE": "1", "TERM": "xterm-256color",
           "MEMETUI_DATA_DIR": str(tmp_path / "data"), "MEMETUI_CONFIG_DIR": str(tmp_path / "config")}
    command = " ".join([*(f"{k}={v}" for k, v in env.items()), sys.executable, "-m", "memetui.cli", str(index),
                        "--no-history", "--graphics", "halfblock", "--device", "cpu"])
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "150", "-y", "48", command], check=True,
                   env={**os.environ, "TERM": "xterm-256color"})
    try:
        scores = re.compile(r"[+-]\d\.\d{3}")
        screen = wait_for(name, lambda s: "SAE directions" in s and len(scores.findall(s)) >= 12)  # results are up
        subprocess.run(["tmux", "send-keys", "-t", name, "l"], check=True)  # may land before the SAE: queued
        assert "query:" in screen and "images" in screen and "mode sae" in screen
        assert any(n.endswith(".png") or ".png" in n for n in screen.split())
        screen = wait_for(name, lambda s: "sae" in s.split("query:")[1].splitlines()[0] if "query:" in s else False)
        assert "features of the query" in screen
        subprocess.run(["tmux", "send-keys", "-t", name, "q"], check=True)
        deadline = time.time() + 15
        while time.time() < deadline and subprocess.run(["tmux", "has-session", "-t", name],
                                                        capture_output=True).returncode == 0:
            time.sleep(0.2)
        assert subprocess.run(["tmux", "has-session", "-t", name], capture_output=True).returncode != 0
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
