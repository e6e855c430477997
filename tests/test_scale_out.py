"""Scale-out (issue 17): embedding on a local Ray (num_cpus=2) and vectors served from milvus-lite.

Ray starts once for this module. Everything but the missing-extra tests is skipped when
`memetui[scale]` (ray[data], pymilvus, milvus-lite) is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_MODEL, build_tiny_index, make_image_folder

from memetui.cli import main

def installed(name: str) -> bool:
    """Whether module `name` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError, AttributeError):
        return False


SCALE = all(installed(name) for name in ("ray", "pymilvus", "milvus_lite"))
pytestmark = pytest.mark.scale  # a tier of its own: `python -m pytest -m scale` (CI runs both tiers)
needs_scale = pytest.mark.skipif(not SCALE, reason="memetui[scale] is not installed (pip install 'memetui[scale]')")
PRETRAINED = f"{TINY_MODEL}.safetensors"


@pytest.fixture(scope="module")
def folder(tiny_model_dir, tmp_path_factory):
    """30 images and the single-process index built from them (once per module)."""
    os.environ["MEMETUI_MODELS"] = str(tiny_model_dir)
    base = tmp_path_factory.mktemp("scale")
    images = make_image_folder(base / "images", 30)
    return images, build_tiny_index(images, base / "index")


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory):
    """A local Ray with 2 CPUs, its session files in a short temporary folder, shut down after the module."""
    if not SCALE:
        pytest.skip("memetui[scale] is not installed")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray

    temp = tmp_path_factory.mktemp("ray")
    if len(str(temp)) > 40:  # Ray's socket paths under it must stay below the 107-byte AF_UNIX limit
        temp = Path(tempfile.mkdtemp(prefix="ray"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=str(temp))
    yield ray
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


def embed_on_ray(images: Path, shards: Path, progress=None, actors=None):
    from memetui.index.ray_embed import RayEmbedOptions, embed_to_shards

    options = RayEmbedOptions(shard_rows=12, batch_size=4, actors=actors)
    return embed_to_shards(images, shards, TINY_MODEL, PRETRAINED, options, progress)


def read_shards(shards: Path) -> tuple[list[str], np.ndarray]:
    import pyarrow.parquet as pq

    paths, vectors = [], []
    for npy in sorted((shards / "img_emb").glob("img_emb_*.npy")):
        meta = shards / "metadata" / npy.name.replace("img_emb", "metadata").replace(".npy", ".parquet")
        paths += pq.read_table(meta).column("image_path").to_pylist()
        vectors.append(np.load(npy))
    return paths, np.concatenate(vectors)


class Killed(Exception):
    """Raised from the progress callback right after the first shard is written: the driver dies there."""


@pytest.fixture(scope="module")
def resumed_job(folder, ray_local, tmp_path_factory):
    """The folder embedded on Ray by a job killed after its first shard, run again, then `memetui index --ray`.

    Two Ray jobs in all: the last command finds every shard written and only imports them.
    """
    images, _ = folder
    base = tmp_path_factory.mktemp("ray-job")
    shards = base / "shards"

    def kill_after_first_shard(stage, done, total):
        if stage == "shard":
            raise Killed

    with pytest.raises(Killed):
        embed_on_ray(images, shards, kill_after_first_shard, actors=1)
    written = sorted(p.name for p in (shards / "img_emb").iterdir())
    first = (shards / "img_emb" / "img_emb_0.npy").stat().st_mtime_ns
    summary = embed_on_ray(images, shards)  # one actor per CPU slot: 2
    assert main(["index", str(images), "--index", str(base / "index"), "--ray", "--shards", str(shards),
                 "--shard-rows", "12", "--batch", "4", "--model", TINY_MODEL, "--pretrained", PRETRAINED,
                 "--device", "cpu"]) == 0
    return shards, written, first, summary, base / "index"


def uninterrupted_vectors(images: Path) -> np.ndarray:
    """What an uninterrupted job computes: every block (4 files, never across shards) through the same actor code."""
    import torch

    from memetui.index.ray_embed import ShardEmbedder
    from memetui.index.scan import scan_folder

    files = [os.fsencode(path) for _, path in scan_folder(images).files]
    blocks = [files[lo:lo + 4] for shard in range(0, len(files), 12) for lo in range(shard, min(shard + 12, len(files)), 4)]
    threads = torch.get_num_threads()
    try:
        actor = ShardEmbedder(TINY_MODEL, PRETRAINED, "cpu", os.environ["MEMETUI_MODELS"], threads=1)
        return np.concatenate([actor({"path": np.array(block, dtype=object)})["vector"] for block in blocks])
    finally:
        torch.set_num_threads(threads)


# -- Ray ---------------------------------------------------------------------------------------------
@needs_scale
def test_folder_embedded_on_ray_equals_the_single_process_index(folder, resumed_job):
    from memetui.index.store import IndexStore

    _, index = folder
    *_, summary, ray_index = resumed_job
    assert summary.files == 30 and summary.shards == 3 and summary.actors == 2
    single, ray_built = IndexStore.open(index), IndexStore.open(ray_index)
    rows = {str(single.item(row).path): row for row in range(single.count)}
    ray_rows = {str(ray_built.item(row).path): row for row in range(ray_built.count)}
    assert sorted(ray_rows) == sorted(rows) and ray_built.live_mask().all()
    assert ray_built.model == single.model
    paths = sorted(rows)
    a = np.asarray(single.embeddings, np.float32)[[rows[p] for p in paths]]
    b = np.asarray(ray_built.embeddings, np.float32)[[ray_rows[p] for p in paths]]
    cosine = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() >= 0.999
    single.close()
    ray_built.close()


@needs_scale
def test_killed_ray_job_resumes_after_its_first_shard_and_ends_identical(folder, resumed_job):
    from memetui.index.scan import scan_folder

    images, _ = folder
    shards, written_when_killed, first_mtime, summary, _ = resumed_job
    assert written_when_killed == ["img_emb_0.npy"]
    assert summary.written == [1, 2] and summary.rows == 18
    assert (shards / "img_emb" / "img_emb_0.npy").stat().st_mtime_ns == first_mtime  # not embedded again
    paths, vectors = read_shards(shards)
    assert paths == [str(path) for _, path in scan_folder(images).files]
    np.testing.assert_array_equal(vectors, uninterrupted_vectors(images))
    assert embed_on_ray(images, shards).written == []  # every shard written: no Ray job at all


@needs_scale
def test_import_with_ann_milvus_lite_fills_the_collection(resumed_job, tmp_path):
    from memetui.index.ann import AnnSearcher
    from memetui.index.milvus_ann import close_all
    from memetui.index.store import IndexStore

    shards = resumed_job[0]
    assert main(["import", str(shards), "--index", str(tmp_path / "imported"), "--model", TINY_MODEL,
                 "--pretrained", PRETRAINED, "--device", "cpu", "--ann", f"milvus-lite:{tmp_path / 'v.db'}"]) == 0
    store = IndexStore.open(tmp_path / "imported")
    ann, exact = AnnSearcher(store), AnnSearcher(store, exact=True)
    assert ann.backend == "milvus" and store.manifest.ann["synced"] == store.count == 30
    queries = np.asarray(store.embeddings, np.float32)[:10]
    assert all(list(ann.search(q, 5).rows) == list(exact.search(q, 5).rows) for q in queries)
    store.close()
    close_all()


# -- Milvus ------------------------------------------------------------------------------------------
def build_with_milvus(images: Path, index: Path, spec: str | None) -> int:
    """`memetui index` with `--ann spec` (None: no --ann, the manifest's choice holds)."""
    return main(["index", str(images), "--index", str(index), "--model", TINY_MODEL, "--pretrained", PRETRAINED,
                 "--device", "cpu", "--no-ocr", "--no-thumbs", "--batch", "16", *(["--ann", spec] if spec else [])])


def new_milvus_index(base: Path) -> tuple[Path, Path]:
    images = make_image_folder(base / "images", 60)
    assert build_with_milvus(images, base / "index", f"milvus-lite:{base / 'vectors.db'}") == 0
    return images, base / "index"


@pytest.fixture(scope="module")
def milvus_index(tiny_model_dir, tmp_path_factory):
    """60 images indexed with --ann milvus-lite:PATH, shared by the read-only tests; clients closed after the module."""
    if not SCALE:
        pytest.skip("memetui[scale] is not installed")
    os.environ["MEMETUI_MODELS"] = str(tiny_model_dir)
    yield new_milvus_index(tmp_path_factory.mktemp("milvus"))
    from memetui.index.milvus_ann import close_all

    close_all()


@pytest.fixture
def own_milvus_index(tiny_model_dir, tmp_path, capfd):
    """A milvus-lite index of 60 images for one test that changes it (the build says nothing on stderr)."""
    from memetui.index.milvus_ann import close_all

    made = new_milvus_index(tmp_path)
    out, err = capfd.readouterr()
    assert err == "" and out.count("\n") == 1 and "added 60" in out
    yield made
    close_all()


def steered_queries(store, count: int = 40) -> np.ndarray:
    rng = np.random.default_rng(1)
    emb = np.asarray(store.embeddings, np.float32)
    picks = rng.integers(0, len(emb), (count, 2))
    return emb[picks[:, 0]] + 0.5 * emb[picks[:, 1]] + 0.05 * rng.standard_normal((count, emb.shape[1]))


def recall_at_10(ann, exact, queries) -> float:
    found = [len(set(ann.search(q, 10).rows) & set(exact.search(q, 10).rows)) for q in queries]
    return sum(found) / (10 * len(queries))


@needs_scale
def test_milvus_lite_index_recall_at_10_against_exact(milvus_index):
    from memetui.index.ann import AnnSearcher
    from memetui.index.milvus_ann import MilvusSearcher, close_all
    from memetui.index.store import IndexStore

    _, index = milvus_index
    store = IndexStore.open(index)
    assert store.manifest.ann["kind"] == "milvus" and store.manifest.ann["synced"] == store.count == 60
    ann, exact = AnnSearcher(store), AnnSearcher(store, exact=True)
    assert ann.backend == "milvus" and ann._remote.rerank_from == "local"
    queries = steered_queries(store)
    assert recall_at_10(ann, exact, queries) >= 0.99
    remote = MilvusSearcher(store, rerank_from="milvus")  # vectors fetched from Milvus instead of the memmap
    for q in queries[:5]:
        rows, scores = remote.search(q.astype(np.float32), 10)
        hits = ann.search(q, 10)
        np.testing.assert_array_equal(rows, hits.rows)
        np.testing.assert_allclose(scores, hits.scores, rtol=1e-5, atol=1e-6)
    close_all()  # reopened from the manifest alone: same answers
    again = AnnSearcher(IndexStore.open(index))
    assert again.backend == "milvus" and recall_at_10(again, exact, queries) >= 0.99
    store.close()


@needs_scale
def test_reindex_after_deleting_files_removes_their_rows_from_the_collection(own_milvus_index):
    from memetui.index.ann import AnnSearcher
    from memetui.index.milvus_ann import connect
    from memetui.index.store import IndexStore

    images, index = own_milvus_index
    gone = sorted(images.iterdir())[:5]
    store = IndexStore.open(index)
    gone_rows = {row for row in range(store.count) if store.item(row).path in gone}
    store.close()
    for path in gone:
        path.unlink()
    spec = json.loads((index / "manifest.json").read_text())["ann"]
    assert build_with_milvus(images, index, None) == 0  # the manifest keeps the index on Milvus
    store = IndexStore.open(index)
    assert set(store.manifest.ann["deleted"]) == gone_rows and len(gone_rows) == 5
    client = connect(spec["uri"])
    assert client.get(spec["collection"], ids=sorted(gone_rows)) == []
    assert client.get_collection_stats(spec["collection"])["row_count"] == 55
    ann = AnnSearcher(store)
    emb = np.asarray(store.embeddings, np.float32)
    for row in gone_rows:  # even the deleted image itself as the query does not find it
        assert row not in set(ann.search(emb[row], 20).rows.tolist())
    store.close()
    make_image_folder(images, 60)  # the same files again: their rows come back into the collection
    assert build_with_milvus(images, index, None) == 0
    assert client.get_collection_stats(spec["collection"])["row_count"] == 60


@needs_scale
async def test_app_searches_and_steps_on_a_milvus_index(milvus_index):
    from test_tui import make_app, settle

    from memetui.tui.widgets.result_grid import ResultGrid

    _, index = milvus_index
    app = make_app(index)
    assert app.session.searcher.ann.backend == "milvus"
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot, app)
        start = [t.row for t in app.query_one(ResultGrid).tiles]
        assert len(start) >= 12
        for _ in range(4):
            shown = app.results_shown
            await pilot.press("l")
            await settle(pilot, app, shown)
        assert [t.row for t in app.query_one(ResultGrid).tiles] != start
        for _ in range(4):
            shown = app.results_shown
            await pilot.press("u")
            await settle(pilot, app, shown)
        assert [t.row for t in app.query_one(ResultGrid).tiles] == start


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@needs_scale
def test_milvus_that_is_down_gives_a_one_line_error(milvus_index, tmp_path, capfd):
    images, shared = milvus_index
    index = tmp_path / "index"
    shutil.copytree(shared, index)
    down = f"milvus://127.0.0.1:{closed_port()}"
    assert build_with_milvus(images, index, down) == 1
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "cannot reach Milvus at http://127.0.0.1:" in err
    manifest = json.loads((index / "manifest.json").read_text())
    manifest["ann"]["uri"] = down.replace("milvus://", "http://")
    (index / "manifest.json").write_text(json.dumps(manifest))
    assert main(["search", "red", "--index", str(index), "--device", "cpu"]) == 1
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "cannot reach Milvus" in err


# -- without the extra ---------------------------------------------------------------------------------
@pytest.mark.parametrize("option", [["--ann", "milvus-lite:x.db"], ["--ray"]])
def test_without_the_extra_scale_options_fail_in_one_line_naming_it(option, tmp_path, monkeypatch, capfd):
    from memetui.index import milvus_ann

    monkeypatch.setattr(milvus_ann, "_clients", {})
    for name in ("ray", "ray.data", "pymilvus", "milvus_lite"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    (tmp_path / "images").mkdir()
    assert main(["index", str(tmp_path / "images"), *option]) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "pip install 'memetui[scale]'" in err


def test_start_up_imports_neither_ray_nor_pymilvus():
    code = ("import sys, memetui.cli, memetui.index.build, memetui.index.ann, memetui.commands.index_cmd;"
            "print(sorted(m for m in ('ray', 'pymilvus', 'milvus_lite') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
