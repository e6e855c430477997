"""Scale-out (issue 17): embedding on a local Ray (num_cpus=2) and vectors served from milvus-lite.

The Ray tests run `memetui index --ray` as real processes (a local Ray with 2 CPUs each, its
session files under pytest's temp folder): one killed with SIGKILL after its first shard and run
again, one uninterrupted beside it. Everything but the missing-extra tests is skipped when
`memetui[scale]` (ray[data], pymilvus, milvus-lite) is not installed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
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


SHARD_ROWS = BATCH = 2
"""30 images in 15 shards of one block each: a kill after the first shard leaves work to resume."""
SHARDS = 15
RAY_CPUS = 2
RUN_TIMEOUT_S = 900
"""Seconds one command may take (≈ 40-60 s each on 2 shared cores; over 300 s when ten other jobs ran there)."""


def ray_temp_dir(tmp_path_factory) -> tuple[Path, bool]:
    """A folder for the Ray that `--ray` starts (TMPDIR), under pytest's temp folder when its socket paths fit.

    Ray puts `rayXXXXXXXX/session_<date>_<pid>/sockets/plasma_store` under it, and an AF_UNIX
    path may hold 107 bytes; a longer base falls back to a short folder in /tmp (True: remove it).
    """
    temp = tmp_path_factory.mktemp("r")
    pid_digits = len(Path("/proc/sys/kernel/pid_max").read_text().strip())
    if len(str(temp)) + len("/rayXXXXXXXX/session_2026-12-02_01-02-03_456789_/sockets/plasma_store") + pid_digits <= 107:
        return temp, False
    return Path(tempfile.mkdtemp(prefix="r", dir="/tmp")), True


CLI = ("import ctypes, sys; ctypes.CDLL(None).prctl(1, 9);"  # PR_SET_PDEATHSIG, SIGKILL: dies with the test
       " from memetui.cli import main; sys.exit(main())")
"""`memetui` that a test process killed outright takes with it (Ray's gcs and raylet die with the command
that started them, its workers with their raylet): nothing is left even then."""


def start_index_on_ray(images: Path, base: Path, name: str, env: dict, *extra: str) -> subprocess.Popen:
    """`memetui index IMAGES --index BASE/NAME --ray --shards BASE/NAME-shards` as a process in a session of its own."""
    cmd = [sys.executable, "-c", CLI, "index", str(images),
           "--index", str(base / name), "--ray", "--shards", str(base / f"{name}-shards"),
           "--shard-rows", str(SHARD_ROWS), "--batch", str(BATCH), "--model", TINY_MODEL, "--pretrained", PRETRAINED,
           "--device", "cpu", *extra]
    with open(base / f"{name}.out", "w") as out, open(base / f"{name}.err", "w") as err:
        return subprocess.Popen(cmd, env=env, start_new_session=True, stdout=out, stderr=err)


def session_processes(sid: int) -> list[int]:
    """Live (not zombie) processes in session `sid`: all that a process started with start_new_session=True left."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 3 and fields[0] != "Z" and int(fields[3]) == sid:
            found.append(int(entry.name))
    return found


def left_running(process: subprocess.Popen, grace_s: float = 30.0) -> list[str]:
    """'PID NAME' of the processes of `process`'s session still alive `grace_s` after it ended (Ray's workers
    exit soon after their raylet); any found are SIGKILLed here, so a failing test leaves nothing behind either."""
    deadline = time.monotonic() + grace_s
    while (left := session_processes(process.pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    found = []
    for pid in left:
        with contextlib.suppress(OSError):
            found.append(f"{pid} {(Path('/proc') / str(pid) / 'cmdline').read_bytes()[:80]!r}")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return found


def finish(process: subprocess.Popen, base: Path, name: str) -> tuple[int, str]:
    """Wait for a started command (killing its session past RUN_TIMEOUT_S); (exit status, stderr)."""
    try:
        process.wait(RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return process.returncode, (base / f"{name}.err").read_text()


@pytest.fixture(scope="module")
def ray_runs(folder, tmp_path_factory):
    """`memetui index --ray` (local Ray, 2 CPUs) as real processes: one killed by SIGKILL as soon as its
    first shard is complete, then run again to the end (one actor each), and one uninterrupted run beside
    them (one actor per CPU: 2), so equal shards also say the pool size does not change a row."""
    if not SCALE:
        pytest.skip("memetui[scale] is not installed")
    if not Path("/proc/self/stat").is_file():
        pytest.skip("finding the processes a killed job left needs /proc (Linux)")
    images, _ = folder
    base = tmp_path_factory.mktemp("ray-job")
    temp, remove = ray_temp_dir(tmp_path_factory)
    env = {**os.environ, "TMPDIR": str(temp),  # Ray's session folder: TMPDIR/rayXXXXXXXX
           "RAY_OVERRIDE_RESOURCES": json.dumps({"CPU": RAY_CPUS}),  # the local Ray's num_cpus
           "RAY_worker_niceness": "0",  # actors at the test's priority (Ray's 15 starves them on a busy machine)
           "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1"}
    first = base / "killed-shards" / "img_emb" / "img_emb_00.npy"
    started = time.monotonic()
    whole = start_index_on_ray(images, base, "whole", env)
    killed = resumed = start_index_on_ray(images, base, "killed", env, "--actors", "1")
    try:
        while not first.exists() and killed.poll() is None and time.monotonic() - started < RUN_TIMEOUT_S:
            time.sleep(0.005)  # written atomically: there means complete
        with contextlib.suppress(ProcessLookupError):
            os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
        runs = {"killed_s": time.monotonic() - started, "killed_status": killed.returncode,
                "killed_err": (base / "killed.err").read_text(), "at_kill": sorted(p.name for p in first.parent.glob("img_emb_*.npy")),
                "first_mtime": first.stat().st_mtime_ns if first.exists() else None,
                "left_after_kill": left_running(killed)}
        resumed = start_index_on_ray(images, base, "killed", env, "--actors", "1")  # one actor start less
        runs["resumed_status"], runs["resumed_err"] = finish(resumed, base, "killed")
        runs["resumed_s"] = time.monotonic() - started
        runs["left_after_resume"] = left_running(resumed)
        runs["whole_status"], runs["whole_err"] = finish(whole, base, "whole")
        runs["left_after_whole"] = left_running(whole)
    finally:
        for process in (whole, killed, resumed):  # only when something above failed
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                left_running(process, grace_s=5)
        if remove:
            shutil.rmtree(temp, ignore_errors=True)
    runs.update(seconds=time.monotonic() - started, shards=base / "killed-shards", index=base / "killed",
                whole_shards=base / "whole-shards", whole_index=base / "whole")
    return runs


def read_shards(shards: Path) -> tuple[list[dict], np.ndarray]:
    """Every shard's metadata rows (in order) and its vectors, concatenated."""
    import pyarrow.parquet as pq

    rows, vectors = [], []
    for npy in sorted((shards / "img_emb").glob("img_emb_*.npy")):
        meta = shards / "metadata" / npy.name.replace("img_emb", "metadata").replace(".npy", ".parquet")
        rows += pq.read_table(meta).to_pylist()
        vectors.append(np.load(npy))
    return rows, np.concatenate(vectors)


def index_vectors(index: Path) -> dict[str, np.ndarray]:
    """{path: embedding as float32} of a built index."""
    from memetui.index.store import IndexStore

    store = IndexStore.open(index)
    try:
        assert store.live_mask().all()
        emb = np.asarray(store.embeddings, np.float32)
        return {str(store.item(row).path): emb[row] for row in range(store.count)}
    finally:
        store.close()


# -- Ray ---------------------------------------------------------------------------------------------
@needs_scale
def test_ray_job_killed_after_its_first_shard_leaves_no_process_and_resumes_identical(folder, ray_runs):
    from memetui.index.ray_embed import RayEmbedOptions, embed_to_shards
    from memetui.index.scan import scan_folder

    images, _ = folder
    runs = ray_runs
    assert runs["killed_status"] == -signal.SIGKILL, runs["killed_err"]  # killed, not finished or failed
    assert runs["at_kill"][:1] == ["img_emb_00.npy"] and len(runs["at_kill"]) < SHARDS
    assert runs["left_after_kill"] == []  # SIGKILL of its process group: gcs, raylet and workers all went
    assert runs["resumed_status"] == 0, runs["resumed_err"]
    done = len(runs["at_kill"])
    assert f"shards: {SHARDS - done} embedded" in runs["resumed_err"] and f", {done} already written" in runs["resumed_err"]
    assert (runs["shards"] / "img_emb" / "img_emb_00.npy").stat().st_mtime_ns == runs["first_mtime"]  # kept
    assert runs["whole_status"] == 0, runs["whole_err"]
    assert f"shards: {SHARDS} embedded" in runs["whole_err"] and f"on {RAY_CPUS} actors" in runs["whole_err"]
    assert runs["left_after_resume"] == [] and runs["left_after_whole"] == []  # ray.shutdown took them all
    meta, vectors = read_shards(runs["shards"])
    whole_meta, whole_vectors = read_shards(runs["whole_shards"])
    assert [row["image_path"] for row in meta] == [str(path.absolute()) for _, path in scan_folder(images).files]
    assert meta == whole_meta
    np.testing.assert_array_equal(vectors, whole_vectors)  # the same batches on the same code: bit for bit
    resumed, whole = index_vectors(runs["index"]), index_vectors(runs["whole_index"])
    assert sorted(resumed) == sorted(whole)
    assert all(np.array_equal(resumed[path], whole[path]) for path in whole)
    options = RayEmbedOptions(shard_rows=SHARD_ROWS, batch_size=BATCH)  # every shard written: no Ray job at all
    assert embed_to_shards(images, runs["shards"], TINY_MODEL, PRETRAINED, options).written == []
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()
    print(f"ray runs: killed at {runs['killed_s']:.1f} s, resumed by {runs['resumed_s']:.1f} s, all done by"
          f" {runs['seconds']:.1f} s")


@needs_scale
def test_folder_embedded_on_ray_equals_the_single_process_index(folder, ray_runs):
    from memetui.index.store import IndexStore

    _, index = folder
    single = index_vectors(index)
    store = IndexStore.open(index)
    model = store.model
    store.close()
    for built in (ray_runs["whole_index"], ray_runs["index"]):  # uninterrupted, and killed then resumed
        on_ray = index_vectors(built)
        assert sorted(on_ray) == sorted(single)
        store = IndexStore.open(built)
        assert store.model == model
        store.close()
        a = np.stack([single[path] for path in sorted(single)])
        b = np.stack([on_ray[path] for path in sorted(single)])
        cosine = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        assert cosine.min() >= 0.999


@needs_scale
def test_import_with_ann_milvus_lite_fills_the_collection(ray_runs, tmp_path):
    from memetui.index.ann import AnnSearcher
    from memetui.index.milvus_ann import close_all
    from memetui.index.store import IndexStore

    shards = ray_runs["shards"]
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
def test_train_sae_streams_a_sample_out_of_milvus_when_there_is_no_local_memmap(own_milvus_index, capfd):
    import sqlite3

    import torch

    from memetui.index.store import IndexStore
    from memetui.sae.model import load_for_index

    _, index = own_milvus_index
    store = IndexStore.open(index)
    vectors = np.asarray(store.embeddings, np.float32)
    store.close()
    (index / "embeddings.f16.npy").unlink()  # no local memmap, and items.sqlite keeps no vectors either
    with contextlib.closing(sqlite3.connect(index / "items.sqlite")) as db:
        db.execute("UPDATE items SET embedding = x''")
        db.commit()
    capfd.readouterr()
    assert main(["train-sae", str(index), "--latents", "16", "--k", "4", "--epochs", "30", "--batch", "16",
                 "--name", "m", "--device", "cpu"]) == 0
    printed = capfd.readouterr().out
    assert "60 rows streamed from Milvus" in printed and "of all 60 rows" in printed
    saved = json.loads((index / "sae" / "m.json").read_text())
    assert len(saved["labels"]) == 16 and any(saved["labels"])
    store = IndexStore.open(index)
    sae = load_for_index("m", store)
    x = torch.from_numpy(vectors)
    with torch.no_grad():
        fvu = float(((sae(x)[0] - x) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
    assert fvu < 0.5  # learned from the real vectors (zeros would leave FVU near 1)
    store.close()
    assert main(["train-sae", str(index), "--latents", "8", "--k", "2", "--epochs", "1", "--batch", "16",
                 "--name", "s", "--device", "cpu", "--remote-sample", "30", "--no-labels"]) == 0
    assert "30 rows streamed from Milvus" in capfd.readouterr().out


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
