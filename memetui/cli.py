"""Command line: `memetui [INDEX]` opens the app; subcommands index, search, info, train-sae, ...

Each subcommand lives in `memetui/commands/<name>.py` with `add_arguments(parser)` and
`run(args) -> int`. Engine errors (MemetuiError) become one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sqlite3
import sys

from . import __version__
from .errors import IndexDamagedError, IndexNotFoundError, MemetuiError
from .text import one_line, path_text

COMMANDS = {
    "index": ("index_cmd", "build or update an index from a folder of images"),
    "import": ("import_cmd", "import embeddings made elsewhere (clip-retrieval, .npy + table, rclip, memery)"),
    "search": ("search_cmd", "search an index from the command line"),
    "info": ("info_cmd", "show an index's manifest, counts, model and SAEs"),
    "train-sae": ("train_sae_cmd", "train a top-k sparse autoencoder on an index's embeddings"),
    "features": ("features_cmd", "write a static HTML browser of an SAE's features"),
    "compare": ("compare_cmd", "measure SAE vs PCA vs random steering directions"),
}
APP_MODULE = "app_cmd"


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """Build the parser for the subcommand named in argv (or the app's parser)."""
    parser = argparse.ArgumentParser(
        prog="memetui",
        description="Find images by steering a CLIP query along sparse-autoencoder features.",
        epilog="subcommands: " + "; ".join(f"{name}: {help_}" for name, (_, help_) in COMMANDS.items()),
    )
    parser.add_argument("--version", action="version", version=f"memetui {__version__}")
    if argv and argv[0] in COMMANDS:
        module_name, help_ = COMMANDS[argv[0]]
        subparsers = parser.add_subparsers(dest="command", required=True)
        sub = subparsers.add_parser(argv[0], help=help_, description=help_)
        module = importlib.import_module(f".commands.{module_name}", __package__)
    else:
        sub = parser
        module = importlib.import_module(f".commands.{APP_MODULE}", __package__)
    module.add_arguments(sub)
    sub.set_defaults(run=module.run, take_extra=getattr(module, "take_extra_args", None))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `memetui` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args, extra = parser.parse_known_args(argv)
    if extra and args.take_extra:  # e.g. negative weighted terms such as `-1:text`
        extra = args.take_extra(args, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.run(args) or 0)
    except MemetuiError as exc:
        print(f"memetui: error: {one_line(exc)}{hint(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("memetui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `memetui search ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (OSError, sqlite3.Error) as exc:  # a full disk, a read-only folder, a database that cannot write
        print(f"memetui: error: {one_line(exc)}", file=sys.stderr)
        return 1


def hint(exc: MemetuiError) -> str:
    """The command that fixes `exc`, for errors the engine reports without naming commands."""
    if isinstance(exc, IndexDamagedError) and exc.index is not None:
        return f" (repair: memetui index {path_text(exc.root)} --index {path_text(exc.index)})"
    if isinstance(exc, IndexNotFoundError) and str(exc).startswith("no index at"):
        return " (build one with: memetui index DIR)"
    return ""


if __name__ == "__main__":
    sys.exit(main())
