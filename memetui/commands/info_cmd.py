"""`memetui info [INDEX]`: manifest, counts, model and trained SAEs."""

from __future__ import annotations

import argparse
import json
import time

from .common import add_index_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `memetui info`."""
    add_index_argument(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    """Print what an index holds."""
    from ..index.store import IndexStore
    from ..paths import resolve_index

    store = IndexStore.open(resolve_index(args.index))
    info = {
        "index": str(store.path),
        "root": str(store.root),
        "format": store.manifest.format,
        "model": store.manifest.to_dict()["model"],
        "rows": store.count,
        "live_rows": int(store.live_mask().sum()),
        "files": store.status_counts(),
        "hnsw": store.manifest.hnsw,
        "created": store.manifest.created,
        "updated": store.manifest.updated,
        "saes": store.sae_names(),
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    stamp = lambda t: time.strftime("%Y-%m-%d %H:%M", time.localtime(t))  # noqa: E731
    model = info["model"]
    files = info["files"]
    print(f"index    {info['index']}  (format {info['format']})")
    print(f"images   {info['root']}")
    print(f"model    {model['name']}  pretrained={model['pretrained']}  dim={model['dim']}  sha256={model['sha256'][:16]}")
    print(f"rows     {info['rows']} ({info['live_rows']} live)")
    print(f"files    ok {files['ok']}, duplicate {files['duplicate']}, missing {files['missing']}, error {files['error']}")
    print(f"hnsw     {', '.join(f'{k}={v}' for k, v in info['hnsw'].items())}")
    print(f"dates    created {stamp(info['created'])}, updated {stamp(info['updated'])}")
    print(f"saes     {', '.join(info['saes']) or '(none: memetui train-sae)'}")
    return 0
