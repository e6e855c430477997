"""`memetui [INDEX]`: open the Textual app on an index (default: the shipped sample index)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_device_argument, add_index_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the app."""
    from ..tui.images import GRAPHICS_MODES

    add_index_argument(parser)
    parser.add_argument("--sae", default=None, help="SAE name in INDEX/sae (default: the first one)")
    parser.add_argument("--graphics", choices=GRAPHICS_MODES, default="auto",
                        help="terminal image protocol (default: detect)")
    parser.add_argument("--query", type=Path, default=None, metavar="FILE", help="start from a saved query JSON")
    parser.add_argument("--no-history", action="store_true", help="do not restore the last session's query")
    add_device_argument(parser)


def run(args: argparse.Namespace) -> int:
    """Open the index, detect the terminal's graphics, run the app."""
    from ..tui.images import detect_graphics

    graphics = detect_graphics(args.graphics)  # before the app owns the terminal
    if graphics == "kitty":
        from ..tui.kitty import ensure_truecolor_environment

        ensure_truecolor_environment()  # the image id is the cells' 24-bit colour
    session, notices = open_session(args.index, args.device, args.sae)  # the SAE loads after the first results
    from ..tui.app import MemeApp

    device = None  # no --device: found with the SAE, after the first results (torch is not imported before)
    if args.device is not None:
        from ..devices import pick_device

        device = str(pick_device(args.device))  # a bad --device fails here, in one line
    app = MemeApp(session, graphics=graphics, query_file=args.query, device_name=device,
                  restore_history=not args.no_history, notices=notices)
    app.run()
    return app.return_code or 0


def open_session(index, device: str | None, sae: str | None, defer_sae: bool = True):
    """(Session, notices): the SAE is only named (`defer_sae`: the app loads it after its first
    results, memetui.tui.sae_loading); a corrupt or mismatched SAE does not stop the app, it starts
    without one (search and PCA/random steering still work) and says why in full."""
    from ..errors import SAEError
    from ..session import Session

    try:
        return Session.open(index, device=device, sae=sae, defer_sae=defer_sae), []
    except SAEError as exc:
        return Session.open(index, device=device, sae=False), [f"{exc}; started without an SAE (PCA and random only)"]
