#!/usr/bin/env python3
"""Generate ``memetui/data/vocab.txt``: the label vocabulary for SAE features.

Concrete English nouns and short noun phrases, one per line, lowercase ASCII. Built from
Princeton WordNet 3.0 (Debian ``wordnet-base``) and SCOWL (Debian ``scowl``):

* a lemma is kept when its most frequent noun sense (WordNet orders senses by frequency) lies
  in a physical lexicographer file (animal, artifact, body, food, object, person, plant,
  substance, phenomenon, shape, location) and is not a proper noun (capitalised in
  data.noun); ``EXTRA`` adds common visual words whose first sense is abstract ("book" is
  first a written work, "table" first a data table);
* single words must be in the common SCOWL lists (size <= 20; size <= 35 too, except that
  35-level person nouns must also be attested in WordNet's sense-tagged corpus);
* multi-word lemmas ("fishing boat", "sand dune") have 2-3 words with no function words and
  are either attested in the sense-tagged corpus with all words in SCOWL <= 35, or are
  two-word names of concrete things (animal, artifact, body, food, object, plant, substance)
  made of two of the commonest (SCOWL 10) words.

Usage::

    apt-get install wordnet-base scowl
    python scripts/make_vocab.py [--out memetui/data/vocab.txt]

The notices for both sources are in ``memetui/data/VOCAB_LICENSE.txt``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

WORDNET = Path("/usr/share/wordnet")
SCOWL = Path("/usr/share/dict/scowl")

# lexicographer file numbers (see lexnames(5WN))
PHYSICAL = {
    5: "animal",
    6: "artifact",
    8: "body",
    13: "food",
    15: "location",
    17: "object",
    18: "person",
    19: "phenomenon",
    20: "plant",
    25: "shape",
    27: "substance",
}

CONCRETE = {5, 6, 8, 13, 17, 20, 27}
FUNCTION_WORDS = {"of", "and", "in", "on", "the", "a", "an", "to", "for", "or", "at", "by", "with"}

# common words that are still poor visual labels
STOPWORDS = {
    "thing", "things", "object", "whole", "part", "piece", "unit", "item", "someone", "somebody",
    "person", "individual", "one", "self", "being", "entity", "matter", "stuff", "material",
    "article", "device", "instrumentality", "artifact", "artefact", "structure", "location",
    "place", "region", "area", "point", "side", "end", "top", "bottom", "front", "back",
    "head", "body", "form", "shape", "type", "kind", "sort", "number", "lot", "group",
    "set", "system", "have", "way", "line", "case", "state", "world", "people", "man", "woman",
}

# WordNet nouns whose most frequent sense is abstract but that name things people draw
EXTRA = set("""
album arrow badge balloon battery beam book brush bubble cable candle cartoon chain chart
church cinema clock cloud coin comb crown diary dice document drawing film fire firework
flag flame flower folder football forest galaxy ghost gift globe gold heart icon image
invitation kiss label lightning magazine mail map medal medicine menu mug newspaper note
pattern pedal photo photograph picture pizza poster present puzzle radio rainbow receipt
ring rocket saw school shadow sign skeleton slice smile smoke snowflake spiral spring stage
star sun sunrise sunset table tag target television ticket trophy van video volcano wave
whistle yard
""".split())

ASCII_WORD = re.compile(r"^[a-z]+(?:[-'][a-z]+)*$")


def read_words(*names: str) -> set[str]:
    out: set[str] = set()
    for n in names:
        p = SCOWL / n
        if not p.exists():
            continue
        for line in p.read_bytes().decode("latin-1").splitlines():
            w = line.strip()
            if w and w.islower() and w.isascii():
                out.add(w)
    return out


def synsets() -> dict[str, tuple[int, dict[str, str]]]:
    """offset -> (lexicographer file number, {lowercase lemma: lemma as spelled})."""
    out = {}
    with open(WORDNET / "data.noun", encoding="latin-1") as fh:
        for line in fh:
            if line.startswith(" "):
                continue
            f = line.split()
            n = int(f[3], 16)
            out[f[0]] = (int(f[1]), {f[4 + 2 * i].lower(): f[4 + 2 * i] for i in range(n)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--out", type=Path,
        default=Path(__file__).resolve().parent.parent / "memetui" / "data" / "vocab.txt",
    )
    args = ap.parse_args()
    for p in (WORDNET / "index.noun", SCOWL / "english-words.35"):
        if not p.exists():
            raise SystemExit(f"{p} missing: apt-get install wordnet-base scowl")

    levels = ("10", "20", "35")
    variants = ("english", "american")
    common10 = read_words(*[f"{v}-words.10" for v in variants])
    common20 = read_words(*[f"{v}-words.{lv}" for v in variants for lv in levels[:2]])
    common35 = read_words(*[f"{v}-words.{lv}" for v in variants for lv in levels])
    syn = synsets()

    singles: set[str] = set()
    phrases: set[str] = set()
    per_cat: dict[str, int] = {}
    with open(WORDNET / "index.noun", encoding="latin-1") as fh:
        for line in fh:
            if line.startswith(" "):
                continue
            f = line.split()
            lemma, synset_cnt, p_cnt = f[0], int(f[2]), int(f[3])
            tagged = int(f[5 + p_cnt]) > 0
            offsets = f[6 + p_cnt : 6 + p_cnt + synset_cnt]
            # the most frequent sense decides (WordNet lists senses by frequency)
            lexnum, spelled = syn[offsets[0]]
            orig = spelled.get(lemma, lemma)
            # capitalised: a proper noun (a place, a person, a brand)
            if lemma in EXTRA:
                lexnum = next((syn[o][0] for o in offsets if syn[o][0] in PHYSICAL), 6)
            elif lexnum not in PHYSICAL or orig != orig.lower():
                continue
            words = lemma.split("_")
            if not all(ASCII_WORD.match(w) for w in words):
                continue
            cat = PHYSICAL[lexnum]
            if len(words) == 1:
                if lemma in STOPWORDS or len(lemma) < 3:
                    continue
                if not (lemma in common20 or lemma in EXTRA or (lemma in common35 and (cat != "person" or tagged))):
                    continue
                singles.add(lemma)
            elif len(words) <= 3:
                if any(w in FUNCTION_WORDS or "'" in w for w in words):
                    continue
                ok = tagged and all(w in common35 for w in words)
                ok |= len(words) == 2 and lexnum in CONCRETE and all(w in common10 for w in words)
                if not ok:
                    continue
                phrases.add(" ".join(words))
            else:
                continue
            per_cat[cat] = per_cat.get(cat, 0) + 1

    vocab = sorted(singles | phrases)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(vocab) + "\n", encoding="ascii")
    print(f"wrote {len(vocab)} entries ({len(singles)} words, {len(phrases)} phrases) to {args.out}")
    print("by category:", dict(sorted(per_cat.items(), key=lambda kv: -kv[1])))


if __name__ == "__main__":
    main()
