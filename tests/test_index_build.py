"""Index building: counts, incremental updates, dedup, bad files, resume after SIGKILL."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import time

import numpy as np
import pytest

from conftest import TINY_MODEL, make_image, make_image_folder
from memetui.embed import Embedder
from memetui.index.ann import load_hnsw
from memetui.index.build import BuildOptions, IndexBuilder, open_or_create
from memetui.index.store import IndexStore


def build(images, index):
    embedder = Embedder(TINY_MODEL, f"{TINY_MODEL}.safetensors", device="cpu")
    store = open_or_create(index, images, embedder)
    summary = IndexBuilder(store, embedder, BuildOptions(batch_size=4, workers=2)).run()
    store.close()
    return summary, IndexStore.open(index)


def assert_consistent(store: IndexStore, expected_live: int):
    """Embeddings, graph, items and files agree; every live file maps to exactly one row."""
    assert store.embeddings.shape == (store.count, store.dim)
    norms = np.linalg.norm(store.embeddings.astype(np.float32), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=2e-3)
    graph = load_hnsw(store.path / "hnsw.bin", store.dim, store.count, 64)
    assert graph.get_current_count() == store.count
    ids = [r for (r,) in store.db.execute("SELECT id FROM items ORDER BY id")]
    assert ids == list(range(store.count))
    assert int(store.live_mask().sum()) == expected_live
    paths = [p for (p,) in store.db.execute("SELECT path FROM files WHERE status IN ('ok', 'duplicate')")]
    assert len(paths) == len(set(paths))


def test_build_indexes_every_image_once(tiny_model_dir, tmp_path):
    images = make_image_folder(tmp_path / "img", 12)
    summary, store = build(images, tmp_path / "idx")
    assert (summary.added, summary.errors, summary.unchanged) == (12, 0, 0)
    assert store.count == 12 and store.manifest.model.name == TINY_MODEL
    assert_consistent(store, 12)
    assert len(list(store.thumbs_dir.rglob("*.webp"))) == 12
    again, store = build(images, tmp_path / "idx")
    assert (again.added, again.unchanged) == (0, 12)


def test_incremental_add_modify_delete(tiny_model_dir, tmp_path):
    images = make_image_folder(tmp_path / "img", 8)
    build(images, tmp_path / "idx")
    make_image(images / "new" / "added.png", seed=100)
    os.remove(images / "red_000.png")
    modified = images / "green_001.png"
    make_image(modified, seed=200, size=(30, 30))
    os.utime(modified, (time.time() + 5, time.time() + 5))
    summary, store = build(images, tmp_path / "idx")
    assert (summary.added, summary.missing, summary.unchanged) == (2, 1, 6)
    assert store.count == 10  # rows are never reused: the old contents are tombstoned
    assert_consistent(store, 8)
    live_paths = {p.name for p in store.paths(np.flatnonzero(store.live_mask()))}
    assert "added.png" in live_paths and "red_000.png" not in live_paths
    assert store.status_counts()["missing"] == 1


def test_deleted_then_restored_file_is_live_again(tiny_model_dir, tmp_path):
    images = make_image_folder(tmp_path / "img", 6)
    build(images, tmp_path / "idx")
    shutil.move(images / "blue_002.png", tmp_path / "aside.png")
    _, store = build(images, tmp_path / "idx")
    assert int(store.live_mask().sum()) == 5
    shutil.move(tmp_path / "aside.png", images / "blue_002.png")
    summary, store = build(images, tmp_path / "idx")
    assert summary.added == 0 and store.count == 6
    assert_consistent(store, 6)


def test_identical_content_is_stored_once(tiny_model_dir, tmp_path):
    images = make_image_folder(tmp_path / "img", 4)
    shutil.copy(images / "red_000.png", images / "copy_a.png")
    (images / "sub").mkdir()
    shutil.copy(images / "red_000.png", images / "sub" / "copy_b.png")
    summary, store = build(images, tmp_path / "idx")
    assert summary.added == 4 and summary.duplicates == 2
    assert store.count == 4 and store.status_counts()["duplicate"] == 2


def test_bad_files_are_recorded_and_do_not_stop_the_build(tiny_model_dir, tmp_path):
    from PIL import Image

    from test_image_files import write_png_header_only

    images = make_image_folder(tmp_path / "img", 5)
    (images / "zero.png").write_bytes(b"")
    (images / "text.jpg").write_text("not an image at all")
    write_png_header_only(images / "huge.png", 30000, 30000)
    cut = images / "truncated.jpg"
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(cut)
    cut.write_bytes(cut.read_bytes()[:2000])
    (images / "readme.txt").write_text("skipped: not an image name")
    summary, store = build(images, tmp_path / "idx")
    assert (summary.added, summary.errors, summary.skipped) == (5, 4, 1)
    reasons = dict(store.errors())
    assert set(reasons) == {"zero.png", "text.jpg", "huge.png", "truncated.jpg"}
    assert "too large" in reasons["huge.png"] and "empty" in reasons["zero.png"]
    assert_consistent(store, 5)


def test_sigkill_during_build_then_rerun_resumes(tiny_model_dir, tmp_path, monkeypatch):
    from reliability_helpers import fork_cli, index_args, one_torch_thread, reap, use_cached_embedder

    use_cached_embedder(monkeypatch)  # a forked child: the model is loaded once, in this process
    restore = one_torch_thread()
    images = tmp_path / "img"
    for i in range(80):
        make_image(images / f"p{i:04d}.png", seed=i, size=(96, 96))
    index = tmp_path / "idx"
    pid = fork_cli(index_args(images, index))
    committed = 0
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with sqlite3.connect(f"file:{index / 'items.sqlite'}?mode=ro", uri=True, timeout=1) as db:
                committed = db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        except sqlite3.Error:
            committed = 0
        if committed >= 10:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    code = reap(pid)
    restore()
    assert code == -signal.SIGKILL, "the build finished before it could be killed"
    assert committed < 80
    summary, store = build(images, index)
    assert summary.added + summary.unchanged == 80 and summary.unchanged >= 10
    assert store.count == 80
    assert_consistent(store, 80)


def test_other_model_cannot_update_the_index(tiny_model_dir, tmp_path):
    from memetui.errors import ModelMismatchError

    images = make_image_folder(tmp_path / "img", 4)
    build(images, tmp_path / "idx")
    other = tiny_model_dir / "other.safetensors"
    tensors = __import__("safetensors.torch", fromlist=["load_file"]).load_file(tiny_model_dir / f"{TINY_MODEL}.safetensors")
    tensors["logit_scale"] = tensors["logit_scale"] + 1
    __import__("safetensors.torch", fromlist=["save_file"]).save_file(tensors, other)
    with pytest.raises(ModelMismatchError, match="does not match the index model"):
        open_or_create(tmp_path / "idx", images, Embedder(TINY_MODEL, str(other), device="cpu"))
