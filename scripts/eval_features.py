#!/usr/bin/env python3
"""Issue 13 items 3 and 4 on one index: label precision, dead latents and exemplar coherence.

    python scripts/eval_features.py [INDEX] [--sae NAME] [--directions 128] [--json FILE]

Prints, for the index's SAE (default: its first) against PCA and random directions:
- dead latents: share of latents that fire on no training row, no validation row, no row at all;
- exemplar coherence (mean pairwise cosine of each direction's top-10 rows by x·v) with 95 %
  bootstrap intervals, and the gap SAE − random;
- label precision: share of directions whose first text-tower label occurs in the captions of ≥ 3
  of their top-10 rows, with 95 % bootstrap intervals, and SAE / random;
- a few features with both stored labels (text tower · exemplar words).
Goals (issue 13): dead (all rows) ≤ 10 %; coherence SAE − random ≥ 0.1 with disjoint intervals;
label precision SAE ≥ 0.5 and ≥ 3 × random.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def interval(iv) -> str:
    """'mean [low, high]' of a compare Interval; 'n/a' for None."""
    return "n/a" if iv is None else f"{iv.mean:.3f} [{iv.low:.3f}, {iv.high:.3f}] (n={iv.n})"


def main() -> int:
    """Measure and print the figures (and write them as JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", nargs="?", default=str(ROOT / "sample_index"))
    parser.add_argument("--sae", default=None, help="SAE name in INDEX/sae (default: the first)")
    parser.add_argument("--directions", type=int, default=128, help="directions per provider (default 128)")
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, metavar="FILE")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from memetui.index.captions import captions as index_captions
    from memetui.index.store import IndexStore
    from memetui.sae.dead import dead_by_split
    from memetui.sae.labels import text_labeller, vocabulary_file
    from memetui.sae.model import load_for_index
    from memetui.session import Session
    from memetui.steer.compare import CompareOptions, compare
    from memetui.steer.sae_directions import SAEDirections

    started = time.perf_counter()
    store = IndexStore.open(Path(args.index))
    name = args.sae or (store.sae_names() or [None])[0]
    if name is None:
        sys.exit(f"{store.path} has no SAE")
    sae = load_for_index(name, store)
    dead = dead_by_split(sae, store)
    directions = SAEDirections.from_sae(sae, sae_name=name)
    session = Session(store, sae=directions)
    captions = index_captions(store)
    vocab = vocabulary_file(store.model.pretrained)
    labeller = text_labeller(session.terms.embedder, store) if captions else None
    options = CompareOptions(args.directions, starts=16, per_start=2, bootstrap=args.bootstrap, seed=args.seed)
    report = compare(store, {m: session.directions.provider(m) for m in session.directions.modes},
                     session.searcher.ann.search, directions, options, labeller=labeller, captions=captions)
    by = {p.provider: p for p in report.providers}
    s, r = by["sae"], by["random"]
    gap = s.coherence.mean - r.coherence.mean
    disjoint = s.coherence.low > r.coherence.high
    ratio = (s.label_precision.mean / r.label_precision.mean if s.label_precision and r.label_precision
             and r.label_precision.mean > 0 else float("inf"))
    print(f"index {store.path} ({report.rows:,} live rows, {len(captions):,} with captions), model {store.model.name}")
    print(f"SAE {name}: n={sae.n_latents} k={sae.k}, trained {json.dumps({k: (sae.meta.get('training') or {}).get(k) for k in ('epochs', 'lr_used', 'steps')})}")
    print(f"label vocabulary: {vocab}")
    print(f"dead latents (fire on no row): train {dead.train:.2%} ({dead.train_rows:,} rows), "
          f"validation {dead.val:.2%} ({dead.val_rows:,} rows), all rows {dead.all:.2%}   goal ≤ 10 %: "
          f"{'met' if dead.all <= 0.10 else 'NOT met'}")
    print("exemplar coherence, mean [95% CI]:")
    for p in report.providers:
        print(f"  {p.provider:<7} {interval(p.coherence)}")
    print(f"  rows    {interval(report.baseline_coherence)}  (10 random rows)")
    print(f"  SAE − random = {gap:+.3f}, intervals {'disjoint' if disjoint else 'overlap'}   goal ≥ 0.1 and disjoint: "
          f"{'met' if gap >= 0.1 and disjoint else 'NOT met'}")
    print(f"label precision (first label in ≥ {options.min_hits} of the top-{options.exemplars} captions), mean [95% CI]:")
    for p in report.providers:
        print(f"  {p.provider:<7} {interval(p.label_precision)}   e.g. {list(p.examples[:4])}")
    if s.label_precision:
        print(f"  SAE / random = {ratio:.2f}   goal SAE ≥ 0.5 and ≥ 3 × random: "
              f"{'met' if s.label_precision.mean >= 0.5 and ratio >= 3 else 'NOT met'}")
    print("stored labels (text tower · exemplar words) of the most frequent features:")
    for j in [e[0] for e in s.examples[:6]]:
        print(f"  #{j}: {directions.label(j)}")
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.json:
        data = {"index": str(store.path), "sae": name, "n_latents": sae.n_latents, "k": sae.k,
                "training": sae.meta.get("training"), "vocabulary": str(vocab), "dead": dead._asdict(),
                "coherence_gap": gap, "coherence_disjoint": disjoint, "label_precision_ratio": ratio,
                "compare": report.to_dict()}
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
