"""`memetui import`: every input format, remote items, model check, kill + resume, malformed inputs."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_MODEL, make_image_folder
from memetui.cli import main
from memetui.index.ann import AnnSearcher
from memetui.index.importer import ImportOptions, Importer, resolve_model
from memetui.index.importers import ImportFormatError, open_source
from memetui.index.store import IndexStore

DIM = 32


def unit_rows(n: int, seed: int, dim: int = DIM, dtype=np.float16) -> np.ndarray:
    """n random unit rows."""
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(dtype)


def clip_retrieval_folder(folder: Path, shards=(100, 120, 80)) -> np.ndarray:
    """img_emb/img_emb_K.npy + metadata/metadata_K.parquet (K zero-padded); returns all rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "img_emb").mkdir(parents=True)
    (folder / "metadata").mkdir()
    parts, first = [], 0
    for k, rows in enumerate(shards):
        data = unit_rows(rows, seed=k)
        np.save(folder / "img_emb" / f"img_emb_{k:02d}.npy", data)
        ids = range(first, first + rows)
        table = pa.table({"image_path": [f"/nowhere/{i}.jpg" for i in ids], "caption": [f"caption {i}" for i in ids],
                          "url": [f"https://example.com/{i}.jpg" for i in ids], "width": list(ids)})
        pq.write_table(table, folder / "metadata" / f"metadata_{k:02d}.parquet")
        parts.append(data)
        first += rows
    return np.concatenate(parts)


def run_import(src: Path, out: Path, model="ViT-B/32", **kwargs):
    """Import `src` into `out` in-process (model not checked unless asked)."""
    options = ImportOptions(chunk=kwargs.pop("chunk", 64), trust_model=kwargs.pop("trust", True))
    name, pretrained = resolve_model(model, kwargs.pop("pretrained", None))
    return Importer(open_source(src, kwargs.pop("meta", None)), out, name, pretrained, options).run()


def test_clip_retrieval_shards_import_as_remote_items_with_metadata(tmp_path):
    data = clip_retrieval_folder(tmp_path / "cr")
    summary = run_import(tmp_path / "cr", tmp_path / "out")
    store = IndexStore.open(tmp_path / "out")
    assert summary.rows == store.count == 300 and summary.remote == 300
    assert np.asarray(store.embeddings).tobytes() == data.tobytes()  # fp16 unit rows copied bit for bit
    item = store.item(150)
    assert (item.url, item.caption, item.has_image, item.status) == ("https://example.com/150.jpg", "caption 150", False, "remote")
    assert json.loads(item.meta) == {"width": 150}
    hits = AnnSearcher(store).search(data[42].astype(np.float32), 5)
    assert hits.rows[0] == 42
    assert store.model.name == "ViT-B-32" and store.model.pretrained == "openai"
    assert not (tmp_path / "out" / ".import").exists()
    again = run_import(tmp_path / "cr", tmp_path / "out")  # same source again: nothing to do
    assert again.backend == "up to date" and again.rows == 300


KILLER = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from memetui.index.importer import ImportOptions, Importer
from memetui.index.importers import open_source
def progress(stage, done, total):
    if stage == "import" and done >= {kill_at}:
        os.kill(os.getpid(), signal.SIGKILL)
Importer(open_source({src!r}), {out!r}, "ViT-B-32", "openai", ImportOptions(chunk=64, trust_model=True), progress).run()
"""


def test_import_killed_midway_resumes_to_an_identical_index(tmp_path):
    clip_retrieval_folder(tmp_path / "cr")
    run_import(tmp_path / "cr", tmp_path / "straight")
    script = KILLER.format(tests=str(Path(__file__).parent), kill_at=150, src=str(tmp_path / "cr"), out=str(tmp_path / "out"))
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "out" / "manifest.json").exists()  # not an index until published
    summary = run_import(tmp_path / "cr", tmp_path / "out")
    assert 0 < summary.resumed_at < 300
    a, b = IndexStore.open(tmp_path / "straight"), IndexStore.open(tmp_path / "out")
    assert np.asarray(a.embeddings).tobytes() == np.asarray(b.embeddings).tobytes()
    query = "SELECT items.id, path, status, url, caption, meta FROM items LEFT JOIN item_meta USING (id) ORDER BY id"
    assert list(a.db.execute(query)) == list(b.db.execute(query))


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_npy_files_with_a_table_import_in_numeric_order(tmp_path, suffix):
    src = tmp_path / "src"
    src.mkdir()
    first, second = unit_rows(90, 1, dtype=np.float32), unit_rows(60, 2, dtype=np.float32)
    np.save(src / "part_10.npy", second)
    np.save(src / "part_2.npy", first)  # numeric order: part_2 before part_10
    rows = [{"url": f"https://x/{i}", "caption": f"c{i}", "score": i / 2} for i in range(150)]
    write_table(src / f"meta{suffix}", rows)
    run_import(src, tmp_path / "out", model="open_clip:ViT-B-32/laion2b_s34b_b79k")
    store = IndexStore.open(tmp_path / "out")
    np.testing.assert_allclose(store.embeddings[:], np.concatenate([first, second]), atol=1e-3)
    assert store.item(100).url == "https://x/100" and store.item(100).caption == "c100"
    assert store.model.pretrained == "laion2b_s34b_b79k"


def write_table(path: Path, rows: list[dict]) -> None:
    """Write dict rows as JSONL, CSV or parquet by suffix."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif path.suffix == ".csv":
        import csv

        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)


def test_rclip_database_imports_live_rows_and_local_images(tmp_path):
    images = make_image_folder(tmp_path / "photos", 4)
    db = sqlite3.connect(tmp_path / "db.sqlite3")
    db.execute("CREATE TABLE images (id INTEGER PRIMARY KEY, deleted BOOLEAN, filepath TEXT NOT NULL UNIQUE,"
               " modified_at DATETIME NOT NULL, size INTEGER NOT NULL, vector BLOB NOT NULL, indexing BOOLEAN, hash TEXT)")
    vectors = unit_rows(200, 5, dim=512, dtype=np.float32)
    files = sorted(images.iterdir())
    for i, v in enumerate(vectors):
        path = str(files[i]) if i < len(files) else f"/gone/{i}.png"
        db.execute("INSERT INTO images (id, deleted, filepath, modified_at, size, vector) VALUES (?, ?, ?, 0, 1, ?)",
                   (i + 1, 1 if i == 7 else None, path, v.tobytes()))
    db.commit()
    db.close()
    summary = run_import(tmp_path / "db.sqlite3", tmp_path / "out")
    store = IndexStore.open(tmp_path / "out")
    assert store.count == 199 and summary.local == 4 and summary.remote == 195
    assert store.item(0).has_image and store.item(0).path == files[0]
    assert store.dim == 512 and store.model.name == "ViT-B-32"  # rclip's model by default

    # no `files` rows are written (those record `memetui index`'s scan); what the app draws and
    # `o` opens comes from the item rows: a local image's own file, a remote row's card and reason
    from memetui.session.searcher import Searcher

    assert store.db.execute("SELECT COUNT(*) FROM files").fetchone()[0] == 0
    searcher = Searcher(store)
    local = searcher.search(np.asarray(store.embeddings[0], np.float32), 1)[0]
    assert local.row == 0 and local.path == files[0] and local.thumbnail == files[0]
    assert local.absent is None and local.card is None
    remote = searcher.search(np.asarray(store.embeddings[150], np.float32), 1)[0]
    assert remote.row == 150 and remote.absent.startswith("not on this machine") and remote.card == remote.absent


def test_memery_pt_loads_weights_only(tmp_path):
    import torch

    vectors = torch.nn.functional.normalize(torch.randn(120, 512), dim=1)
    torch.save({i: {"slug": f"s{i}", "fpath": f"/pics/{i}.jpg", "embed": vectors[i]} for i in range(120)}, tmp_path / "memery.pt")
    run_import(tmp_path, tmp_path / "out")
    store = IndexStore.open(tmp_path / "out")
    assert store.count == 120 and str(store.item(3).path) == "/pics/3.jpg"
    np.testing.assert_allclose(store.embeddings[3], vectors[3].numpy(), atol=1e-3)


def malformed(tmp_path: Path, case: str) -> tuple[Path, str]:
    """A broken clip-retrieval folder and the file its error must name."""
    src = tmp_path / "cr"
    clip_retrieval_folder(src, shards=(50, 40))
    npy, meta = src / "img_emb" / "img_emb_01.npy", src / "metadata" / "metadata_01.parquet"
    if case == "row counts":
        np.save(npy, unit_rows(41, 9))
        return src, "metadata_01.parquet"
    if case == "dtype":
        np.save(npy, np.ones((40, DIM), np.int8))
    elif case == "dimension":
        np.save(npy, unit_rows(40, 9, dim=DIM + 1))
    elif case == "truncated":
        npy.write_bytes(npy.read_bytes()[:1000])
    elif case == "column":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"caption": ["x"] * 40}), meta)
        return src, "metadata_01.parquet"
    return src, "img_emb_01.npy"


@pytest.mark.parametrize("case", ["row counts", "dtype", "dimension", "truncated", "column"])
def test_malformed_input_is_one_line_naming_the_file_and_writes_nothing(tmp_path, capsys, case):
    src, culprit = malformed(tmp_path, case)
    code = main(["import", str(src), "--index", str(tmp_path / "out"), "--model", "ViT-B/32", "--trust-model"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err and culprit in err and err.startswith("memetui: error:")
    assert not (tmp_path / "out").exists()


def test_missing_model_and_unknown_source_are_usage_errors(tmp_path, capsys):
    src = tmp_path / "cr"
    clip_retrieval_folder(src, shards=(30,))
    assert main(["import", str(src), "--index", str(tmp_path / "out")]) == 2
    assert "--model" in capsys.readouterr().err
    (tmp_path / "junk").mkdir()
    with pytest.raises(ImportFormatError, match="junk"):
        open_source(tmp_path / "junk")


def test_model_spellings():
    assert resolve_model("ViT-B/32") == ("ViT-B-32", "openai")
    assert resolve_model("ViT-L/14@336px") == ("ViT-L-14-336", "openai")
    assert resolve_model("open_clip:ViT-SO400M-14-SigLIP/webli") == ("ViT-SO400M-14-SigLIP", "webli")
    assert resolve_model("ViT-B-16", "laion2b_s34b_b88k") == ("ViT-B-16", "laion2b_s34b_b88k")


def test_model_claim_is_checked_on_local_images(tmp_path, tiny_model_dir, capsys):
    from memetui.embed import Embedder

    images = sorted(make_image_folder(tmp_path / "imgs", 6).iterdir())
    embedder = Embedder(TINY_MODEL, f"{TINY_MODEL}.safetensors")
    src = tmp_path / "src"
    src.mkdir()
    np.save(src / "emb.npy", embedder.embed_images(images).astype(np.float16))
    write_table(src / "emb.csv", [{"path": str(p), "caption": p.stem} for p in images])
    args = ["import", str(src / "emb.npy"), "--index", str(tmp_path / "ok"), "--model", TINY_MODEL,
            "--pretrained", f"{TINY_MODEL}.safetensors", "--device", "cpu"]
    assert main(args) == 0
    assert "model checked on 6 local images" in capsys.readouterr().out
    store = IndexStore.open(tmp_path / "ok")
    store.model.check_compatible(embedder.info)  # same identity as an index built with this model
    assert store.item(0).has_image
    np.save(src / "emb.npy", unit_rows(6, 3))  # not what the model makes
    args[3] = str(tmp_path / "bad")
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert "mean cosine" in err and "\n" not in err and not (tmp_path / "bad").exists()
    assert main(args + ["--trust-model"]) == 0
