"""`memetui import SRC --index OUT --model NAME`: index embeddings made elsewhere (no images needed)."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import scale_index
from .common import add_device_argument, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `memetui import`."""
    parser.add_argument("src", metavar="SRC",
                        help="clip-retrieval output folder (img_emb/, metadata/), a .npy file or folder of them, "
                             "an rclip database or memery.pt")
    parser.add_argument("--index", metavar="OUT", required=True, help="index folder to create (or to continue)")
    parser.add_argument("--model", default=None,
                        help="model that made the embeddings: ViT-B/32, open_clip:ARCH/PRETRAINED, or an open_clip "
                             "name with --pretrained (required except for rclip/memery, which use ViT-B/32)")
    parser.add_argument("--pretrained", default=None, help="open_clip pretrained tag or checkpoint path")
    parser.add_argument("--meta", default=None, metavar="FILE", help="metadata table for .npy input (.jsonl/.csv/.parquet)")
    parser.add_argument("--trust-model", action="store_true", help="do not re-embed local images to check --model")
    parser.add_argument("--chunk", type=positive_int, default=16_384, help="rows per committed chunk (default 16384)")
    add_device_argument(parser)
    scale_index.add_arguments(parser, ray=False)  # --ann milvus…


def run(args: argparse.Namespace) -> int:
    """Import SRC into OUT with a progress bar and print a one-line summary."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..errors import UsageError
    from ..index.importer import ImportOptions, Importer, resolve_model
    from ..index.importers import open_source

    scale_index.check(args)  # a missing extra or an unreachable Milvus fails before anything is read
    source = open_source(Path(args.src), Path(args.meta) if args.meta else None)
    spec = args.model or source.default_model
    if spec is None:
        raise UsageError(f"{source.kind} input does not record its model: pass --model (e.g. ViT-B/32)")
    name, pretrained = resolve_model(spec, args.pretrained)
    options = ImportOptions(chunk=args.chunk, trust_model=args.trust_model, device=args.device)
    console = Console(stderr=True)
    columns = (TextColumn("{task.description:<6}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        summary = Importer(source, Path(args.index), name, pretrained, options, progress).run()
    print(f"{args.index}: {summary.line()}")
    if args.ann is not None:
        from ..index.milvus_ann import attach

        attach(Path(args.index), args.ann)
    return 0
