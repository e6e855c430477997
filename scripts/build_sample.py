"""Build the shipped sample index through the normal CLI code paths (run once, by hand).

    python scripts/build_sample.py            # index + SAE (with labels) + feature browser

1. `memetui index sample_index/images --index sample_index --no-thumbs` with the shipped model
   (the images are already 128 px WebP, so thumbnails would only duplicate them);
2. `memetui train-sae sample_index --latents 2048 --k 16 --epochs 60 --name sample` (labels included;
   9k vectors cannot keep 4,096 latents alive: measured 59 % dead on validation vs 34 % at 1,024);
3. `memetui features sample_index --sae sample --out sample_index/features`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
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


def main() -> None:
    """Rebuild sample_index/ from scratch (keeps images/, captions.jsonl and README.md)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latents", default="2048")
    parser.add_argument("--k", default="16")
    parser.add_argument("--epochs", default="60")
    parser.add_argument("--keep", action="store_true", help="update the existing index instead of rebuilding")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    index = ROOT / "sample_index"
    if not args.keep:
        for name in ("manifest.json", "embeddings.f16.npy", "items.sqlite", "items.sqlite-wal", "items.sqlite-shm",
                     "hnsw.bin", "pca.npz"):
            (index / name).unlink(missing_ok=True)
        for folder in ("sae", "features", "thumbs"):
            shutil.rmtree(index / folder, ignore_errors=True)
    step("index", str(index / "images"), "--index", str(index), "--no-thumbs",
         "--model", "memetui-demo-clip", "--pretrained", "memetui-demo-clip.safetensors", "--device", "cpu")
    step("train-sae", str(index), "--latents", args.latents, "--k", args.k, "--epochs", args.epochs,
         "--name", "sample", "--device", "cpu")
    step("features", str(index), "--sae", "sample", "--out", str(index / "features"), "--labels")


if __name__ == "__main__":
    main()
