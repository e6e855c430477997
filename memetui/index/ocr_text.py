"""Text read from images (OCR), stored per item in items.sqlite beside an FTS5 index over it.

Tables (created on first write; readers treat their absence as "no text yet")::

    ocr      item_id (= items.id) PRIMARY KEY, status 'text'|'empty'|'error', text (raw lines
             joined by newlines), boxes (JSON list of {text, box: 4 corners, confidence}),
             confidence (mean over lines, by length), engine ('rapidocr 3.10.0'), error, seconds
    ocr_fts  FTS5 over the text's words (lower case, lines joined), rowid = item_id; tokenizer
             unicode61: bench/bench_ocr.py, 40 phrase queries, native phrase MATCH hit@3 0.950
             (trigram 0.975) at 3.4x less index (2.3 kB vs 8.0 kB); FTS5 only finds candidates
             (any word, or a word it starts), text_match.phrase_score ranks them: hit@3 1.000

An item with a row in `ocr` is done (text, no text, or failed); items without one are pending,
so an interrupted build resumes and an index built with --no-ocr gains text on the next build.
Text is stored raw; whatever shows it escapes it with memetui.text.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass

from .db import db_text

TOKENIZER = "unicode61 remove_diacritics 2"
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS ocr (
    item_id INTEGER PRIMARY KEY,     -- items.id
    status TEXT NOT NULL,            -- 'text' | 'empty' | 'error'
    text TEXT NOT NULL DEFAULT '',   -- raw lines joined by newlines
    boxes TEXT,                      -- JSON [{{"text", "box": [[x, y] x 4], "confidence"}}]
    confidence REAL,
    engine TEXT,
    error TEXT,
    seconds REAL
);
CREATE VIRTUAL TABLE IF NOT EXISTS ocr_fts USING fts5(text, tokenize='{TOKENIZER}');
"""
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass(frozen=True)
class OcrEntry:
    """What OCR stored for one item."""

    row: int
    status: str
    """'text', 'empty' or 'error'."""
    text: str
    """Raw text (lines joined by newlines); '' when none."""
    boxes: list
    """[{"text", "box", "confidence"}] per line."""
    confidence: float | None
    error: str | None


@dataclass(frozen=True)
class OcrCounts:
    """How many live items have text, no text, failed, or await OCR."""

    text: int
    empty: int
    error: int
    pending: int


def ensure_schema(db: sqlite3.Connection) -> None:
    """Create the ocr and ocr_fts tables if they do not exist."""
    db.executescript(SCHEMA)


def has_ocr(db: sqlite3.Connection) -> bool:
    """Whether this database holds the OCR tables."""
    return db.execute("SELECT 1 FROM sqlite_master WHERE name = 'ocr'").fetchone() is not None


def words(text: str) -> list[str]:
    """Lower-case words (letters and digits) of `text`, in order."""
    return [w.casefold() for w in _WORD.findall(text)]


def index_text(text: str) -> str:
    """The form of OCR text put in ocr_fts: its words, lower case, one space apart (lines joined)."""
    return " ".join(words(text))


def pending_items(db: sqlite3.Connection, limit: int = 64) -> list[tuple[int, str]]:
    """(row, relative path) of live items that have no OCR row yet, lowest rows first."""
    return list(db.execute(
        "SELECT id, path FROM items WHERE status = 'ok' AND id NOT IN (SELECT item_id FROM ocr)"
        " ORDER BY id LIMIT ?", (limit,)))


def record(db: sqlite3.Connection, row: int, result, engine: str) -> None:
    """Store an OcrResult for `row` (in the caller's transaction) and index its text."""
    text = db_text(result.text)
    status = "text" if text.strip() else "empty"
    db.execute("INSERT OR REPLACE INTO ocr (item_id, status, text, boxes, confidence, engine, error, seconds)"
               " VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
               (int(row), status, text, json.dumps(result.boxes_json()), result.confidence, engine, result.seconds))
    db.execute("DELETE FROM ocr_fts WHERE rowid = ?", (int(row),))
    if status == "text":
        db.execute("INSERT INTO ocr_fts (rowid, text) VALUES (?, ?)", (int(row), index_text(text)))


def record_error(db: sqlite3.Connection, row: int, reason: str, engine: str) -> None:
    """Store that OCR failed on `row` (it is not retried until the file changes)."""
    db.execute("INSERT OR REPLACE INTO ocr (item_id, status, text, boxes, confidence, engine, error, seconds)"
               " VALUES (?, 'error', '', '[]', NULL, ?, ?, NULL)", (int(row), engine, db_text(str(reason))[:500]))
    db.execute("DELETE FROM ocr_fts WHERE rowid = ?", (int(row),))


def entries(db: sqlite3.Connection, rows) -> list[OcrEntry | None]:
    """OCR entries for `rows`, in order; None for rows without one."""
    rows = [int(r) for r in rows]
    if not rows or not has_ocr(db):
        return [None] * len(rows)
    found = {}
    for start in range(0, len(rows), 900):
        chunk = rows[start:start + 900]
        marks = ",".join("?" * len(chunk))
        for row, status, text, boxes, confidence, error in db.execute(
            f"SELECT item_id, status, text, boxes, confidence, error FROM ocr WHERE item_id IN ({marks})", chunk
        ):
            found[row] = OcrEntry(row, status, text, json.loads(boxes or "[]"), confidence, error)
    return [found.get(r) for r in rows]


def ocr_text(store, rows) -> list[str]:
    """Raw OCR text of embedding rows of `store` (an IndexStore), in order; '' when none."""
    return [e.text if e is not None else "" for e in entries(store.db, rows)]


def counts(db: sqlite3.Connection) -> OcrCounts:
    """OCR status counts over live items."""
    live = db.execute("SELECT COUNT(*) FROM items WHERE status = 'ok'").fetchone()[0]
    if not has_ocr(db):
        return OcrCounts(0, 0, 0, int(live))
    done = dict(db.execute(
        "SELECT ocr.status, COUNT(*) FROM ocr JOIN items ON items.id = ocr.item_id"
        " WHERE items.status = 'ok' GROUP BY ocr.status"))
    text, empty, error = (int(done.get(k, 0)) for k in ("text", "empty", "error"))
    return OcrCounts(text, empty, error, int(live) - text - empty - error)


def candidates(db: sqlite3.Connection, query_words: list[str], limit: int = 2000) -> list[tuple[int, str]]:
    """(row, raw text) of items whose text has any of `query_words` (or a word they start), best bm25 first."""
    query_words = [w for w in dict.fromkeys(query_words) if w]
    if not query_words or not has_ocr(db):
        return []
    # a prefix match also finds words OCR ran together ("simplywalk" for "simply")
    expression = " OR ".join('"' + w.replace('"', '""') + '"' + ("*" if len(w) >= 3 else "") for w in query_words)
    return list(db.execute(
        "SELECT ocr.item_id, ocr.text FROM ocr_fts JOIN ocr ON ocr.item_id = ocr_fts.rowid"
        " WHERE ocr_fts MATCH ? ORDER BY bm25(ocr_fts) LIMIT ?", (expression, int(limit))))
