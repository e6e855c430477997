"""Benchmark: one steering keypress (step + SAE encode + ANN top-k) vs numpy brute force.

    python bench/bench_step.py            # 100k x 512 index, 16384-latent SAE, p50/p95 ms, ratio

A keypress is what the TUI does on `l`: Session.step(+1), then results(k) and
active_directions(n) for the new query. Scenarios:

- hold:  repeated steps along one selected SAE feature (holding the key);
- fresh: every keypress selects a feature never stepped before (one W_enc·d projection each).

Brute force does the same work the plain way: q = Σ wᵢeᵢ, a dense SAE encode
(W_enc (q̂ − b_pre)/s + b_enc, top-k) and numpy `X @ q` + argpartition over all rows.
Data: bench_search.py's synthetic clustered unit vectors; the index (HNSW graph) is cached in
--cache. The SAE has random weights (W_enc = W_dec.T copy, b_pre = data mean): timing only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_search import cached_store  # noqa: E402

from memetui.session import Session  # noqa: E402
from memetui.steer.query import Query, Term  # noqa: E402
from memetui.steer.sae_directions import SAEDirections  # noqa: E402


def random_sae(data: np.ndarray, n_latents: int, k: int, seed: int = 0) -> SAEDirections:
    """A randomly initialised top-k SAE for `data` (unit decoder columns)."""
    rng = np.random.default_rng(seed)
    d = data.shape[1]
    w_dec = rng.standard_normal((d, n_latents), dtype=np.float32)
    w_dec /= np.linalg.norm(w_dec, axis=0, keepdims=True)
    b_pre = np.asarray(data[:10_000], np.float32).mean(0)
    return SAEDirections(w_dec.T.copy(), np.zeros(n_latents, np.float32), b_pre, w_dec, k=k,
                         scale=float(np.sqrt(1 / d)))


def percentiles(times: list[float]) -> tuple[float, float]:
    """(p50, p95) in ms."""
    ordered = sorted(times)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def run_session(session: Session, presses: int, k: int, fresh: bool, seed: int = 2) -> list[float]:
    """Milliseconds per keypress (step + results + active features)."""
    rng = np.random.default_rng(seed)
    session.set_query(Query())
    session.set_mode("sae")
    rows = rng.integers(0, session.store.count, 2)
    session.add_image(int(rows[0]))
    session.add_image(int(rows[1]), weight=0.5)
    session.results(k)
    session.select_direction(session.active_directions(1)[0].id)
    features = rng.permutation(session.directions.sae.n_latents)
    times = []
    for i in range(presses):
        started = time.perf_counter()
        if fresh:
            session.select_direction(int(features[i]))
        session.step(+1 if i % 4 != 3 else -1)
        session.results(k)
        session.active_directions(10)
        times.append((time.perf_counter() - started) * 1000)
        if len(session.query.terms) > 12:  # keep queries app-sized
            session.undo()
    return times


def run_brute(session: Session, matrix: np.ndarray, presses: int, k: int, seed: int = 2) -> list[float]:
    """The same keypresses done plainly: dense vector sum, dense SAE encode, brute-force top-k."""
    sae = session.directions.sae
    w_enc = sae._w_enc.numpy()
    offset = sae._offset  # b_enc − W_enc b_pre / s: pre = W_enc x / s + offset
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, session.store.count, 2)
    terms = [(1.0, matrix[rows[0]]), (0.5, matrix[rows[1]])]
    features = rng.permutation(sae.n_latents)
    times = []
    for i in range(presses):
        started = time.perf_counter()
        q = sum(np.float32(w) * e for w, e in terms)
        d = sae.decoder_rows[features[i % 64]]
        terms.append((0.25 * float(np.linalg.norm(q)), d))
        q = sum(np.float32(w) * e for w, e in terms)
        x = q / np.linalg.norm(q) * sae.input_norm
        pre = w_enc @ x / np.float32(sae.scale) + offset
        top = np.argpartition(pre, -sae.k)[-sae.k:]
        top = top[np.argsort(-pre[top])][:10]
        scores = matrix @ q
        best = np.argpartition(-scores, k)[:k]
        best = best[np.argsort(-scores[best])]
        session.store.paths(best)
        times.append((time.perf_counter() - started) * 1000)
        if len(terms) > 12:
            terms.pop()
    return times


def main() -> None:
    """Print p50/p95 per keypress for memetui and brute force, and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("-d", type=int, default=512)
    parser.add_argument("--latents", type=int, default=16_384)
    parser.add_argument("--sae-k", type=int, default=32)
    parser.add_argument("-k", type=int, default=12, help="results per search (a grid of thumbnails)")
    parser.add_argument("--presses", type=int, default=400)
    parser.add_argument("--ef", type=int, default=None, help="HNSW ef (default: the index's, 128)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/memetui-bench"))
    args = parser.parse_args()

    import torch

    torch.set_num_threads(2)
    store = cached_store(args.n, args.d, args.cache)
    sae = random_sae(store.embeddings, args.latents, args.sae_k)
    from memetui.index.ann import AnnSearcher

    session = Session(store, sae=sae, ann=AnnSearcher(store, exact=False, ef=args.ef))
    matrix = np.asarray(store.embeddings, dtype=np.float32)
    print(f"keypress = step + SAE encode ({args.latents} x {args.d}, k={args.sae_k}) + top-{args.k} "
          f"of {args.n:,} x {args.d}; {args.presses} presses, hnsw ef={session.searcher.ann.ef}, torch threads 2")
    run_session(session, 20, args.k, fresh=False)  # warm up
    run_brute(session, matrix, 5, args.k)
    rows = {
        "memetui (hold key: same feature)": percentiles(run_session(session, args.presses, args.k, fresh=False)),
        "memetui (new feature every press)": percentiles(run_session(session, args.presses, args.k, fresh=True, seed=3)),
        "numpy brute force": percentiles(run_brute(session, matrix, max(50, args.presses // 4), args.k)),
    }
    base = rows["numpy brute force"][0]
    print(f"{'method':<36}{'p50 ms':>9}{'p95 ms':>9}{'vs brute':>10}")
    for name, (p50, p95) in rows.items():
        print(f"{name:<36}{p50:>9.2f}{p95:>9.2f}{base / p50:>9.1f}x")
    hold = rows["memetui (hold key: same feature)"][0]
    print(f"speed-up (hold key) vs brute force: {base / hold:.1f}x; target p50 <= 5 ms and >= 10x")


if __name__ == "__main__":
    main()
