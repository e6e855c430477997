"""`memetui index … --ann milvus…` and `--ray [ADDRESS]`: the scale-out options of `index` (and `import`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser, ray: bool = True) -> None:
    """Add --ann (and, for `index`, --ray/--shards/--shard-rows/--actors) to a subcommand's parser."""
    parser.add_argument("--ann", metavar="SPEC", default=None,
                        help="serve the vectors from Milvus: milvus://HOST:PORT or milvus-lite:PATH.db"
                             " ('local' goes back to the local ANN files; default: what the index records)."
                             " Needs memetui[scale]")
    if not ray:
        return
    parser.add_argument("--ray", metavar="ADDRESS", nargs="?", const="local", default=None,
                        help="embed on Ray Data (a local Ray when no ADDRESS) into clip-retrieval shards,"
                             " then import them. Needs memetui[scale]")
    parser.add_argument("--shards", metavar="DIR", default=None, help="shard folder for --ray (default: INDEX-shards)")
    parser.add_argument("--shard-rows", type=int, default=10_000, help="files per shard for --ray (default 10000)")
    parser.add_argument("--actors", type=int, default=None,
                        help="embedding actors for --ray (default: one per GPU, else one per CPU slot)")


def check(args: argparse.Namespace) -> None:
    """Fail in one line before any model loads: a missing extra, a malformed --ann, an unreachable Milvus."""
    from ..errors import UsageError
    from ..extras import require
    from ..index.milvus_ann import check_spec

    ray = getattr(args, "ray", None) is not None
    if ray:
        require("ray", "--ray")
        require("ray.data", "--ray")
    if args.ann is not None:
        check_spec(args.ann)
    if ray and (args.shard_rows < 1 or (args.actors is not None and args.actors < 1)):
        raise UsageError("--shard-rows and --actors must be positive")


def run_ray(args: argparse.Namespace, folder: Path, index_path: Path, model: str, pretrained: str | None) -> int:
    """Embed `folder` on Ray into shards, import them into `index_path`, then apply --ann."""
    from ..index.ray_embed import RayEmbedOptions, embed_to_shards
    from ..text import path_text

    shards = Path(args.shards).expanduser() if args.shards else index_path.with_name(index_path.name + "-shards")
    options = RayEmbedOptions(address=None if args.ray == "local" else args.ray, shard_rows=args.shard_rows,
                              batch_size=args.batch, actors=args.actors, device=args.device)
    summary = embed_to_shards(folder, shards, model, pretrained, options, exclude=index_path)
    print(f"{path_text(shards)}: {summary.line()}", file=sys.stderr)
    status = import_shards(shards, index_path, model, pretrained, args)
    if status == 0 and args.ann is not None:
        from ..index.milvus_ann import attach

        attach(index_path, args.ann)
    return status


def import_shards(shards: Path, index_path: Path, model: str, pretrained: str | None, args) -> int:
    """Import the shards into `index_path` as `memetui import SHARDS --index INDEX --model M --pretrained P` does."""
    from ..index.importer import Importer, ImportOptions, resolve_model
    from ..index.importers import open_source
    from ..text import path_text

    name, pretrained = resolve_model(model, pretrained)
    summary = Importer(open_source(shards), index_path, name, pretrained, ImportOptions(device=args.device)).run()
    print(f"{path_text(index_path)}: {summary.line()}")
    return 0
