"""Write a generated meme corpus (memetui.ocr.memes): captioned memes, twins and plain pictures.

    python scripts/make_memes.py OUT [--count 40] [--twins 20] [--plain N] [--sample-backgrounds]
    python scripts/make_memes.py --sample [--sample-count 400]

`--sample-backgrounds` draws pictures from sample_index/images (with their captions) instead of
generated scenes. OUT/memes.json lists each file with its caption, style and background caption.

`--sample` (re)writes the generated memes of the shipped sample corpus: `sample_index/images/memes/`
(256 px WebP, quality 80) and their entries in `sample_index/captions.jsonl` (other entries kept,
file sorted by path). Phrases: scripts/meme_phrases.py, each used once, then the first ones again
("twins": the other style on another picture) up to the count. Backgrounds: 60 % pictures of the
sample itself (upscaled), 40 % photo-like generated scenes. Deterministic for a given --seed.
Then index them: `python scripts/build_sample.py --memes`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from meme_phrases import PHRASES  # noqa: E402

from memetui.ocr.memes import load_backgrounds, make_memes  # noqa: E402
from memetui.ocr.render import FONT_LICENCE, meme_font, photo_background, render_meme  # noqa: E402

SAMPLE = ROOT / "sample_index"
MEMES_DIR = "memes"
SIDE = 256
QUALITY = 80
SCENE_SHARE = 0.4
SCENE_WORDS = {  # hue of the generated sky, for a caption of what is pictured
    "blue": "blue sky", "orange": "orange sunset sky", "green": "green tinted sky", "purple": "purple dusk sky",
    "grey": "grey overcast sky", "pink": "pink sky", "yellow": "yellow hazy sky", "red": "red evening sky"}


def split_of(path: str) -> str:
    """The corpus split rule (sample_index/README.md): SHA-1 of the path, first 8 bytes mod 100 < 10."""
    return "heldout" if int.from_bytes(hashlib.sha1(path.encode()).digest()[:8], "big") % 100 < 10 else "train"


def top_bottom(phrase: str) -> tuple[str, str]:
    """Split a phrase for the classic style: at a colon, else the first half of the words on top."""
    if ":" in phrase:
        top, bottom = phrase.split(":", 1)
        return top.strip() + ":", bottom.strip()
    words = phrase.split()
    cut = (len(words) + 1) // 2
    return " ".join(words[:cut]), " ".join(words[cut:])


def sky_name(image: Image.Image) -> str:
    """A colour word for the top rows of a generated scene."""
    r, g, b = (int(v) for v in image.crop((0, 0, image.width, image.height // 5)).resize((1, 1)).getpixel((0, 0)))
    if max(r, g, b) - min(r, g, b) < 30:
        return SCENE_WORDS["grey"]
    if r > 150 and g > 150 and b < 120:
        return SCENE_WORDS["yellow"]
    if r >= g and r >= b:
        return SCENE_WORDS["pink" if b > 150 else "orange" if g > 110 else "red"]
    if g >= r and g >= b:
        return SCENE_WORDS["green"]
    return SCENE_WORDS["purple" if r > 140 else "blue"]


def sample_memes(count: int, seed: int) -> None:
    """(Re)write sample_index/images/memes/ and its captions.jsonl entries."""
    if len(set(PHRASES)) != len(PHRASES):
        raise SystemExit("duplicate phrases in scripts/meme_phrases.py")
    captions_path = SAMPLE / "captions.jsonl"
    entries = [json.loads(line) for line in captions_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    entries = [e for e in entries if not e["path"].startswith(MEMES_DIR + "/")]
    rng = random.Random(seed)
    pool = [e for e in entries if e["source"] in ("openclipart", "twemoji", "fluent3d")]
    rng.shuffle(pool)
    n_scenes = round(count * SCENE_SHARE)
    pictures = pool[: count - n_scenes]
    kinds = ["picture"] * len(pictures) + ["scene"] * n_scenes
    rng.shuffle(kinds)
    out = SAMPLE / "images" / MEMES_DIR
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    jobs = [(p, "classic" if i % 2 == 0 else "modern") for i, p in enumerate(PHRASES[:count])]
    jobs += [(p, "modern" if i % 2 == 0 else "classic") for i, p in enumerate(PHRASES[: count - len(jobs)])]
    new, used_pictures, total = [], iter(pictures), 0
    for n, ((phrase, style), kind) in enumerate(zip(jobs, kinds)):
        if kind == "scene":
            background = photo_background(seed * 100_000 + n)
            pictured, licence, from_path = f"photo-like scene, {sky_name(background)} over a blurry landscape", \
                "public-domain", None
        else:
            entry = next(used_pictures)
            picture = Image.open(SAMPLE / "images" / entry["path"]).convert("RGBA")
            page = Image.new("RGBA", (picture.width * 4 // 3, picture.height), (235, 235, 235, 255))
            page.alpha_composite(picture, ((page.width - picture.width) // 2, 0))
            background = page.convert("RGB")
            pictured, licence, from_path = entry["caption"], entry["licence"], entry["path"]
        if style == "classic":
            top, bottom = top_bottom(phrase)
            image = render_meme(background, top, bottom, "classic", size=SIDE)
        else:
            top, bottom = phrase, ""
            image = render_meme(background, phrase, "", "modern", size=SIDE)
        image.thumbnail((SIDE, SIDE), Image.LANCZOS)
        slug = re.sub(r"[^a-z0-9]+", "-", phrase.lower()).strip("-")[:40].strip("-")
        rel = f"{MEMES_DIR}/meme-{n:03d}-{slug}.webp"
        image.save(SAMPLE / "images" / rel, "WEBP", quality=QUALITY, method=6)
        total += (SAMPLE / "images" / rel).stat().st_size
        record = {"path": rel, "caption": f'{pictured}, meme with the text "{phrase}"', "source": "memes",
                  "licence": licence, "split": split_of(rel), "text": phrase, "style": style,
                  "top": top, "bottom": bottom, "background": from_path or "generated scene"}
        new.append(record)
    entries = sorted(entries + new, key=lambda e: e["path"])
    tmp = captions_path.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for entry in entries:
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
    os.replace(tmp, captions_path)
    font = meme_font(32)[1]
    heldout = sum(r["split"] == "heldout" for r in new)
    print(f"{len(new)} memes in {out} ({total / 1e6:.1f} MB, {len(set(PHRASES[:count]))} distinct phrases, "
          f"{n_scenes} on generated scenes, {heldout} held out; font: {font}, {FONT_LICENCE[font]})")


def main() -> None:
    """Parse arguments and write the corpus."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?")
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--twins", type=int, default=0)
    parser.add_argument("--plain", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-backgrounds", action="store_true")
    parser.add_argument("--sample", action="store_true", help="write the shipped sample's memes (see above)")
    parser.add_argument("--sample-count", type=int, default=400)
    args = parser.parse_args()
    if args.sample:
        sample_memes(args.sample_count, args.seed)
        return
    if args.out is None:
        parser.error("OUT is required without --sample")
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
