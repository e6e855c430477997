"""Write a generated meme corpus (memetui.ocr.memes): captioned memes, twins and plain pictures.

    python scripts/make_memes.py OUT [--count 40] [--twins 20] [--plain N] [--sample-backgrounds]

`--sample-backgrounds` draws pictures from sample_index/images (with their captions) instead of
generated scenes. OUT/memes.json lists each file with its caption, style and background caption.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memetui.ocr.memes import load_backgrounds, make_memes  # noqa: E402
from memetui.ocr.render import FONT_LICENCE, meme_font  # noqa: E402


def main() -> None:
    """Parse arguments and write the corpus."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--twins", type=int, default=0)
    parser.add_argument("--plain", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-backgrounds", action="store_true")
    args = parser.parse_args()
    backgrounds = None
    if args.sample_backgrounds:
        images = ROOT / "sample_index" / "images"
        need = args.count + args.twins + (args.plain if args.plain is not None else args.count + args.twins)
        backgrounds = load_backgrounds(images, ROOT / "sample_index" / "captions.jsonl", need, args.seed)
    specs = make_memes(args.out, args.count, args.plain, args.twins, args.seed, backgrounds)
    font = meme_font(32)[1]
    print(f"{len(specs)} pictures in {args.out} (font: {font}, {FONT_LICENCE[font]})")


if __name__ == "__main__":
    main()
