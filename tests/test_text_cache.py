"""Persistent text-embedding cache: round trip, damaged entries, and `memetui search` hits without torch."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from conftest import build_tiny_index, make_image_folder
from memetui import text_cache
from memetui.cli import main


def test_round_trip_per_model_and_text():
    vector = np.random.default_rng(0).standard_normal(48).astype(np.float32)
    assert text_cache.get("a" * 64, "cat") is None
    text_cache.put("a" * 64, "cat", vector)
    np.testing.assert_array_equal(text_cache.get("a" * 64, "cat"), vector)
    assert text_cache.get("b" * 64, "cat") is None and text_cache.get("a" * 64, "Cat") is None


def test_damaged_entry_reads_as_a_miss():
    text_cache.put("c" * 64, "dog", np.ones(8, np.float32))
    entry = next(text_cache.cache_dir().rglob("*.f32"))
    entry.write_bytes(entry.read_bytes()[:-3])
    assert text_cache.get("c" * 64, "dog") is None


HIT = """
import sys
from memetui.cli import main
code = main(["search", "red", "2:blue", "-k", "5", "--index", sys.argv[1]])
print("heavy:", sorted(m for m in ("torch", "open_clip") if m in sys.modules), code)
"""


def test_repeated_search_is_answered_from_the_cache_without_torch(tmp_path, tiny_model_dir, capsys):
    index = build_tiny_index(make_image_folder(tmp_path / "imgs", 16), tmp_path / "idx")
    assert main(["search", "red", "2:blue", "-k", "5", "--index", str(index)]) == 0
    first = capsys.readouterr().out
    hit = subprocess.run([sys.executable, "-c", HIT, str(index)], capture_output=True, text=True, env=dict(os.environ))
    lines = hit.stdout.splitlines()
    assert lines[-1] == "heavy: [] 0", hit.stderr
    assert "\n".join(lines[:-1]) == first.rstrip("\n")  # same ranking and scores as the model path
