"""Fault injection: ENOSPC at every write point of `index`, SIGKILL at random moments, two writers, readers.

After each fault: no traceback, readers see the previous or the new complete index, and the next
build ends where an undisturbed build would (nothing lost).
"""

from __future__ import annotations

import gc
import os
import random
import shutil
import signal
import time

import pytest

from conftest import make_image, make_image_folder
from memetui import atomic
from memetui.errors import IndexBusyError, IndexWriteError
from reliability_helpers import (FastEmbedder, Faults, build, check_snapshot, cli, fork_cli, index_args, leftovers,
                                 one_torch_thread, reap, use_cached_embedder)


@pytest.fixture(autouse=True)
def _one_thread():
    restore = one_torch_thread()
    yield
    restore()



def report(**figures) -> None:
    """Print the figures the README's Reliability section quotes (visible with `pytest -s`)."""
    print("reliability:", ", ".join(f"{key} {value}" for key, value in figures.items()))


def _change_folder(images, step: int, add: int = 3) -> None:
    """New images, one deleted, one renamed: every kind of row change a build makes."""
    for i in range(add):
        make_image(images / "new" / f"s{step:02d}_{i}.png", seed=1000 + 10 * step + i)
    existing = sorted(p for p in images.glob("*.png"))
    if len(existing) > 2:
        existing[0].unlink()
        existing[1].rename(images / f"renamed_{step:02d}.png")


def _live_paths(index) -> set[str]:
    from memetui.index.store import IndexStore

    store = IndexStore.open(index)
    try:
        import numpy as np

        return {p.name for p in store.paths(np.flatnonzero(store.live_mask()))}
    finally:
        store.close()


def test_enospc_at_every_write_point_of_index_keeps_the_last_index(tmp_path):
    embedder = FastEmbedder()
    images = make_image_folder(tmp_path / "img", 8)
    base = tmp_path / "base"
    build(images, base, embedder=embedder)
    before = check_snapshot(base)
    _change_folder(images, 0, add=2)
    clean = tmp_path / "clean"
    shutil.copytree(base, clean)
    counter = Faults()
    atomic.set_fault_hook(counter)
    try:
        build(images, clean, embedder=embedder)
    finally:
        atomic.set_fault_hook(None)
    after, expected_live = check_snapshot(clean), _live_paths(clean)
    points = len(counter.seen)
    assert {stage for stage, _ in counter.seen} >= {"open", "written", "fsync", "replace", "sqlite"}
    cases = [(n, False) for n in range(1, points + 1)]
    cases += [(n, True) for n, (stage, _) in enumerate(counter.seen, 1) if stage == "written"]
    for n, short in cases:
        index = tmp_path / f"fault{n}{'s' if short else ''}"
        shutil.copytree(base, index)
        fault = Faults(n, short)
        atomic.set_fault_hook(fault)
        try:
            with pytest.raises(IndexWriteError, match="the last complete index is intact"):
                build(images, index, embedder=embedder)
        finally:
            atomic.set_fault_hook(None)
        assert fault.fired, (n, short)
        published = check_snapshot(index)
        assert published in (before, after), (fault.fired, published)
        build(images, index, embedder=embedder)  # space freed: the next build finishes the job
        assert check_snapshot(index) == after
        assert _live_paths(index) == expected_live, fault.fired
        assert not [p for p in index.rglob("*.tmp")], fault.fired
        shutil.rmtree(index)
    report(write_points=points, enospc_faults=len(cases) - len(cases[points:]), short_writes=len(cases[points:]),
           survived=len(cases))


def test_enospc_through_the_cli_is_one_line_and_a_short_graph_is_never_published(tiny_model_dir, tmp_path, monkeypatch):
    use_cached_embedder(monkeypatch)
    images = make_image_folder(tmp_path / "img", 6)
    index = tmp_path / "idx"
    assert cli(*index_args(images, index)).code == 0
    make_image(images / "late.png", seed=77)
    fault = Faults(short=True, match=("written", "hnsw"))  # hnswlib's save hits a full disk and says nothing
    atomic.set_fault_hook(fault)
    try:
        run = cli(*index_args(images, index))
    finally:
        atomic.set_fault_hook(None)
    assert run.code == 1 and run.err.count("\n") == 1 and "Traceback" not in run.err
    assert "hnsw.bin" in run.err and "intact" in run.err
    assert check_snapshot(index) == 6
    assert cli(*index_args(images, index)).code == 0
    assert check_snapshot(index) == 7


def test_sigkill_at_random_moments_of_index_then_info_and_search(tiny_model_dir, tmp_path, monkeypatch):
    use_cached_embedder(monkeypatch)
    images = make_image_folder(tmp_path / "img", 10)
    index = tmp_path / "idx"
    args = index_args(images, index)
    assert cli(*args).code == 0
    _change_folder(images, 0)
    started = time.monotonic()
    assert reap(fork_cli(args)) == 0  # calibrate: how long one incremental run takes here
    duration = time.monotonic() - started
    rng = random.Random(2024)
    kills = finished = reads = 0
    published = {check_snapshot(index)}
    step = 0
    while kills < 20 and step < 60:  # kill at a random moment of each run until 20 runs died mid-way
        step += 1
        _change_folder(images, step)
        pid = fork_cli(args)
        deadline = time.monotonic() + rng.uniform(0.0, duration)
        while time.monotonic() < deadline:  # readers during the build
            published.add(check_snapshot(index))
            reads += 1
            time.sleep(0.01)  # leave the CPU to the build
        os.kill(pid, signal.SIGKILL)
        code = reap(pid)
        kills += code == -signal.SIGKILL
        finished += code == 0
        duration *= 0.8 if code == 0 else 1.0  # the run was faster than calibrated: aim earlier
        info = cli("info", index)
        assert info.code == 0 and "problem" not in info.out, info
        search = cli("search", "red", "-k", "3", "--index", index)
        assert search.code == 0 and search.out.count("\n") == 3, search
        published.add(check_snapshot(index))
    assert kills >= 20, (kills, finished)
    gc.collect()  # Session (search) does not close its store; a reader kept open keeps the writer in WAL mode
    build(images, index)
    assert check_snapshot(index) >= max(published)
    on_disk = {p.name for p in images.rglob("*.png")}
    assert _live_paths(index) == on_disk  # every image present is found: nothing lost
    assert leftovers(index) == []
    report(kills=kills, finished_before_the_kill=finished, reads_during_builds=reads, survived=kills + finished)


def test_two_writers_one_waits_out_with_one_line(tiny_model_dir, tmp_path, monkeypatch):
    use_cached_embedder(monkeypatch)
    images = make_image_folder(tmp_path / "img", 4)
    index = tmp_path / "idx"
    build(images, index)
    from memetui.index.store import IndexStore

    holder = IndexStore.open(index, write=True)
    try:
        with pytest.raises(IndexBusyError, match=f"another memetui is writing .* \\(pid {os.getpid()}\\)"):
            build(images, index)
        run = cli(*index_args(images, index))
        assert run.code == 3 and run.err.count("\n") == 1
        assert f"another memetui is writing {index} (pid {os.getpid()})" in run.err
        assert cli("info", index).out.count(f"running now (pid {os.getpid()})") == 1
    finally:
        holder.close()
    for step in range(3):  # real processes racing: one builds, the other says so, nothing breaks
        _change_folder(images, step, add=4)
        first, second = fork_cli(index_args(images, index)), fork_cli(index_args(images, index))
        codes = sorted([reap(first), reap(second)])
        assert codes in ([0, 0], [0, 3]), codes
        check_snapshot(index)
    build(images, index)
    assert _live_paths(index) == {p.name for p in images.rglob("*.png")}
    report(writer_races=3)

