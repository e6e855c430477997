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
    from ..index.lock import writer_pid
    from ..index.store import IndexStore
    from ..paths import resolve_index

    store = IndexStore.open(resolve_index(args.index))
    try:
        return _report(store, args.json, writer_pid(store.path))
    finally:
        store.close()  # a reader leaves nothing behind


def _report(store, as_json: bool, writer: int | None) -> int:
    """Print the index's manifest, counts, build state and problems (JSON with `as_json`)."""
    from ..index.ocr_text import counts as ocr_counts
    from ..sae.checkpoint import SAESummary, describe, summary_text
    from ..text import path_text, terminal_safe

    ocr = ocr_counts(store.db)
    info = {
        "index": str(store.path),
        "root": str(store.root),
        "format": store.manifest.format,
        "model": store.manifest.to_dict()["model"],
        "rows": store.count,
        "live_rows": int(store.live_mask().sum()),
        "files": store.status_counts(),
        "hnsw": store.manifest.hnsw,
        "ann": {k: v for k, v in store.manifest.ann.items() if k != "deleted"},
        "created": store.manifest.created,
        "updated": store.manifest.updated,
        "saes": store.sae_names(),
        "sae_metrics": [describe(store.sae_dir / name)._asdict() for name in store.sae_names()],
        "ocr": {"engine": store.manifest.ocr, "with_text": ocr.text, "without_text": ocr.empty,
                "failed": ocr.error, "pending": ocr.pending},
        "unpublished_rows": store.pending_rows(),
        "writer_pid": writer,
        "problems": store.problems(),
    }
    if as_json:
        print(json.dumps(info, indent=2))
        return 0
    stamp = lambda t: time.strftime("%Y-%m-%d %H:%M", time.localtime(t))  # noqa: E731
    model = info["model"]
    files = info["files"]
    print(f"index    {path_text(info['index'])}  (format {info['format']})")
    print(f"images   {path_text(info['root'])}")
    print(f"model    {terminal_safe(model['name'])}  pretrained={terminal_safe(model['pretrained'])}  "
          f"dim={model['dim']}  sha256={terminal_safe(model['sha256'][:16])}")
    print(f"rows     {info['rows']} ({info['live_rows']} live)")
    print(f"files    ok {files['ok']}, duplicate {files['duplicate']}, missing {files['missing']}, error {files['error']}")
    if not info["ann"]:
        from ..index.ann import describe_ann

        print(f"ann      {describe_ann(store)}")
    else:  # vectors served by Milvus (memetui/index/milvus_ann.py)
        ann = info["ann"]
        print(f"ann      milvus {terminal_safe(ann.get('uri'))} collection {terminal_safe(ann.get('collection'))}"
              f" ({ann.get('synced')} rows synced)")
    print(f"dates    created {stamp(info['created'])}, updated {stamp(info['updated'])}")
    print(f"saes     {terminal_safe(', '.join(info['saes'])) or '(none: memetui train-sae)'}")
    for summary in info["sae_metrics"]:
        print(f"         {terminal_safe(summary_text(SAESummary(**summary)))}")
    engine = store.manifest.ocr
    reader = f"{engine.get('name')} {engine.get('version')}" if engine else "not run (memetui index DIR reads it)"
    print(f"text     {ocr.text} images with text, {ocr.empty} without, {ocr.error} failed, "
          f"{ocr.pending} not read ({reader})")
    _print_state(store, info, path_text)
    return 0


def _print_state(store, info: dict, path_text) -> None:
    """A build running or interrupted, and what is wrong with the derived files (and how to repair it)."""
    from ..text import one_line

    pending, writer = info["unpublished_rows"], info["writer_pid"]
    if writer:
        print(f"build    running now{f' (pid {writer})' if writer > 0 else ''}: {pending} rows embedded, "
              "not yet published")
    elif pending:
        print(f"build    interrupted: {pending} rows embedded but not yet published (memetui index finishes it)")
    for problem in info["problems"]:
        print(f"problem  {one_line(problem)}")
    if info["problems"]:
        print(f"repair   memetui index {path_text(store.root)} --index {path_text(store.path)} "
              "rebuilds the derived files from items.sqlite")
