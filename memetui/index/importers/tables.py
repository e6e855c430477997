"""Metadata tables beside imported embeddings: parquet, CSV or JSON lines, one row per embedding row."""

from __future__ import annotations

import csv
import json
from itertools import islice
from pathlib import Path
from typing import Iterator

from . import CAPTION_COLUMNS, PATH_COLUMNS, URL_COLUMNS, ImportFormatError, Record, pick_column

TABLE_SUFFIXES = (".parquet", ".csv", ".jsonl", ".json")


class Table:
    """A metadata table: row count and columns from the header, records streamed from any row."""

    def __init__(self, path: Path, require: tuple[str, ...] = ()):
        """Open `path`; `require` names columns that must exist (ImportFormatError naming the file)."""
        self.path = Path(path)
        try:
            self.columns, self.rows = self._inspect()
        except ImportFormatError:
            raise
        except Exception as exc:  # pyarrow, csv and json raise many types on a damaged file
            raise ImportFormatError(f"{self.path}: unreadable table ({str(exc).splitlines()[0][:160]})") from None
        missing = [c for c in require if c not in self.columns]
        if missing:
            raise ImportFormatError(f"{self.path}: missing column {missing[0]!r} (has {', '.join(self.columns)})")
        self.path_col = pick_column(self.columns, PATH_COLUMNS)
        self.url_col = pick_column(self.columns, URL_COLUMNS)
        self.caption_col = pick_column(self.columns, CAPTION_COLUMNS)
        if not (self.path_col or self.url_col or self.caption_col):
            raise ImportFormatError(
                f"{self.path}: no path, url or caption column (looked for {', '.join(PATH_COLUMNS + URL_COLUMNS)})"
            )
        named = {self.path_col, self.url_col, self.caption_col}
        self.meta_cols = [c for c in self.columns if c not in named]

    def _inspect(self) -> tuple[list[str], int]:
        suffix = self.path.suffix.lower()
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(self.path).metadata
            return list(meta.schema.names), int(meta.num_rows)
        if suffix == ".csv":
            with open(self.path, newline="", encoding="utf-8") as handle:
                reader = csv.reader(handle)
                header = next(reader, None)
                if header is None:
                    raise ImportFormatError(f"{self.path}: empty CSV (no header row)")
                return header, sum(1 for _ in reader)
        if suffix in (".jsonl", ".json"):
            columns, rows = None, 0
            with open(self.path, encoding="utf-8") as handle:
                for number, line in enumerate(handle, 1):
                    if not line.strip():
                        continue
                    record = json.loads(line)
                    if not isinstance(record, dict):
                        raise ImportFormatError(f"{self.path}: line {number} is not a JSON object")
                    columns = columns or list(record)
                    rows += 1
            return columns or [], rows
        raise ImportFormatError(f"{self.path}: not a table (expected {', '.join(TABLE_SUFFIXES)})")

    def records(self, start: int, chunk: int) -> Iterator[list[Record]]:
        """Lists of at most `chunk` Records from row `start` on."""
        if self.path.suffix.lower() == ".parquet":
            yield from self._parquet_records(start, chunk)
            return
        rows = self._dict_rows()
        rows = islice(rows, start, None)
        while batch := list(islice(rows, chunk)):
            yield [self._record(row) for row in batch]

    def _dict_rows(self) -> Iterator[dict]:
        with open(self.path, newline="", encoding="utf-8") as handle:
            if self.path.suffix.lower() == ".csv":
                yield from csv.DictReader(handle)
            else:
                yield from (json.loads(line) for line in handle if line.strip())

    def _record(self, row: dict) -> Record:
        meta = {c: row.get(c) for c in self.meta_cols if row.get(c) not in (None, "")}
        return Record(
            _text(row.get(self.path_col)) if self.path_col else None,
            _text(row.get(self.url_col)) if self.url_col else None,
            _text(row.get(self.caption_col)) if self.caption_col else None,
            json.dumps(meta, ensure_ascii=False, default=str) if meta else None,
        )

    def _parquet_records(self, start: int, chunk: int) -> Iterator[list[Record]]:
        import pyarrow.parquet as pq

        file = pq.ParquetFile(self.path)
        seen = 0
        for batch in file.iter_batches(batch_size=chunk):
            first, seen = seen, seen + batch.num_rows
            if seen <= start:
                continue
            batch = batch.slice(max(0, start - first))
            data = {name: batch.column(name).to_pylist() for name in batch.schema.names}
            yield [self._record({name: values[i] for name, values in data.items()}) for i in range(batch.num_rows)]


def _text(value) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if text else None


def find_table(folder: Path, stem: str | None = None) -> Path | None:
    """The metadata table in `folder` (named `stem`.* when given), None when there is none."""
    found = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in TABLE_SUFFIXES and (stem is None or p.stem == stem)]
    if len(found) > 1:
        raise ImportFormatError(f"{folder}: several metadata tables ({', '.join(p.name for p in found)}); pass --meta FILE")
    return found[0] if found else None
