"""OCR during a build: a worker thread beside the CLIP embedding, reading items that lack text.

The worker polls items.sqlite (its own connection, WAL) for live items without an `ocr` row,
reads each image, and commits each result at once, so a killed build resumes where it stopped.
It runs while the builder embeds (and picks up rows as they are committed) and drains the rest
after. When the OCR package is absent, `OcrStage.start` returns a stage that did nothing and says
so in one line; a failure on one image is recorded for that item and the stage goes on.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ImageLoadError, OcrError, OcrUnavailableError
from . import ocr_text
from .db import from_db_path

_ENGINES: dict = {}
_ENGINES_LOCK = threading.Lock()


def shared_engine():
    """One OcrEngine per process (models load once, ~1 s); raises OcrUnavailableError."""
    from ..ocr.engine import load_engine

    with _ENGINES_LOCK:
        if "engine" not in _ENGINES:
            _ENGINES["engine"] = load_engine()
        return _ENGINES["engine"]


@dataclass
class OcrSummary:
    """What the OCR stage did in one build."""

    read: int = 0
    with_text: int = 0
    failed: int = 0
    seconds: float = 0.0
    """Time spent inside OCR calls (sum over images)."""
    unavailable: str = ""
    """One line when OCR could not run (package or models missing)."""
    engine: dict = field(default_factory=dict)

    def line(self) -> str:
        """One-line human summary."""
        if self.unavailable:
            return self.unavailable
        per = f", {1000 * self.seconds / self.read:.0f} ms/image" if self.read else ""
        return f"OCR: read {self.read} images ({self.with_text} with text, {self.failed} failed{per})"


class OcrStage:
    """A background thread that OCRs pending items of one index until `finish()`."""

    def __init__(self, db_path: Path, root: Path, engine, progress=None, poll_s: float = 0.2):
        self.summary = OcrSummary(engine=engine.info.to_dict() if engine is not None else {})
        self._db_path, self._root, self._engine = Path(db_path), Path(root), engine
        self._progress = progress or (lambda stage, done, total: None)
        self._poll_s = poll_s
        self._done = threading.Event()
        self._cancel = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def start(cls, store, progress=None) -> "OcrStage":
        """Start OCR on `store`'s pending items in a thread (a no-op stage when OCR is unavailable)."""
        ocr_text.ensure_schema(store.db)
        store.db.commit()
        try:
            engine = shared_engine()
        except OcrUnavailableError as exc:
            stage = cls(store.path / "items.sqlite", store.root, None, progress)
            stage.summary.unavailable = f"{exc}; indexed without text"
            return stage
        stage = cls(store.path / "items.sqlite", store.root, engine, progress)
        stage._thread = threading.Thread(target=stage._run, name="memetui-ocr", daemon=True)
        stage._thread.start()
        return stage

    def finish(self) -> OcrSummary:
        """Tell the worker embedding is done, wait until every pending item is read, return the summary."""
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self.summary

    def cancel(self) -> None:
        """Stop after the image being read (the build failed or was interrupted) and wait."""
        self._cancel.set()
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self._db_path, timeout=60)
            try:
                self._loop(db)
            finally:
                db.close()
        except BaseException as exc:  # surfaced by finish() on the builder's thread
            self._error = exc

    def _loop(self, db: sqlite3.Connection) -> None:
        engine_name = f"{self._engine.info.name} {self._engine.info.version}"
        while True:
            finishing = self._done.is_set()
            batch = ocr_text.pending_items(db, 16)
            if not batch or self._cancel.is_set():
                if finishing:
                    return
                self._done.wait(self._poll_s)
                continue
            for row, rel in batch:
                if self._cancel.is_set():
                    return
                self._read_one(db, row, self._root / from_db_path(rel), engine_name)
            total = self.summary.read + ocr_text.counts(db).pending
            self._progress("ocr", self.summary.read, total)

    def _read_one(self, db: sqlite3.Connection, row: int, path: Path, engine_name: str) -> None:
        from ..image_files import load_image
        from ..ocr.engine import MAX_SIDE

        try:
            result = self._engine.read(load_image(path, max_side=MAX_SIDE))
        except (ImageLoadError, OcrError, OSError) as exc:
            with db:
                ocr_text.record_error(db, row, str(exc), engine_name)
            self.summary.failed += 1
            self.summary.read += 1
            return
        with db:
            ocr_text.record(db, row, result, engine_name)
        self.summary.read += 1
        self.summary.seconds += result.seconds
        self.summary.with_text += bool(result.lines)
