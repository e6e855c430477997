"""Shared by the reliability tests: a cached tiny embedder, in-process CLI runs, snapshot checks, faults."""

from __future__ import annotations

import errno
import io
import os
import signal
import sqlite3
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import NamedTuple

import numpy as np

from conftest import TINY_MODEL

_EMBEDDER = {}
import memetui.embed  # noqa: E402

REAL_EMBEDDER = memetui.embed.Embedder
"""The real class, for tests that patch the cached one in and need the real loader back."""


class FastEmbedder:
    """A stand-in CLIP for write-path tests: deterministic unit vectors from pixels, no transformer.

    The ENOSPC matrix runs ~30 builds; what it tests is the write path, not the model.
    """

    input_size = 16
    dim = 32

    def __init__(self):
        import torch

        from memetui.model_info import ModelInfo

        self.info = ModelInfo("fast-test-embedder", None, self.dim, "fa" * 32)
        self._proj = torch.randn(3 * 16 * 16, self.dim, generator=torch.Generator().manual_seed(0))

    def preprocess(self, image):
        """PIL image -> [3, 16, 16] float tensor."""
        import torch

        pixels = np.asarray(image.convert("RGB").resize((16, 16)), np.float32) / 255.0
        return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()

    def embed_pixels(self, pixels) -> np.ndarray:
        """[n, 3, 16, 16] -> [n, 32] float32 unit vectors."""
        vectors = pixels.flatten(1) @ self._proj
        return (vectors / vectors.norm(dim=1, keepdim=True)).numpy()


def one_torch_thread():
    """Run torch on one thread (a busy 2-core box thrashes with two); returns a function restoring it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    return lambda: torch.set_num_threads(before)


def tiny_embedder():
    """One tiny-test-clip Embedder per process (loading it costs ~0.3 s)."""
    from memetui.embed import Embedder

    if "e" not in _EMBEDDER:
        _EMBEDDER["e"] = Embedder(TINY_MODEL, f"{TINY_MODEL}.safetensors", device="cpu")
    return _EMBEDDER["e"]


def use_cached_embedder(monkeypatch) -> None:
    """Make every `Embedder(...)` the CLI creates return the cached tiny one (same model identity)."""
    import memetui.embed

    embedder = tiny_embedder()
    monkeypatch.setattr(memetui.embed, "Embedder", lambda *args, **kwargs: embedder)


def build(images: Path, index: Path, thumbnails: bool = True, batch: int = 2, embedder=None):
    """Index `images` into `index` in-process (the cached tiny embedder by default); returns the summary."""
    from memetui.index.build import BuildOptions, IndexBuilder, open_or_create

    embedder = embedder or tiny_embedder()
    store = open_or_create(index, images, embedder)
    try:
        return IndexBuilder(store, embedder, BuildOptions(batch_size=batch, workers=1, ocr=False,
                                                          thumbnails=thumbnails)).run()
    finally:
        store.close()


class CliRun(NamedTuple):
    code: int
    out: str
    err: str


def cli(*args) -> CliRun:
    """Run `memetui ARGS` in-process (a traceback fails the test: only MemetuiError is caught by main)."""
    from memetui.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([os.fspath(a) for a in args])
    return CliRun(code, out.getvalue(), err.getvalue())


def index_args(images: Path, index: Path, *extra) -> list:
    """Arguments of `memetui index` with the tiny model, small batches, no OCR."""
    return ["index", images, "--index", index, "--model", TINY_MODEL, "--pretrained",
            f"{TINY_MODEL}.safetensors", "--batch", "2", "--workers", "1", "--no-ocr", *extra]


def check_snapshot(index: Path) -> int:
    """Open `index` as a reader and check it is one complete build; returns its published row count."""
    from memetui.index.ann import AnnSearcher
    from memetui.index.store import IndexStore

    store = IndexStore.open(index)
    try:
        assert store.fallback is None, store.fallback  # published files are whole
        assert store.problems() == [], store.problems()
        emb = np.asarray(store.embeddings, np.float32)
        assert emb.shape == (store.count, store.dim)
        if store.count:
            np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=3e-3)
        live = np.flatnonzero(store.live_mask())
        assert len(store.paths(live)) == len(live)
        searcher = AnnSearcher(store, exact=False)  # walks the graph even at this size
        if len(live):
            hits = searcher.search(emb[live[0]], k=3)
            assert hits.rows[0] == live[0]
        return store.count
    finally:
        store.close()


def leftovers(index: Path) -> list[str]:
    """Journal files a reader might leave behind."""
    return sorted(p.name for p in index.iterdir() if p.name.endswith(("-wal", "-shm", "-journal")))


class Faults:
    """A fault hook for memetui.atomic: counts write points; fails the N-th one (ENOSPC or a silent short write)."""

    def __init__(self, fail_at: int | None = None, short: bool = False, match: tuple[str, str] | None = None):
        self.fail_at, self.short, self.match, self.seen, self.fired = fail_at, short, match, [], None

    def __call__(self, stage: str, path: Path) -> None:
        self.seen.append((stage, path.name))
        if self.match is not None:
            hit = stage == self.match[0] and self.match[1] in path.name
        else:
            hit = len(self.seen) == self.fail_at
        if self.fired is not None or not hit:
            return
        self.fired = (stage, path.name)
        if self.short:  # the write "succeeded" but the file is cut (hnswlib never reports it)
            with open(path, "r+b") as handle:
                handle.truncate(os.fstat(handle.fileno()).st_size // 2)
            return
        if stage == "sqlite":
            raise sqlite3.OperationalError("database or disk is full")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def fork_cli(args: list) -> int:
    """A real child process running `memetui ARGS` (forked: the tiny model is already loaded)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            import torch

            torch.set_num_threads(1)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            code = cli(*args).code
        finally:
            os._exit(code)
    return pid


def reap(pid: int, timeout: float = 60.0) -> int:
    """Wait for a child; its exit code, or -signal."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError("child hung")
