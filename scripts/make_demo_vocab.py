#!/usr/bin/env python3
"""Write models/memetui-demo-clip.vocab.txt: the label vocabulary of the demo CLIP.

The demo CLIP only knows the words of its training captions, so labelling its SAE features with
the general vocabulary (memetui/data/vocab.txt, 7k WordNet nouns) mostly picks words it never
saw. This vocabulary is what it was trained on:

* words (>= 3 letters, not function words) in >= 3 captions of the 'train' split of
  sample_index/captions.jsonl;
* two-word phrases inside one comma-separated part of a caption, in >= 3 of those captions;
* colour and shape words (COLOURS_SHAPES), whether or not the captions use them;
* minus the caption templates' own words ("emoji", "3d", "icon", "meme with the text ...").

memetui's labeller uses `<checkpoint stem>.vocab.txt` beside a model checkpoint when it exists
(memetui.sae.labels.vocabulary_for). Rerun this after the captions or the demo CLIP change:

    python scripts/make_demo_vocab.py [--captions sample_index/captions.jsonl] [--out models/...]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memetui.sae.words import STOPWORDS, words  # noqa: E402

COLOURS_SHAPES = """red orange yellow green blue purple pink brown black white grey gray gold silver beige
cyan magenta violet turquoise dark light bright colourful colorful striped dotted
circle round square triangle star heart diamond arrow line cross ring oval rectangle spiral wave
stripes dots curve box cube sphere cylinder cone hexagon outline silhouette shadow gradient pattern""".split()
TEMPLATE_WORDS = frozenset({"emoji", "icon", "meme", "text", "photo", "like", "scene", "fluent", "twemoji"})
MIN_CAPTIONS = 3


def caption_vocabulary(captions: list[str], min_captions: int = MIN_CAPTIONS) -> list[str]:
    """Words and two-word phrases in at least `min_captions` captions, most frequent first."""
    def keep(word: str) -> bool:
        return len(word) >= 3 and word not in STOPWORDS and word not in TEMPLATE_WORDS

    df: Counter = Counter()
    for caption in captions:
        found = set()
        for part in caption.split(","):
            ws = words(part)
            found.update(w for w in ws if keep(w))
            found.update(f"{a} {b}" for a, b in zip(ws, ws[1:]) if keep(a) and keep(b) and a != b)
        df.update(found)
    return [w for w, c in sorted(df.items(), key=lambda item: (-item[1], item[0])) if c >= min_captions]


def main() -> None:
    """Read the training captions, write the vocabulary file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captions", type=Path, default=ROOT / "sample_index" / "captions.jsonl")
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "memetui-demo-clip.vocab.txt")
    parser.add_argument("--min-captions", type=int, default=MIN_CAPTIONS, help="keep entries in at least this many captions")
    args = parser.parse_args()
    records = [json.loads(line) for line in args.captions.read_text(encoding="utf-8").splitlines() if line.strip()]
    captions = [r["caption"] for r in records if r.get("split", "train") == "train"]
    vocab = list(dict.fromkeys(caption_vocabulary(captions, args.min_captions) + COLOURS_SHAPES))
    header = (f"# memetui-demo-clip label vocabulary: {len(vocab)} words and phrases of its {len(captions)} training\n"
              f"# captions (in >= {args.min_captions} of them) plus colour and shape words. "
              "Written by scripts/make_demo_vocab.py.\n")
    args.out.write_text(header + "\n".join(vocab) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {len(vocab)} entries from {len(captions)} captions")


if __name__ == "__main__":
    main()
