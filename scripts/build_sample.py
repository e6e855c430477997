"""Build the shipped sample index through the normal CLI code paths (run once, by hand).

    python scripts/build_sample.py            # index + SAE (with labels) + feature browser

1. `memetui index sample_index/images --index sample_index --no-thumbs` with the shipped model
   (the images are already 128 px WebP, so thumbnails would only duplicate them);
2. `memetui train-sae sample_index --latents 512 --k 16 --epochs 60 --name sample` (labels included;
   on 9.5k rows, latents firing on no row: 0.2 % at 512, 3.7 % at 1,024, 33 % at 2,048; exemplar
   coherence beats random directions by +0.124 at 512, +0.074 at 1,024: `scripts/eval_features.py`);
3. `memetui features sample_index --sae sample --out sample_index/features`.

    python scripts/build_sample.py --reembed  # new model: rebuild all, OCR text carried over

`--reembed` rebuilds the index, SAE and feature browser like the default, but indexes with
`--no-ocr` and then copies every item's OCR rows (`ocr`, `ocr_fts`, the manifest's engine) from the
previous items.sqlite by content hash, so a new CLIP does not re-run OCR on 9.5k images; it stops
if any live item is left without OCR text.

    python scripts/build_sample.py --memes    # add the generated memes to the shipped index

`--memes` keeps the index, its SAE and feature browser: it (re)writes sample_index/images/memes/
(`scripts/make_memes.py --sample`), runs `memetui index sample_index/images --index sample_index
--no-thumbs` (new images are embedded and appended, existing rows stay bitwise the same; OCR reads
every image that has none yet), then `finish()`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memetui.cli import main as memetui  # noqa: E402


def step(*argv: str) -> None:
    """Run one memetui command in-process; stop on failure."""
    print("$ memetui", " ".join(argv), flush=True)
    started = time.perf_counter()
    code = memetui(list(argv))
    if code:
        sys.exit(f"memetui {argv[0]} failed with exit code {code}")
    print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)


def finish(index: Path) -> None:
    """Make the shipped index portable and consistent: no absolute images root in the manifest, no
    stale writer lock, and `pca.npz` recomputed for the current rows (readers never write the index)."""
    import numpy as np

    from memetui.index.store import IndexStore
    from memetui.steer.pca import MAX_COMPONENTS, PCA_FILE, PCA_FORMAT, compute_pca

    manifest_path = index / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.pop("root_abs", None) is not None:
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    (index / ".lock").unlink(missing_ok=True)
    # below memetui.index.ann.EXACT_MAX_ROWS every search is exact: the graph is never read, and
    # shipping it (11 MB) would take sample_index/ + models/ past 100 MB; `memetui index` rebuilds it
    (index / "hnsw.bin").unlink(missing_ok=True)
    for name in ("items.sqlite-wal", "items.sqlite-shm"):
        if (index / name).exists():
            sys.exit(f"{index / name} left behind: a reader held the index open; close it and rerun")
    store = IndexStore.open(index)
    try:
        live = store.live_mask()
        pca = compute_pca(store.embeddings, None if live.all() else np.flatnonzero(live), MAX_COMPONENTS)
        key = np.array([PCA_FORMAT, store.count, store.manifest.updated, MAX_COMPONENTS], np.float64)
        with open(index / PCA_FILE, "wb") as handle:
            np.savez(handle, key=key, model=np.array(store.model.sha256), mean=pca.mean,
                     components=pca.components, explained=pca.explained)
        print(f"{index / PCA_FILE}: {len(pca.components)} components over {store.count} rows")
    finally:
        store.close()


def carry_ocr(old_db: Path, old_manifest: dict, index: Path) -> None:
    """Copy OCR rows from a previous items.sqlite into the rebuilt index, matching items by sha256."""
    import sqlite3

    from memetui.index.ocr_text import ensure_schema

    db = sqlite3.connect(index / "items.sqlite")
    try:
        ensure_schema(db)
        db.execute("ATTACH DATABASE ? AS old", (str(old_db),))
        join = "JOIN old.items oi ON oi.id = {} JOIN main.items i ON i.sha256 = oi.sha256"
        with db:
            db.execute("INSERT INTO main.ocr SELECT i.id, o.status, o.text, o.boxes, o.confidence, o.engine, o.error,"
                       f" o.seconds FROM old.ocr o {join.format('o.item_id')}")
            db.execute(f"INSERT INTO main.ocr_fts (rowid, text) SELECT i.id, f.text FROM old.ocr_fts f "
                       f"{join.format('f.rowid')}")
        pending = db.execute("SELECT COUNT(*) FROM main.items WHERE status = 'ok' AND id NOT IN "
                             "(SELECT item_id FROM main.ocr)").fetchone()[0]
        db.execute("DETACH DATABASE old")
    finally:
        db.close()
    if pending:
        sys.exit(f"{pending} items have no OCR text in {old_db}; run `memetui index` on {index} to read them")
    manifest_path = index / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["ocr"] = old_manifest.get("ocr", {})
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(f"OCR text carried over from {old_db} for every item")


def memes(index: Path) -> None:
    """Add the generated memes to the shipped index (see the module docstring)."""
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_memes.py"), "--sample"], check=True)
    step("index", str(index / "images"), "--index", str(index), "--no-thumbs", "--device", "cpu")
    finish(index)


def main() -> None:
    """Rebuild sample_index/ from scratch (keeps images/, captions.jsonl and README.md)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latents", default="512")
    parser.add_argument("--k", default="16")
    parser.add_argument("--epochs", default="60")
    parser.add_argument("--keep", action="store_true", help="update the existing index instead of rebuilding")
    parser.add_argument("--memes", action="store_true", help="only add the generated memes (see above)")
    parser.add_argument("--finish", action="store_true", help="only strip root_abs and rewrite pca.npz")
    parser.add_argument("--reembed", action="store_true",
                        help="rebuild with the current model, OCR text carried over from the previous index")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    index = ROOT / "sample_index"
    if args.memes or args.finish:
        memes(index) if args.memes else finish(index)
        return
    ocr = ["--no-ocr"] if args.reembed else []
    with tempfile.TemporaryDirectory() as keep:
        if args.reembed:
            old_db, old_manifest = Path(keep) / "items.sqlite", json.loads((index / "manifest.json").read_text())
            shutil.copy2(index / "items.sqlite", old_db)
        rebuild(index, args, ocr)
        if args.reembed:
            carry_ocr(old_db, old_manifest, index)
    step("train-sae", str(index), "--latents", args.latents, "--k", args.k, "--epochs", args.epochs,
         "--name", "sample", "--device", "cpu")
    step("features", str(index), "--sae", "sample", "--out", str(index / "features"))  # train-sae labelled it
    finish(index)


def rebuild(index: Path, args: argparse.Namespace, extra: list[str]) -> None:
    """Delete the index files (unless --keep) and index the images with the shipped model."""
    if not args.keep:
        for name in ("manifest.json", "embeddings.f16.npy", "items.sqlite", "items.sqlite-wal", "items.sqlite-shm",
                     "hnsw.bin", "pca.npz"):
            (index / name).unlink(missing_ok=True)
        for folder in ("sae", "features", "thumbs"):
            shutil.rmtree(index / folder, ignore_errors=True)
    step("index", str(index / "images"), "--index", str(index), "--no-thumbs",
         "--model", "memetui-demo-clip", "--pretrained", "memetui-demo-clip.safetensors", "--device", "cpu", *extra)


if __name__ == "__main__":
    main()
