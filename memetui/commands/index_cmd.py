"""`memetui index DIR`: build or update an index with a rich progress bar."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from . import scale_index
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
    parser.add_argument("--no-ocr", action="store_true",
                        help="do not read text in images (a later build without it adds the text)")
    scale_index.add_arguments(parser)  # --ann milvus…, --ray [ADDRESS]


def run(args: argparse.Namespace) -> int:
    """Build or update the index and print a one-line summary."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    from ..embed import DEFAULT_MODEL, DEFAULT_PRETRAINED, Embedder
    from ..errors import IndexBusyError, UsageError
    from ..index.build import BuildOptions, open_or_create
    from ..index.lock import writer_pid
    from ..index.milvus_ann import configure as configure_ann
    from ..index.store import MANIFEST, IndexStore
    from ..paths import HIDDEN_INDEX
    from ..text import markup_safe, one_line, path_text

    folder = Path(args.folder).expanduser()
    if not folder.is_dir():
        raise UsageError(f"not a folder: {folder}")
    index_path = Path(args.index).expanduser() if args.index else folder / HIDDEN_INDEX
    if index_path.exists() and not index_path.is_dir():
        raise UsageError(f"--index {index_path} is a file, not a folder")
    holder = writer_pid(index_path)  # say so before loading the model; open_or_create takes the lock
    if holder:
        raise IndexBusyError(f"another memetui is writing {index_path}" + (f" (pid {holder})" if holder > 0 else ""))
    scale_index.check(args)  # a missing extra or an unreachable Milvus fails here, before the model loads
    model, pretrained = args.model, args.pretrained
    if model is None and (index_path / MANIFEST).is_file():
        existing = IndexStore.open(index_path)  # keep updating with the model it was built with
        model, pretrained = existing.model.name, pretrained or existing.model.pretrained
        existing.close()
    if model is None:
        model, pretrained = DEFAULT_MODEL, pretrained or DEFAULT_PRETRAINED
    if args.ray is not None:
        return scale_index.run_ray(args, folder, index_path, model, pretrained)
    console = Console(stderr=True)
    busy = console.status(f"loading {model} ({pretrained})") if console.is_terminal else contextlib.nullcontext()
    with busy:  # no spinner or bar when stderr is not a terminal: errors stay one line
        embedder = Embedder(model, pretrained, device=args.device)
    store = open_or_create(index_path, folder, embedder)
    options = BuildOptions(batch_size=args.batch, thumbnails=not args.no_thumbs, ocr=not args.no_ocr)
    if args.workers:
        options.workers = args.workers
    columns = (TextColumn("{task.description:<6}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
    try:
        configure_ann(store, args.ann)
        summary = _build(store, embedder, options, console, columns)
    finally:
        store.close()  # releases the writer lock
    for path, reason in summary.error_samples[:5]:
        console.print(f"[yellow]skipped[/] {markup_safe(path_text(path))}: {markup_safe(one_line(reason))}",
                      highlight=False, soft_wrap=True)
    if summary.ocr is not None and summary.ocr.unavailable:
        print(one_line(summary.ocr.unavailable), file=sys.stderr)
    print(f"{path_text(index_path)}: {summary.line()}")
    return 0


def _build(store, embedder, options, console, columns):
    """Run the builder under a transient progress bar."""
    from rich.progress import Progress

    from ..index.build import IndexBuilder

    if not console.is_terminal:
        return IndexBuilder(store, embedder, options).run()
    with Progress(*columns, console=console, transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total, rate="")
            task = bar.tasks[tasks[stage]]
            speed = task.speed
            bar.update(tasks[stage], completed=done, total=total,
                       rate=f"{speed:,.0f} img/s" if stage == "embed" and speed else "")

        return IndexBuilder(store, embedder, options, progress).run()
