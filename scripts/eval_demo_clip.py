"""Word-level retrieval figures of a built index (default: the shipped sample index).

    python scripts/eval_demo_clip.py [--index sample_index] [--words scripts/concept_words.txt] [--captions FILE]

- caption-word hit rate@10: the first word (>= 3 letters) of each held-out caption's first phrase
  is searched as a text query; a hit when any top-10 result's caption contains the word (substring,
  as in tests/test_sample_index.py);
- concept precision@10: for each word of --words, the share of its top-10 results whose caption
  holds the word (word-boundary match); the mean over the list and each word's figure are printed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CONCEPT_WORDS = ROOT / "scripts" / "concept_words.txt"


def read_captions(path: Path) -> list[dict]:
    """Records of a captions.jsonl file."""
    return [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]


def read_words(path: Path) -> list[str]:
    """Non-comment, non-empty lines of a word list."""
    return [w.strip() for w in path.read_text(encoding="utf-8").splitlines() if w.strip() and not w.startswith("#")]


def first_word(caption: str) -> str | None:
    """First word of >= 3 letters of the caption's first phrase (as the sample index test)."""
    words = re.findall(r"[a-z]{3,}", caption.split(",")[0].lower())
    return words[0] if words else None


def heldout_words(records: list[dict]) -> list[str]:
    """Sorted distinct first words of the held-out captions."""
    return sorted({w for r in records if r["split"] == "heldout" and (w := first_word(r["caption"]))})


def hit_rate(words: list[str], top: dict[str, list[str]]) -> float:
    """Share of words whose top captions (lower case) contain the word anywhere."""
    return sum(any(w in c for c in top[w]) for w in words) / len(words)


def precision(word: str, captions: list[str]) -> float:
    """Share of `captions` holding `word` as a whole word."""
    pattern = re.compile(rf"\b{re.escape(word)}\b")
    return sum(bool(pattern.search(c)) for c in captions) / len(captions)


def figures(hit_words: list[str], concepts: list[str], top: dict[str, list[str]]) -> dict:
    """hit@10, concept precision@10 mean and per word, from each word's top-10 lower-case captions."""
    per_word = {w: round(precision(w, top[w]), 2) for w in concepts}
    return {"hit@10": round(hit_rate(hit_words, top), 3), "hit_words": len(hit_words),
            "concept_precision@10": round(sum(per_word.values()) / len(per_word), 3),
            "cat": per_word.get("cat"), "per_word": per_word}


def index_top(index: Path, records: list[dict], words: list[str], k: int = 10) -> dict[str, list[str]]:
    """Each word's top-k result captions (lower case) searched in a built index."""
    from memetui.session import Session
    from memetui.steer.query import Query

    by_path = {r["path"]: r["caption"].lower() for r in records}
    session = Session.open(index, device="cpu")
    root = session.store.root
    session.terms.prefetch_texts(words)
    return {w: [by_path.get(r.path.relative_to(root).as_posix(), "")
                for r in session.results(k, query=Query().set_text(w)).results] for w in words}


def main() -> None:
    """Print the figures of an index as JSON, then the per-word precision."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=ROOT / "sample_index")
    parser.add_argument("--words", type=Path, default=CONCEPT_WORDS)
    parser.add_argument("--captions", type=Path, help="captions.jsonl to judge by (default: the index's)")
    args = parser.parse_args()
    records = read_captions(args.captions or args.index / "captions.jsonl")
    hit_words, concepts = heldout_words(records), read_words(args.words)
    result = figures(hit_words, concepts, index_top(args.index, records, sorted(set(hit_words) | set(concepts))))
    per_word = result.pop("per_word")
    print(json.dumps(result))
    print(" ".join(f"{w}={p:.1f}" for w, p in sorted(per_word.items(), key=lambda t: t[1])))


if __name__ == "__main__":
    main()
