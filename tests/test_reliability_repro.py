"""Issue 12's reproductions on the index/CLI side, each as a test: hostile and non-UTF-8 names,
read-only indexes, damaged derived files, moved indexes, deleted and renamed images, bad arguments."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3

import numpy as np
import pytest

from conftest import TINY_MODEL, make_image, make_image_folder
from reliability_helpers import build, check_snapshot, cli, index_args, leftovers, one_torch_thread, use_cached_embedder

OSC_NAME = "\x1b]0;pwned-title\x07\x1b[31mBROKEN.png"
HOSTILE = ["[bold red]x[/].png", "\x1b]0;pwned\x07.png", "[@click=app.quit]clickme.png", "rlo\u202egnp.png"]


@pytest.fixture(autouse=True)
def _setup(monkeypatch, tiny_model_dir):
    use_cached_embedder(monkeypatch)
    restore = one_torch_thread()
    yield
    restore()


def _no_raw_controls(text: str) -> None:
    assert not any(ch in text for ch in "\x1b\x07\x9b\u202e"), repr(text)


def test_hostile_file_names_print_literally_in_index_info_and_search(tmp_path):
    images = make_image_folder(tmp_path / "img\x1b[31m", 4)
    (images / "q[").mkdir()  # 'q[/].png' is the file '].png' in the folder 'q['
    for name in (OSC_NAME, "q[/].png", "[red]oops.png"):  # broken files: listed as skipped
        (images / name).write_bytes(b"not an image")
    for seed, name in enumerate(HOSTILE):
        make_image(images / name, seed=50 + seed)
    index = images / ".memetui"
    run = cli(*index_args(images, index))
    assert run.code == 0, run
    _no_raw_controls(run.out + run.err)
    assert "\\x1b]0;pwned-title\\x07\\x1b[31mBROKEN.png" in run.err
    assert "q[/].png" in run.err and "[red]oops.png" in run.err
    assert "img\\x1b[31m" in run.out
    info = cli("info", index)
    assert info.code == 0 and "img\\x1b[31m" in info.out
    _no_raw_controls(info.out)
    found = cli("search", "red", "-k", "8", "--index", index)
    assert found.code == 0
    _no_raw_controls(found.out)
    for shown in ("[bold red]x[/].png", "\\x1b]0;pwned\\x07.png", "[@click=app.quit]clickme.png", "rlo\\u202egnp.png"):
        assert shown in found.out


def test_a_non_utf8_file_name_indexes_and_shows_escaped(tmp_path):
    images = make_image_folder(tmp_path / "img", 3)
    odd = os.fsdecode(b"caf\xe9.png")
    make_image(images / odd, seed=9)
    summary = build(images, tmp_path / "idx")
    assert (summary.added, summary.errors) == (4, 0)
    again = build(images, tmp_path / "idx")
    assert (again.added, again.unchanged) == (0, 4)  # the bytes name round-trips through SQLite
    found = cli("search", "--image", images / odd, "-k", "1", "--index", tmp_path / "idx")
    assert found.code == 0 and "caf\\xe9.png" in found.out
    assert cli("info", tmp_path / "idx").code == 0
    from memetui.index.store import IndexStore

    store = IndexStore.open(tmp_path / "idx")
    assert all(p.is_file() for p in store.paths(np.flatnonzero(store.live_mask())))
    store.close()


def test_readers_leave_nothing_behind_and_never_write(tmp_path):
    images = make_image_folder(tmp_path / "img", 5)
    index = tmp_path / "idx"
    build(images, index)
    assert leftovers(index) == []
    before = {p.name: p.stat().st_mtime_ns for p in index.iterdir()}
    assert cli("info", index).code == 0
    assert cli("search", "red", "--index", index).code == 0
    check_snapshot(index)
    import gc

    gc.collect()
    assert leftovers(index) == []
    assert {p.name: p.stat().st_mtime_ns for p in index.iterdir()} == before
    from memetui.paths import cache_dir_for
    from memetui.index.store import IndexStore

    store = IndexStore.open(index)
    assert not cache_dir_for(store).is_relative_to(index)
    store.close()


def test_a_read_only_folder_opens_immutable(tmp_path, monkeypatch):
    from memetui.index import db as dbmod

    images = make_image_folder(tmp_path / "img", 3)
    index = tmp_path / "idx"
    build(images, index)
    with sqlite3.connect(index / "items.sqlite") as raw:  # a writer that could not leave WAL mode
        raw.execute("PRAGMA journal_mode=WAL")
    real_connect = sqlite3.connect

    def read_only_folder(target, *args, **kwargs):  # what SQLite says when it cannot create -shm
        if "immutable=1" not in str(target):
            raise sqlite3.OperationalError("unable to open database file")
        return real_connect(target, *args, **kwargs)

    monkeypatch.setattr(dbmod, "_writable", lambda path: False)
    monkeypatch.setattr(dbmod.sqlite3, "connect", read_only_folder)
    assert check_snapshot(index) == 3
    assert cli("info", index).code == 0


def _damage_embeddings(index, keep: int) -> None:
    emb = np.load(index / "embeddings.f16.npy")
    np.save(index / "embeddings.f16.npy", emb[:keep])


def test_short_or_missing_derived_files_are_reported_searched_and_repaired(tmp_path):
    images = make_image_folder(tmp_path / "img", 8)
    index = tmp_path / "idx"
    build(images, index)
    for damage in ("short", "missing", "graph"):
        if damage == "short":
            _damage_embeddings(index, 5)
        elif damage == "missing":
            (index / "embeddings.f16.npy").unlink()
        else:
            data = (index / "hnsw.bin").read_bytes()
            (index / "hnsw.bin").write_bytes(data[: len(data) // 2])
        info = cli("info", index)
        assert info.code == 0 and "problem  " in info.out and f"repair   memetui index {images}" in info.out, info
        assert cli("search", "red", "-k", "3", "--index", index).code == 0  # read from items.sqlite meanwhile
        from memetui.index.ann import AnnSearcher
        from memetui.index.store import IndexStore

        store = IndexStore.open(index)
        assert len(AnnSearcher(store, exact=False).search(np.ones(store.dim, np.float32), 3).rows) == 3
        store.close()
        assert cli(*index_args(images, index)).code == 0  # the repair
        assert check_snapshot(index) == 8


def test_more_rows_in_the_manifest_than_items_is_reported_then_repaired(tmp_path):
    images = make_image_folder(tmp_path / "img", 6)
    index = tmp_path / "idx"
    build(images, index)
    manifest = json.loads((index / "manifest.json").read_text())
    manifest["count"] = 9
    (index / "manifest.json").write_text(json.dumps(manifest))
    emb = np.load(index / "embeddings.f16.npy")
    np.save(index / "embeddings.f16.npy", np.concatenate([emb, emb[:3]]))
    info = cli("info", index)
    assert "the manifest counts 9 rows but items.sqlite holds 6" in info.out
    assert cli("search", "red", "-k", "9", "--index", index).code == 0
    assert cli(*index_args(images, index)).code == 0
    assert check_snapshot(index) == 6


def test_a_moved_index_finds_its_images_and_follows_a_moved_folder(tmp_path):
    images = make_image_folder(tmp_path / "a" / "img", 4)
    index = tmp_path / "a" / "idx"  # beside its images: root recorded as '../img'
    build(images, index)
    assert json.loads((index / "manifest.json").read_text())["root"] == "../img"
    moved = tmp_path / "elsewhere" / "deep" / "idx"
    moved.parent.mkdir(parents=True)
    shutil.move(index, moved)
    found = cli("search", "red", "-k", "4", "--index", moved)
    assert found.code == 0 and "missing" not in found.out and str(images) in found.out
    shutil.move(images, tmp_path / "img2")  # now the images move too: the old root is gone
    info = cli("info", moved)
    assert "is not there" in info.out
    assert cli(*index_args(tmp_path / "img2", moved)).code == 0  # re-pointed, nothing re-embedded
    assert check_snapshot(moved) == 4
    other = make_image_folder(tmp_path / "other", 2)
    refused = cli(*index_args(other, moved))
    assert refused.code == 2 and "use another index folder" in refused.err


def test_deleted_images_are_marked_and_renames_are_not_duplicates(tmp_path):
    images = make_image_folder(tmp_path / "img", 6)
    index = tmp_path / "idx"
    build(images, index)
    (images / "red_000.png").unlink()
    found = cli("search", "--image", images / "green_001.png", "-k", "6", "--index", index)
    assert found.out.count("(missing: deleted or moved since the last build)") == 1
    (images / "green_001.png").rename(images / "renamed.png")
    summary = build(images, index)
    assert (summary.renamed, summary.duplicates, summary.missing, summary.added) == (1, 0, 1, 0)


def test_bad_arguments_are_one_line_errors(tmp_path, monkeypatch):
    images = make_image_folder(tmp_path / "img", 2)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    run = cli(*index_args(images, a_file))
    assert run.code == 2 and "is a file, not a folder" in run.err and run.err.count("\n") == 1
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    import memetui.embed
    from reliability_helpers import REAL_EMBEDDER

    monkeypatch.setattr(memetui.embed, "Embedder", REAL_EMBEDDER)
    run = cli("index", images, "--index", tmp_path / "i2", "--model", TINY_MODEL, "--pretrained", empty, "--no-ocr")
    assert run.code == 1 and "empty" in run.err and run.err.count("\n") == 1
    build(images, tmp_path / "idx")
    run = cli("search", "--", "red", "--index", tmp_path / "idx")
    assert run.code == 2 and "put options before `--`" in run.err
    from memetui.cli import build_parser

    compare = build_parser(["compare"])._subparsers._group_actions[0].choices["compare"]
    assert any("--device" in action.option_strings for action in compare._actions)
