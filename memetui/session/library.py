"""The user's files about queries: saved queries, the undo history, bookmarks, result exports.

All live in the user data folder by default (`paths.user_data_dir()`), are JSON with a
`"format"` number, and are written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from ..atomic import write_json_atomic
from ..errors import QueryError
from ..paths import user_data_dir
from ..steer.history import QueryHistory
from ..steer.query import FORMAT_VERSION, Query, parse_json

HISTORY_FILE = "history.json"
BOOKMARKS_FILE = "bookmarks.json"


class SavedHistory(NamedTuple):
    """A history file: the undo states and the steering settings saved beside them."""

    history: QueryHistory
    mode: str | None
    step_size: float | None


def read_json(path: Path) -> object:
    """Parsed JSON of a query-related file (QueryError naming the file)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise QueryError(f"query file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise QueryError(f"cannot read query file {path}: {exc}") from None
    try:
        return parse_json(text)
    except QueryError as exc:
        raise QueryError(f"{path}: {exc}") from None


def save_query(path: str | Path, query: Query) -> None:
    """Write `query` as JSON."""
    write_json_atomic(Path(path), query.to_dict())


def load_query(path: str | Path) -> Query:
    """A query file, or the current query of a history file (QueryError)."""
    data = read_json(Path(path))
    if isinstance(data, dict) and "history" in data:
        return QueryHistory.from_dict(data).current
    return Query.from_dict(data)


def save_history(history: QueryHistory, mode: str, step_size: float, path: str | Path | None = None) -> Path:
    """Write the undo history with the mode and step size (default: data folder/history.json)."""
    path = Path(path) if path else user_data_dir() / HISTORY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {**history.to_dict(), "mode": mode, "step_size": step_size})
    return path


def load_history(path: str | Path | None = None) -> SavedHistory:
    """Read a history file (QueryError when it is missing or malformed)."""
    data = read_json(Path(path) if path else user_data_dir() / HISTORY_FILE)
    history = QueryHistory.from_dict(data)
    step = data.get("step_size")
    return SavedHistory(history, data.get("mode") if isinstance(data.get("mode"), str) else None,
                        float(step) if isinstance(step, (int, float)) and not isinstance(step, bool) else None)


def load_bookmarks(path: str | Path | None = None) -> dict[str, Query]:
    """Bookmarks by name from {"format": 1, "bookmarks": {name: query}}; a missing file -> {}."""
    path = Path(path) if path else user_data_dir() / BOOKMARKS_FILE
    if not path.is_file():
        return {}
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("bookmarks"), dict):
        raise QueryError(f"{path}: a bookmarks file must hold a 'bookmarks' object")
    return {str(name): Query.from_dict(q) for name, q in data["bookmarks"].items()}


def save_bookmark(name: str, query: Query, path: str | Path | None = None) -> None:
    """Add or replace bookmark `name` in the bookmarks file."""
    path = Path(path) if path else user_data_dir() / BOOKMARKS_FILE
    marks = load_bookmarks(path)
    marks[name] = query
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"format": FORMAT_VERSION, "bookmarks": {n: q.to_dict() for n, q in marks.items()}})


def results_document(index: Path, query: Query, results) -> dict:
    """The JSON layout of exported results (`e` in the app, `memetui search --json`)."""
    return {
        "format": FORMAT_VERSION,
        "index": str(index),
        "query": query.to_dict(),
        "results": [{"rank": r.rank, "row": r.row, "score": r.score, "path": str(r.path)} for r in results],
    }


def export_results(path: str | Path, index: Path, query: Query, results) -> Path:
    """Write `results_document` to `path`."""
    path = Path(path)
    write_json_atomic(path, results_document(index, query, results))
    return path


class SessionFiles:
    """A Session's files: load a saved query, save/restore the history, bookmark, export."""

    def __init__(self, session):
        self._session = session

    def load_query(self, path: str | Path) -> Query:
        """Make the query saved in `path` current (undoable; QueryError)."""
        return self._session.set_query(load_query(path))

    def save_history(self, path: str | Path | None = None) -> Path:
        """Write the undo history, mode and step size (default: the data folder)."""
        session = self._session
        return save_history(session.history, session.mode, session.step_size, path)

    def load_history(self, path: str | Path | None = None) -> None:
        """Restore a saved history (its current query is validated against the index)."""
        session = self._session
        saved = load_history(path)
        session.prepare(saved.history.current)
        session.history = saved.history
        if saved.mode in session.modes:
            session.set_mode(saved.mode)
        if saved.step_size is not None:
            session.set_step_size(saved.step_size)

    def bookmark(self, name: str | None = None, path: str | Path | None = None) -> str:
        """`b`: store the current query under `name` (default: its description); returns the name."""
        query = self._session.query
        name = name or query.describe()
        save_bookmark(name, query, path)
        return name

    def export(self, path: str | Path, k: int = 50) -> Path:
        """`e`: write the current query and its top-k results as JSON."""
        session = self._session
        return export_results(path, session.store.path, session.query, session.results(k).results)
