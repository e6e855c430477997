"""`memetui features [INDEX] [--sae NAME] --out DIR [--labels]`: static HTML feature browser."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_device_argument, add_index_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `memetui features`."""
    add_index_argument(parser)
    parser.add_argument("--sae", default=None, help="SAE name in INDEX/sae or a path (default: the first one)")
    parser.add_argument("--out", type=Path, required=True, help="output folder for the HTML pages")
    parser.add_argument("--labels", action="store_true",
                        help="(re)compute labels (CLIP text tower and exemplar words) and save them in the SAE")
    add_device_argument(parser)


def run(args: argparse.Namespace) -> int:
    """Write DIR/index.html and DIR/features-NNN.html."""
    from ..errors import SAEError
    from ..index.store import IndexStore
    from ..paths import resolve_index
    from ..sae.export import export_index_features
    from ..sae.model import load_for_index

    from ..sae.checkpoint import check_output_folder

    check_output_folder(args.out.expanduser())  # `--out FILE`: one line before any work
    store = IndexStore.open(resolve_index(args.index))
    name = args.sae
    if name is None:
        names = store.sae_names()
        if not names:
            raise SAEError(f"index {store.path} has no SAE (train one with: memetui train-sae)")
        name = names[0]
    sae = load_for_index(name, store)
    if args.labels:
        from ..embed import Embedder
        from ..sae.labels import label_sae
        from ..sae.model import _stem

        label_sae(sae, Embedder(store.model.name, store.model.pretrained, device=args.device), store=store)
        path = Path(name)
        path = _stem(path) if len(path.parts) > 1 or path.suffix else store.sae_dir / name
        sae.save_config(path)
        print(f"labelled {sae.n_latents} features; saved in {path}.json")
    try:
        pages = export_index_features(store, sae, args.out.expanduser())
    except OSError as exc:  # e.g. a full disk: pages written so far are complete (atomic), the rest missing
        raise SAEError(f"cannot write the feature pages to {args.out}: {exc.strerror or exc}") from None
    print(f"wrote {len(pages) - 1} page(s): {pages[0]}")
    return 0
