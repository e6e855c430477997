"""Milvus as an ANN backend: one collection per index, synced from items.sqlite, exact rerank of candidates.

`memetui index DIR --ann milvus://HOST:PORT` (a Milvus standalone or cluster) or
`--ann milvus-lite:PATH` (embedded, a local `.db` file) records in the manifest::

    "ann": {"kind": "milvus", "uri": "http://HOST:PORT" | "/abs/path.db", "collection": NAME,
            "synced": ROWS, "deleted": [ROW, ...]}

`synced` rows 0..synced-1 have been considered: live ones are in the collection (primary key
`row`, field `vector` = the fp16 row as float32, HNSW index, inner product), tombstoned ones
(listed in `deleted`) are not. Each build upserts new and revived rows and deletes newly
tombstoned ones, so a killed sync repeats harmlessly. A query asks Milvus for the best
`max(RERANK_FACTOR·k, MIN_CANDIDATES)` rows, then rescores them exactly with vectors from the
local fp16 memmap (or from Milvus when there is none) and keeps k.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from ..errors import RemoteIndexError, UsageError
from ..extras import require

log = logging.getLogger(__name__)
SPEC_PREFIXES = ("milvus://", "milvus-lite:")
"""How `--ann` names a Milvus backend."""
HNSW_PARAMS = {"M": 16, "efConstruction": 200}
"""Milvus HNSW build parameters: recall@10 0.996-0.997 at 100k x 512 with ef 128 (issue 17)."""
INSERT_CHUNK = 4_096
"""Rows per insert/upsert request (a 512-d float32 chunk is 8 MB, under gRPC's 64 MB cap)."""
RERANK_FACTOR = 2
MIN_CANDIDATES = 50
"""Candidates fetched from Milvus per query at least (then rescored exactly and cut to k)."""
CONNECT_TIMEOUT_S = 3.0

_clients: dict[str, object] = {}
_clients_lock = threading.Lock()


class SyncResult(NamedTuple):
    """What one sync sent to Milvus."""

    upserted: int
    deleted: int
    live: int


def is_milvus_spec(spec: str | None) -> bool:
    """True when an `--ann` value names Milvus."""
    return bool(spec) and spec.startswith(SPEC_PREFIXES)


def parse_spec(spec: str, index_path: Path) -> dict:
    """The manifest's `ann` record for `--ann milvus://HOST:PORT` or `milvus-lite:PATH` (UsageError if malformed)."""
    if spec.startswith("milvus://"):
        address = spec.removeprefix("milvus://").rstrip("/")
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(f"--ann {spec}: expected milvus://HOST:PORT")
        uri = f"http://{host}:{port}"
    else:
        path = spec.removeprefix("milvus-lite:")
        if not path:
            raise UsageError(f"--ann {spec}: expected milvus-lite:PATH (a .db file)")
        file = Path(path).expanduser().resolve()
        if file.suffix != ".db":
            raise UsageError(f"--ann {spec}: a milvus-lite file name ends in .db")
        file.parent.mkdir(parents=True, exist_ok=True)
        uri = str(file)
    return {"kind": "milvus", "uri": uri, "collection": collection_name(index_path), "synced": 0, "deleted": []}


def collection_name(index_path: Path) -> str:
    """One collection per index: `memetui_` + a hash of the index folder's absolute path (letters, digits, _)."""
    digest = hashlib.sha256(str(Path(index_path).expanduser().resolve()).encode("utf-8", "surrogateescape"))
    return f"memetui_{digest.hexdigest()[:16]}"


def is_milvus(ann: dict | None) -> bool:
    """True when a manifest `ann` record puts the vectors in Milvus."""
    return bool(ann) and ann.get("kind") == "milvus"


def connect(uri: str):
    """A MilvusClient for `uri` (one per process and uri); RemoteIndexError when it cannot be reached."""
    with _clients_lock:
        client = _clients.get(uri)
        if client is not None:
            return client
        pymilvus = require("pymilvus", "Milvus (--ann milvus…)")
        if not uri.startswith("http"):
            require("milvus_lite", "milvus-lite (--ann milvus-lite:…)")
            # milvus-lite serves gRPC in this process and logs a traceback for each call it does not
            # implement (AllocTimestamp, which pymilvus 3 tries first); failures still reach us as exceptions
            logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
        try:
            client = pymilvus.MilvusClient(uri=uri, timeout=CONNECT_TIMEOUT_S)
        except Exception as exc:  # MilvusException, grpc errors, OSError from milvus-lite's server
            raise RemoteIndexError(f"cannot reach Milvus at {uri}: {_reason(exc)}") from None
        _clients[uri] = client
        return client


def close_all() -> None:
    """Close every client this process opened (milvus-lite stops its embedded server)."""
    with _clients_lock:
        for client in _clients.values():
            try:
                client.close()
            except Exception:  # already closed or server gone: nothing left to release
                pass
        _clients.clear()


def _reason(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(message).split())[:200]


def _call(uri: str, what: str, fn: Callable, *args, **kwargs):
    """Run one client call; any failure becomes RemoteIndexError naming the server and the step."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        raise RemoteIndexError(f"Milvus at {uri}: {what} failed: {_reason(exc)}") from None


def ensure_collection(client, uri: str, name: str, dim: int) -> bool:
    """Create collection `name` (row INT64 key, vector FLOAT_VECTOR[dim], HNSW/IP) if missing; True if created."""
    if _call(uri, "has_collection", client.has_collection, name):
        return False
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("row", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(dim))
    params = client.prepare_index_params()
    params.add_index(field_name="vector", index_type="HNSW", metric_type="IP", params=dict(HNSW_PARAMS))
    _call(uri, f"create collection {name}", client.create_collection, name, schema=schema, index_params=params)
    return True


def sync_collection(store, progress: Callable[[int, int], None] | None = None) -> SyncResult:
    """Bring the Milvus collection in line with items.sqlite's published rows; updates manifest.ann (not written).

    Upserts live rows not yet sent (new, or revived after a tombstone), deletes rows that became
    tombstones. The caller writes the manifest afterwards.
    """
    ann = store.manifest.ann
    uri, name = ann["uri"], ann["collection"]
    client = connect(uri)
    if ensure_collection(client, uri, name, store.dim):
        ann["synced"], ann["deleted"] = 0, []  # a new (or dropped) collection: send every row
    count, synced = store.count, min(int(ann.get("synced", 0)), store.count)
    live = store.live_mask()
    was_deleted = {int(r) for r in ann.get("deleted", []) if int(r) < synced}
    dead = set(np.flatnonzero(~live).tolist())
    to_send = np.array(sorted({r for r in was_deleted if live[r]} | set(range(synced, count)) - dead), dtype=np.int64)
    to_delete = sorted((dead - was_deleted) | {r for r in dead if r >= synced})
    embeddings = store.embeddings
    for done in range(0, len(to_send), INSERT_CHUNK):
        rows = to_send[done:done + INSERT_CHUNK]
        vectors = np.asarray(embeddings[rows], dtype=np.float32)
        _call(uri, "upsert", client.upsert, name, [{"row": int(r), "vector": v} for r, v in zip(rows, vectors)])
        if progress:
            progress(done + len(rows), len(to_send))
    if to_delete:
        _call(uri, "delete", client.delete, name, ids=[int(r) for r in to_delete])
    if len(to_send) or to_delete:  # seal the segments: Milvus indexes them now, not at the first query
        _call(uri, "flush", client.flush, name)
        if not uri.startswith("http"):  # milvus-lite builds (and saves) segment indexes only when loading
            _call(uri, "release", client.release_collection, name)
            _call(uri, "load", client.load_collection, name)
    ann["synced"], ann["deleted"] = count, sorted(dead)
    return SyncResult(len(to_send), len(to_delete), int(live.sum()))


def check_spec(spec: str) -> dict | None:
    """Validate an `--ann` value and reach the Milvus it names now; None for 'local'."""
    if spec == "local":
        return None
    if not is_milvus_spec(spec):
        raise UsageError(f"--ann {spec}: expected milvus://HOST:PORT, milvus-lite:PATH.db or local")
    record = parse_spec(spec, Path("."))
    connect(record["uri"])
    return record


def configure(store, spec: str | None) -> None:
    """Point the open (writable) index at `--ann spec`; None keeps the manifest's choice, 'local' drops Milvus."""
    if spec is None:
        return
    if check_spec(spec) is None:
        store.manifest.ann = {}
        return
    new, old = parse_spec(spec, store.path), store.manifest.ann
    if not (is_milvus(old) and old["uri"] == new["uri"] and old["collection"] == new["collection"]):
        store.manifest.ann = new


def attach(index_path: Path, spec: str) -> SyncResult | None:
    """Apply `--ann spec` to a built or imported index and sync its collection (takes the writer lock)."""
    from .store import IndexStore

    store = IndexStore.open(index_path, write=True)
    try:
        configure(store, spec)
        store.write_manifest()
        return sync_remote(store)
    finally:
        store.close()


def sync_remote(store, progress: Callable[[int, int], None] | None = None) -> SyncResult | None:
    """After a publish: sync the Milvus collection and write the manifest again, when the index has one."""
    if not is_milvus(store.manifest.ann):
        return None
    result = sync_collection(store, progress)
    store.write_manifest()
    log.info("milvus %s: %d upserted, %d deleted, %d live", store.manifest.ann["collection"], *result)
    return result


class MilvusSearcher:
    """Top-k by exact dot product among the best candidates Milvus returns for a query."""

    def __init__(self, store, ef: int = 128, rerank_from: str = "auto"):
        """`rerank_from`: 'local' (the fp16 memmap), 'milvus' (fetch candidate vectors), 'auto' (local when present)."""
        ann = store.manifest.ann
        self.store, self.ef = store, int(ef)
        self.uri, self.collection = ann["uri"], ann["collection"]
        self.client = connect(self.uri)
        if not _call(self.uri, "has_collection", self.client.has_collection, self.collection):
            raise RemoteIndexError(f"Milvus at {self.uri} has no collection {self.collection} for {store.path}:"
                                   " re-run memetui index on it to fill one")
        _call(self.uri, f"load {self.collection}", self.client.load_collection, self.collection)
        if rerank_from == "auto":
            rerank_from = "local" if store.has_memmap() else "milvus"
        self.rerank_from = rerank_from

    def candidates(self, query: np.ndarray, n: int) -> np.ndarray:
        """Up to `n` published rows Milvus ranks best for `query` ([d] float32), in its order."""
        found = _call(self.uri, "search", self.client.search, self.collection, data=[query], limit=int(n),
                      filter=f"row < {int(self.store.count)}", output_fields=["row"],
                      search_params={"metric_type": "IP", "params": {"ef": max(self.ef, int(n))}})
        return np.array([hit["row"] for hit in found[0]], dtype=np.int64)

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """[len(rows), d] float32 vectors of `rows`, from the memmap or from Milvus."""
        if self.rerank_from == "local":
            return np.asarray(self.store.embeddings[rows], dtype=np.float32)
        return fetch_vectors(self.client, self.uri, self.collection, rows, self.store.path)

    def search(self, query: np.ndarray, k: int, live: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores) of the top-k live rows, best first; `live` masks rows tombstoned since the last sync."""
        n = min(max(RERANK_FACTOR * k, MIN_CANDIDATES), self.store.count)
        rows = self.candidates(query, n)
        if live is not None and len(rows):
            rows = rows[live[rows]]
        if not len(rows):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        scores = (self.vectors(rows) @ query).astype(np.float32)
        order = np.argsort(-scores, kind="stable")[:k]
        return rows[order], scores[order]


def fetch_vectors(client, uri: str, collection: str, rows: np.ndarray, index_path: Path) -> np.ndarray:
    """[len(rows), d] float32 vectors of `rows` from `collection`, in order; RemoteIndexError when one is missing."""
    got = _call(uri, "get", client.get, collection, ids=[int(r) for r in rows], output_fields=["vector"])
    by_row = {int(e["row"]): e["vector"] for e in got}
    missing = [int(r) for r in rows if int(r) not in by_row]
    if missing:
        raise RemoteIndexError(f"Milvus at {uri}: collection {collection} lacks row {missing[0]} of {index_path}"
                               f" ({len(missing)} of {len(rows)} asked): re-run memetui index on it")
    return np.asarray([by_row[int(r)] for r in rows], dtype=np.float32)


def stream_rows(store, rows: np.ndarray, batch: int = 4096) -> np.ndarray:
    """[len(rows), d] float16 vectors of `rows` fetched from the index's collection, `batch` keys a call
    (memory: the result only); RemoteIndexError when Milvus is down or lacks a row."""
    ann = store.manifest.ann
    uri, name = ann["uri"], ann["collection"]
    client = connect(uri)
    _call(uri, f"load {name}", client.load_collection, name)
    rows = np.asarray(rows, dtype=np.int64)
    out = np.empty((len(rows), store.dim), np.float16)
    for start in range(0, len(rows), batch):
        keys = rows[start:start + batch]
        out[start:start + len(keys)] = fetch_vectors(client, uri, name, keys, store.path)
    return out
