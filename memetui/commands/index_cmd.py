"""`memetui index DIR`: build or update an index with a rich progress bar."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_device_argument, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `memetui index`."""
    from ..embed import DEFAULT_MODEL, DEFAULT_PRETRAINED

    parser.add_argument("folder", metavar="DIR", help="folder of images (searched recursively)")
    parser.add_argument("--index", metavar="OUT", default=None, help="index folder (default: DIR/.memetui)")
    parser.add_argument("--model", default=None, help=f"open_clip model name (default: {DEFAULT_MODEL}, or the index's)")
    parser.add_argument("--pretrained", default=None,
                        help=f"open_clip pretrained tag or checkpoint path (default: {DEFAULT_PRETRAINED})")
    add_device_argument(parser)
    parser.add_argument("--batch", type=positive_int, default=64, help="images per batch (default 64)")
    parser.add_argument("--workers", type=positive_int, default=None, help="image decoding threads")
    parser.add_argument("--no-thumbs", action="store_true", help="do not write thumbnails")


def run(args: argparse.Namespace) -> int:
    """Build or update the index and print a one-line summary."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..embed import DEFAULT_MODEL, DEFAULT_PRETRAINED, Embedder
    from ..errors import UsageError
    from ..index.build import BuildOptions, IndexBuilder, open_or_create
    from ..index.store import IndexStore
    from ..paths import HIDDEN_INDEX

    folder = Path(args.folder).expanduser()
    if not folder.is_dir():
        raise UsageError(f"not a folder: {folder}")
    index_path = Path(args.index).expanduser() if args.index else folder / HIDDEN_INDEX
    model, pretrained = args.model, args.pretrained
    if model is None and (index_path / "manifest.json").is_file():
        existing = IndexStore.open(index_path).model  # keep updating with the model it was built with
        model, pretrained = existing.name, pretrained or existing.pretrained
    if model is None:
        model, pretrained = DEFAULT_MODEL, pretrained or DEFAULT_PRETRAINED
    console = Console(stderr=True)
    with console.status(f"loading {model} ({pretrained})"):
        embedder = Embedder(model, pretrained, device=args.device)
    store = open_or_create(index_path, folder, embedder)
    options = BuildOptions(batch_size=args.batch, thumbnails=not args.no_thumbs)
    if args.workers:
        options.workers = args.workers
    columns = (TextColumn("{task.description:<6}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total, rate="")
            task = bar.tasks[tasks[stage]]
            speed = task.speed
            bar.update(tasks[stage], completed=done, total=total,
                       rate=f"{speed:,.0f} img/s" if stage == "embed" and speed else "")

        summary = IndexBuilder(store, embedder, options, progress).run()
    for path, reason in summary.error_samples[:5]:
        console.print(f"[yellow]skipped[/] {path!r}: {reason}", markup=True, highlight=False)
    print(f"{index_path}: {summary.line()}")
    return 0
