"""A generated meme corpus: caption phrases on backgrounds, plus as many pictures without text.

Used by tests, `bench/bench_ocr.py` and `scripts/make_memes.py` (and reusable for a shipped
sample corpus). Every meme is `render_meme(background, top, bottom, style)`; a third of them
are degraded (shrunk to 320 px, JPEG quality 35). Backgrounds are photo-like generated scenes
or pictures from a folder with captions (e.g. sample_index/images + captions.jsonl), so a query
can name the picture as well as the words.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

from .render import degrade, photo_background, render_meme

CAPTIONS = [
    ("one does not simply", "walk into mordor"), ("brace yourselves", "winter is coming"),
    ("keep calm and", "carry on coding"), ("i have no idea", "what i am doing"),
    ("it works on", "my machine"), ("this is fine", "everything is fine"),
    ("not sure if serious", "or just trolling"), ("shut up and", "take my money"),
    ("y u no", "write tests"), ("all the things", "must be refactored"),
    ("that feeling when", "the build is green"), ("me explaining", "to my mom"),
    ("nobody expects", "the spanish inquisition"), ("i am once again", "asking for coffee"),
    ("when the code compiles", "on the first try"), ("monday morning", "before the coffee"),
    ("deploy on friday", "what could go wrong"), ("but that is none", "of my business"),
    ("wait that is illegal", "in seven states"), ("my face when", "the wifi comes back"),
    ("how it started", "how it is going"), ("expectation versus", "reality check"),
    ("the cake is", "a lie"), ("let me in", "let me in"), ("stonks only go up", "says the intern"),
    ("ancient aliens", "built the pyramids"), ("winter soldier", "needs a nap"),
    ("hold my beer", "watch this jump"), ("somebody toucha", "my spaghet"),
    ("i can has", "cheezburger please"), ("much wow", "very doge"),
    ("is this a pigeon", "asks the robot"), ("the floor is", "made of lava"),
    ("one more bug", "before lunch"), ("ten minutes later", "still loading"),
    ("nobody has ever", "read the manual"), ("dad joke incoming", "brace for impact"),
    ("plot twist", "it was the cat"), ("error four oh four", "motivation not found"),
    ("seen this before", "deja vu again"),
]


@dataclass(frozen=True)
class MemeSpec:
    """One generated picture and what it shows."""

    path: str
    """File name relative to the corpus folder."""
    top: str
    bottom: str
    style: str
    """'classic', 'modern', 'classic-small' (degraded) or 'plain' (no text)."""
    background: str
    """Caption of the background picture ('' for generated scenes)."""


def load_backgrounds(images: Path, captions: Path, count: int, seed: int = 0) -> list[tuple[Image.Image, str]]:
    """`count` (picture on a white page, caption) drawn at random from a captioned image folder."""
    entries = [json.loads(line) for line in captions.read_text(encoding="utf-8").splitlines() if line.strip()]
    random.Random(seed).shuffle(entries)
    chosen = []
    for entry in entries[:count]:
        picture = Image.open(images / entry["path"]).convert("RGBA")
        page = Image.new("RGBA", (picture.width * 4 // 3, picture.height), (235, 235, 235, 255))
        page.alpha_composite(picture, ((page.width - picture.width) // 2, 0))
        chosen.append((page.convert("RGB"), entry["caption"]))
    return chosen


def make_memes(folder: Path, count: int = 40, plain: int | None = None, twins: int = 0, seed: int = 0,
               backgrounds: list[tuple[Image.Image, str]] | None = None, size: int = 480) -> list[MemeSpec]:
    """Write `count` memes (+ `twins` re-using the first captions on other backgrounds) and `plain`
    pictures without text (default: as many as memes) into `folder`; returns their specs."""
    if count > len(CAPTIONS):
        raise ValueError(f"at most {len(CAPTIONS)} distinct captions")
    folder.mkdir(parents=True, exist_ok=True)
    plain = count + twins if plain is None else plain
    pool = list(backgrounds or [])
    need = count + twins + plain
    scenes = [(photo_background(seed * 1000 + i), "") for i in range(max(0, need - len(pool)))]
    pool = pool + scenes
    random.Random(seed).shuffle(pool)
    styles = ("classic", "modern", "classic-small")
    specs = []
    jobs = [(i, CAPTIONS[i]) for i in range(count)] + [(count + j, CAPTIONS[j]) for j in range(twins)]
    for n, (i, (top, bottom)) in enumerate(jobs):
        picture, caption = pool[n]
        style = styles[i % 3]
        image = render_meme(picture, top, bottom, "modern" if style == "modern" else "classic", size=size)
        name = f"meme_{n:03d}.{'jpg' if style == 'classic-small' else 'png'}"
        if style == "classic-small":
            degrade(image).save(folder / name, quality=95)
        else:
            image.save(folder / name)
        specs.append(MemeSpec(name, top, bottom, style, caption))
    for k in range(plain):
        picture, caption = pool[len(jobs) + k]
        name = f"plain_{k:03d}.png"
        picture.resize((size, round(picture.height * size / picture.width))).save(folder / name)
        specs.append(MemeSpec(name, "", "", "plain", caption))
    (folder / "memes.json").write_text(json.dumps([asdict(s) for s in specs], indent=1), encoding="utf-8")
    return specs
