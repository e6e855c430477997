"""`memetui compare [INDEX]`: exemplar coherence and step locality of SAE vs PCA vs random directions."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..steer.query import DEFAULT_STEP
from .common import add_device_argument, add_index_argument, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `memetui compare`."""
    add_index_argument(parser)
    parser.add_argument("--sae", default=None, help="SAE name in INDEX/sae or a path (default: the index's first)")
    parser.add_argument("--directions", type=positive_int, default=64, help="directions per provider (default 64)")
    parser.add_argument("--starts", type=positive_int, default=32, help="start queries for step locality (default 32)")
    parser.add_argument("--per-start", type=positive_int, default=4, help="directions stepped per start (default 4)")
    parser.add_argument("--step-size", type=float, default=DEFAULT_STEP, help=f"step size α (default {DEFAULT_STEP})")
    parser.add_argument("--bootstrap", type=positive_int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--min-hits", type=positive_int, default=3,
                        help="label precision: exemplars whose caption must hold the first label (default 3)")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE", help="also write the report as JSON")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_device_argument(parser)


def run(args: argparse.Namespace) -> int:
    """Run the comparison, print a table (or JSON) and optionally write JSON."""
    from rich.console import Console
    from rich.table import Table

    from ..atomic import write_json_atomic
    from ..index.captions import captions as index_captions
    from ..sae.labels import text_labeller
    from ..session import Session
    from ..steer.compare import CompareOptions, compare
    from ..text import markup_safe

    session = Session.open(args.index, device=args.device, sae=args.sae)
    options = CompareOptions(args.directions, args.starts, args.per_start, step_size=args.step_size,
                             bootstrap=args.bootstrap, seed=args.seed, min_hits=args.min_hits)
    console = Console(stderr=True)
    with console.status("measuring") as status:
        directions = session.directions
        captions = index_captions(session.store)
        labeller = None
        if captions:
            status.update("embedding the label vocabulary")
            labeller = text_labeller(session.terms.embedder, session.store)
        report = compare(session.store, {name: directions.provider(name) for name in directions.modes},
                         session.searcher.ann.search, directions.sae, options,
                         progress=lambda name: status.update(f"measuring {name} directions"),
                         labeller=labeller, captions=captions)
    data = report.to_dict()
    if args.out:
        write_json_atomic(args.out, data)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0

    def cell(iv) -> str:
        return "n/a" if iv is None else f"{iv.mean:.3f} [{iv.low:.3f}, {iv.high:.3f}]"

    table = Table(title=f"steering directions on {report.rows:,} images",
                  caption=f"mean [95% bootstrap CI]. coherence: mean pairwise cosine of a direction's "
                          f"top-{options.exemplars} exemplars. changed: share of the top-{options.exemplars} "
                          f"replaced by one step (α = {options.step_size:g}). feature share: the stepped SAE "
                          f"feature's part of the change in the SAE code. label precision: share of directions "
                          f"whose first label is in the captions of ≥ {options.min_hits} of their top-"
                          f"{options.exemplars} ({'n/a: the index has no captions' if not captions else f'{len(captions):,} captioned rows'}).")
    table.add_column("directions")
    table.add_column("coherence ↑", justify="right")
    table.add_column(f"top-{options.exemplars} changed", justify="right")
    table.add_column("feature share ↑", justify="right")
    table.add_column("label precision ↑", justify="right")
    for p in report.providers:
        table.add_row(p.provider + (f" ({markup_safe(report.sae)})" if p.provider == "sae" and report.sae else ""),
                      cell(p.coherence), cell(p.top10_change), cell(p.feature_share), cell(p.label_precision))
    table.add_row("random rows", cell(report.baseline_coherence), "", "", "", style="dim")
    Console(highlight=False).print(table)
    if args.out:
        print(f"wrote {args.out}")
    return 0
