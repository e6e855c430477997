"""items.sqlite connections: read-only for readers, one WAL writer; file names stored as bytes-safe values.

Readers open the database read-only and leave nothing behind:

- a writable folder: `mode=ro` (a database at rest is in rollback-journal mode, so a reader
  creates no `-wal`/`-shm`); if SQLite needs to recover a killed writer's journal first, one
  read-write connection does that (query_only) and is closed;
- a read-only folder or file (bind mount, `chattr +i`, shipped index): `mode=ro`, then
  `immutable=1` (nothing can be writing it).

The writer (holding the index's WriterLock) uses WAL while it builds, so readers are never
blocked, and switches back to rollback-journal mode when it closes (best effort: not while
another connection is open).

Paths are TEXT; a name that is not valid UTF-8 (bytes on disk, surrogate-escaped by Python) is
stored as a BLOB of its raw bytes, so any file name indexes and round-trips exactly.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from ..atomic import write_point
from ..errors import IndexFormatError, IndexWriteError

READ_TIMEOUT_S = 10.0
"""How long a reader waits for a writer's commit (WAL readers normally never wait)."""
WRITE_TIMEOUT_S = 30.0
"""How long the writer waits for readers holding a rollback-journal lock."""


def db_path(rel: str) -> str | bytes:
    """A relative path as stored in SQLite: text, or raw bytes when it is not valid UTF-8."""
    try:
        rel.encode("utf-8")
        return rel
    except UnicodeEncodeError:
        return os.fsencode(rel)


def from_db_path(value: str | bytes) -> str:
    """The relative path (str, surrogate-escaped where the name is not UTF-8) of a stored value."""
    return os.fsdecode(value) if isinstance(value, (bytes, memoryview)) else value


def db_text(text: str) -> str:
    """Text that SQLite can store (lone surrogates from undecodable file names made visible)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _uri(path: Path, **params: str) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"file:{quote(os.fsdecode(os.path.abspath(path)))}?{query}"


def _writable(path: Path) -> bool:
    return os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def connect_reader(path: Path) -> sqlite3.Connection:
    """A read-only connection to items.sqlite that leaves no files behind (see module docstring)."""
    if not path.is_file():
        raise IndexFormatError(f"{path} is missing")
    attempts = [dict(mode="ro")]
    attempts.append(dict(mode="ro", immutable="1") if not _writable(path) else {})
    last: sqlite3.Error | None = None
    for params in attempts:
        try:
            if params:
                db = sqlite3.connect(_uri(path, **params), uri=True, check_same_thread=False, timeout=READ_TIMEOUT_S)
            else:  # recover a killed writer's hot journal, then read
                db = sqlite3.connect(path, check_same_thread=False, timeout=READ_TIMEOUT_S)
                db.execute("PRAGMA query_only=ON")
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.Error as exc:
            last = exc
    raise IndexFormatError(f"cannot open {path}: {last}")


def connect_writer(path: Path, schema: str) -> sqlite3.Connection:
    """The builder's connection: WAL while it writes, schema created or updated."""
    try:
        db = sqlite3.connect(path, check_same_thread=False, timeout=WRITE_TIMEOUT_S)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(schema)
    except sqlite3.OperationalError as exc:
        raise IndexWriteError(f"cannot write {path}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise IndexFormatError(f"cannot open {path}: {exc}") from None
    return db


def close_writer(db: sqlite3.Connection) -> None:
    """Checkpoint and switch back to rollback-journal mode (so readers leave no files), then close."""
    try:
        db.commit()
        db.execute("PRAGMA busy_timeout=200")
        db.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.Error:
        pass  # a reader holds the database open: stay in WAL, the next build switches
    finally:
        db.close()


def commit(db: sqlite3.Connection, where: Path) -> None:
    """Commit the writer's transaction (a write point: tests inject faults here)."""
    write_point("sqlite", where)
    db.commit()
