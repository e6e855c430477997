"""`memetui search TERMS...`: weighted text/image query terms, ranked by dot product."""

from __future__ import annotations

import argparse
import json
import re
import sys

from .common import add_device_argument, add_index_argument, positive_int

WEIGHTED = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+)|[+-]):(.*)$", re.S)


def parse_term(text: str) -> tuple[float, str]:
    """Split `2:cat`, `-1:text`, `-:x` or `cat` into (weight, text)."""
    match = WEIGHTED.match(text)
    if not match:
        return 1.0, text
    weight, rest = match.groups()
    return (float(weight + "1") if weight in "+-" else float(weight)), rest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `memetui search`."""
    parser.add_argument("terms", nargs="*", metavar="TERM", help="text terms, optionally weighted: cat, 2:cat, -1:text")
    parser.add_argument("--image", action="append", default=[], metavar="[W:]PATH",
                        help="an image file as a query term (repeatable, weight like terms)")
    parser.add_argument("-k", type=positive_int, default=10, help="number of results (default 10)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    add_index_argument(parser, positional=False)
    add_device_argument(parser)


def take_extra_args(args: argparse.Namespace, extra: list[str]) -> list[str]:
    """Accept negative weighted terms (`-1:text`) that argparse mistakes for options."""
    terms = [text for text in extra if WEIGHTED.match(text)]
    args.terms = list(args.terms) + terms
    return [text for text in extra if text not in terms]


def run(args: argparse.Namespace) -> int:
    """Embed the terms, sum them with their weights and print the top-k images."""
    import numpy as np

    from ..errors import UsageError
    from ..search import Session

    if not args.terms and not args.image:
        raise UsageError("give at least one text term or --image PATH")
    session = Session.open(args.index, device=args.device)
    vector = np.zeros(session.store.dim, np.float32)
    terms = []
    for text in args.terms:
        weight, value = parse_term(text)
        vector += weight * session.text_vector(value)
        terms.append({"weight": weight, "kind": "text", "value": value})
    for text in args.image:
        weight, value = parse_term(text)
        vector += weight * session.image_vector(value)
        terms.append({"weight": weight, "kind": "image", "value": value})
    results = session.search(vector, args.k)
    if args.json:
        payload = {
            "index": str(session.store.path),
            "query": terms,
            "results": [{"rank": r.rank, "row": r.row, "score": r.score, "path": str(r.path)} for r in results],
        }
        json.dump(payload, sys.stdout, indent=2)
        print()
        return 0
    for r in results:
        print(f"{r.rank:3d}  {r.score:+.4f}  {ascii_safe(str(r.path))}")
    return 0


def ascii_safe(text: str) -> str:
    """Escape control characters so a file name cannot drive the terminal."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
