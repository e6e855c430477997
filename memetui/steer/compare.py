"""Measure steering directions (SAE vs PCA vs random) on one index, with bootstrap intervals.

Two properties a useful steering direction has:

- **exemplar coherence**: its top-10 exemplars (rows with the largest x·v, found with the same
  ANN search the app uses) look alike: mean pairwise cosine of the 10 rows, per direction.
  A baseline row gives the same statistic for 10 random rows.
- **step locality**: one step q₁ = q₀ + α‖q₀‖v from a start query q₀ changes little else:
  `top10_change` = 1 − |top10(q₀) ∩ top10(q₁)|/10, and (with an SAE) `feature_share` =
  |Δa_j| / Σᵢ|Δaᵢ|, where Δa = SAE code(q₁) − code(q₀) and j is the stepped feature (SAE) or the
  feature whose decoder column is closest to v (PCA, random): how much of the change in the
  SAE's reading of the query lands on the one feature being steered;
- **label precision** (when the index has captions and a labeller is given): the share of
  directions whose first text-tower label (the same vocabulary and rule for every provider,
  memetui.sae.labels) occurs in the captions of ≥ `min_hits` of its top-10 exemplars.

Directions per provider: SAE features that fire on a sample of rows; the leading PCA components;
seeded random directions. Step pairs: each start query (an index row) with the provider's most
active directions for it (random: fresh random directions), as in the app. Intervals are
percentile bootstraps of the mean: over directions for coherence, over start queries (cluster
bootstrap) for locality.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

from ..errors import QueryError
from .query import DEFAULT_STEP
from .random_directions import RandomDirections


@dataclass
class CompareOptions:
    """What `compare` measures."""

    directions: int = 64
    """Directions per provider for exemplar coherence."""
    starts: int = 32
    """Start queries (index rows) for step locality."""
    per_start: int = 4
    """Directions stepped from each start query."""
    exemplars: int = 10
    """Exemplars per direction (and the top-k whose change a step measures)."""
    step_size: float = DEFAULT_STEP
    """α of the measured step."""
    bootstrap: int = 1000
    """Bootstrap resamples for the 95% intervals."""
    seed: int = 0
    """Seed for sampling rows, features, random directions and bootstrap."""
    min_hits: int = 3
    """Label precision: a label is right when it occurs in the captions of at least this many exemplars."""

    def __post_init__(self):
        for name in ("directions", "starts", "per_start", "exemplars", "bootstrap", "min_hits"):
            if getattr(self, name) < 1:
                raise QueryError(f"{name} must be >= 1")
        if not self.step_size > 0:
            raise QueryError("step size must be > 0")


class Interval(NamedTuple):
    """Mean of a statistic with a 95% percentile-bootstrap interval."""

    mean: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict:
        return self._asdict()


class ProviderScores(NamedTuple):
    """Scores of one provider."""

    provider: str
    coherence: Interval
    top10_change: Interval
    feature_share: Interval | None
    """None when the index has no SAE."""
    label_precision: Interval | None = None
    """None without captions or a labeller."""
    examples: tuple = ()
    """(direction id, first label, exemplars whose caption holds it) for the first few directions."""


class CompareReport(NamedTuple):
    """The result of `compare`."""

    index: str
    rows: int
    sae: str | None
    baseline_coherence: Interval
    providers: list[ProviderScores]
    options: CompareOptions

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return {
            "index": self.index, "rows": self.rows, "sae": self.sae, "options": asdict(self.options),
            "baseline_coherence": self.baseline_coherence.to_dict(),
            "providers": {
                p.provider: {
                    "coherence": p.coherence.to_dict(), "top10_change": p.top10_change.to_dict(),
                    "feature_share": p.feature_share.to_dict() if p.feature_share else None,
                    "label_precision": p.label_precision.to_dict() if p.label_precision else None,
                    "examples": [list(e) for e in p.examples],
                } for p in self.providers
            },
        }


def bootstrap_mean(values: np.ndarray, resamples: int, rng: np.random.Generator) -> Interval:
    """Mean and 95% percentile-bootstrap interval; `values` [n] or [clusters, m] (cluster bootstrap)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    clusters = values.reshape(len(values), -1)
    picks = rng.integers(0, len(clusters), (resamples, len(clusters)))
    means = np.nanmean(clusters[picks].reshape(resamples, -1), axis=1)
    low, high = np.nanpercentile(means, [2.5, 97.5])
    return Interval(float(np.nanmean(clusters)), float(low), float(high), int(np.isfinite(clusters).sum()))


def mean_pairwise_cosine(x: np.ndarray) -> float:
    """Mean cosine over distinct pairs of the rows of x ([m, d], m ≥ 2)."""
    x = np.asarray(x, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    gram = x @ x.T
    m = len(x)
    return float((gram.sum() - np.trace(gram)) / (m * (m - 1)))


def compare(store, providers: dict, search, sae=None, options: CompareOptions | None = None,
            progress=None, labeller=None, captions: dict[int, str] | None = None) -> CompareReport:
    """Score each provider in `providers` (name -> DirectionProvider; 'random' is replaced by fresh
    seeded directions) on `store`'s rows. `search(vector, k)` is the ANN the app uses (returns Hits);
    `sae` (SAEDirections) measures how a step's change lands on the stepped feature.
    `labeller([n, d] vectors, [n] exemplar rows) -> [n] label lists` and `captions` (row -> text) give label precision.
    `progress(name)` is called as each provider starts."""
    options = options or CompareOptions()
    rng = np.random.default_rng(options.seed)
    live = np.flatnonzero(store.live_mask())
    if len(live) < max(4, options.exemplars + 1):
        raise QueryError(f"compare needs more than {options.exemplars} images in the index")
    emb = store.embeddings
    k = options.exemplars
    baseline = [mean_pairwise_cosine(emb[np.sort(rng.choice(live, k, replace=False))])
                for _ in range(max(options.directions, 64))]
    starts = rng.choice(live, min(options.starts, len(live)), replace=False)
    random_dirs = RandomDirections(store.dim, seed=options.seed + 1)
    scores = []
    for name, provider in providers.items():
        if progress:
            progress(name)
        provider = random_dirs if name == "random" else provider
        ids = _coherence_ids(emb, name, provider, options, rng, live)
        exemplars = [np.sort(search(provider.vector(j), k).rows) for j in ids]
        coherence = [mean_pairwise_cosine(emb[rows]) for rows in exemplars]
        changes, shares = _locality(emb, search, sae, name, provider, starts, options)
        precision, examples = None, ()
        if labeller is not None and captions:
            hits, examples = _label_hits(labeller, provider, ids, exemplars, captions)
            precision = bootstrap_mean((hits >= options.min_hits).astype(np.float64), options.bootstrap, rng)
        scores.append(ProviderScores(
            name,
            bootstrap_mean(np.array(coherence), options.bootstrap, rng),
            bootstrap_mean(changes, options.bootstrap, rng),
            bootstrap_mean(shares, options.bootstrap, rng) if shares is not None else None,
            precision, examples,
        ))
    return CompareReport(str(store.path), int(len(live)), getattr(sae, "sae_name", None),
                         bootstrap_mean(np.array(baseline), options.bootstrap, rng), scores, options)


def _label_hits(labeller, provider, ids, exemplars, captions, shown: int = 8):
    """Per direction, how many of its exemplars' captions hold its first label; a few examples."""
    from ..sae.words import label_hits

    labels = labeller(np.stack([provider.vector(j) for j in ids]), exemplars) if ids else []
    firsts = [found[0] if found else "" for found in labels]
    hits = np.array([label_hits(first, rows, captions) if first else 0 for first, rows in zip(firsts, exemplars)])
    return hits, tuple((int(j), first, int(h)) for j, first, h in list(zip(ids, firsts, hits))[:shown])


def _coherence_ids(emb, name, provider, options, rng, live) -> list[int]:
    if name == "random":
        return list(range(options.directions))
    if name == "pca":
        return list(range(min(options.directions, len(provider))))
    sample = rng.choice(live, min(2048, len(live)), replace=False)
    code = provider.encode(np.asarray(emb[np.sort(sample)], np.float32) * provider.input_norm)
    fired = np.unique(code.indices[code.acts > 0])
    if len(fired) == 0:
        fired = np.arange(len(provider))
    return [int(j) for j in rng.choice(fired, min(options.directions, len(fired)), replace=False)]


def _locality(emb, search, sae, name, provider, starts, options):
    """[starts, per_start] top-10 change and SAE feature share (None without an SAE)."""
    k = options.exemplars
    changes = np.full((len(starts), options.per_start), np.nan)
    shares = np.full_like(changes, np.nan) if sae is not None else None
    next_random = options.directions
    for s, row in enumerate(starts):
        v0 = np.asarray(emb[int(row)], dtype=np.float32)
        if name == "random":
            ids = list(range(next_random, next_random + options.per_start))
            next_random += options.per_start
        else:
            ids = [a.id for a in provider.active(v0, options.per_start)]
        top0 = set(search(v0, k).rows.tolist())
        code0 = sae.dense(sae.encode_query(v0)) if sae is not None else None
        norm = float(np.linalg.norm(v0))
        for t, j in enumerate(ids[: options.per_start]):
            d = provider.vector(j)
            v1 = v0 + np.float32(options.step_size * norm) * d
            top1 = set(search(v1, k).rows.tolist())
            changes[s, t] = 1 - len(top0 & top1) / max(len(top0), 1)
            if sae is not None:
                delta = np.abs(sae.dense(sae.encode_query(v1)) - code0)
                target = j if name == "sae" else int(np.argmax(np.abs(sae.decoder_rows @ d)))
                total = float(delta.sum())
                shares[s, t] = float(delta[target]) / total if total > 0 else 0.0
    return changes, shares
