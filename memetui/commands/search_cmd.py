"""`memetui search TERMS...`: weighted text/image query terms, ranked by dot product."""

from __future__ import annotations

import argparse
import json
import sys

from ..steer.parse import is_weighted
from ..text import one_line, path_text
from .common import add_device_argument, add_index_argument, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `memetui search`."""
    parser.add_argument("terms", nargs="*", metavar="TERM",
                        help='text terms, optionally weighted: cat, 2:cat, -1:text; text in the image: \'"brace yourselves"\'')
    parser.add_argument("--image", action="append", default=[], metavar="[W:]PATH",
                        help="an image file as a query term (repeatable, weight like terms)")
    parser.add_argument("-k", type=positive_int, default=10, help="number of results (default 10)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    add_index_argument(parser, positional=False)
    add_device_argument(parser)


def take_extra_args(args: argparse.Namespace, extra: list[str]) -> list[str]:
    """Accept negative weighted terms (`-1:text`) that argparse mistakes for options."""
    terms = [text for text in extra if is_weighted(text)]
    args.terms = list(args.terms) + terms
    return [text for text in extra if text not in terms]


def run(args: argparse.Namespace) -> int:
    """Embed the terms, sum them with their weights and print the top-k images."""
    from ..errors import UsageError
    from ..steer.parse import parse_terms

    if not args.terms and not args.image:
        raise UsageError("give at least one text term or --image PATH")
    options = [term for term in args.terms if term.startswith("--")]
    if options:  # `search -- red --index idx`: after `--` everything is a term
        raise UsageError(f"{options[0]} after `--` would be searched as text: put options before `--`")
    query = parse_terms(args.terms, args.image)
    from ..index.ocr_text import ocr_text
    from ..session import Session
    from ..session.hybrid import has_quoted
    from ..session.library import results_document

    session = Session.open(args.index, device=args.device, sae=False)
    results = session.results(args.k, query).results  # a text seen before costs no model load (text_cache)
    texts = ocr_text(session.store, [r.row for r in results])
    if args.json:
        document = results_document(session.store.path, query, results)
        for entry, r, text in zip(document["results"], results, texts):
            entry.update(text_score=r.text_score, ocr_text=text)  # raw, as stored
        json.dump(document, sys.stdout, indent=2)
        print()
        return 0
    quoted = has_quoted(query)
    for r, text in zip(results, texts):
        gone = f"  ({one_line(r.absent, 100)})" if r.absent else ""
        said = f"  [{one_line(text, 60)}]" if quoted and text else ""
        print(f"{r.rank:3d}  {r.score:+.4f}  {path_text(r.path)}{gone}{said}")
    return 0

