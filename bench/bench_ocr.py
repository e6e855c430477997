"""OCR at index time, side by side: cost (ms/image, images/s with OCR on vs off) and benefit
(hit@3 of 2–4-word phrase queries, hybrid vs CLIP-only) on generated memes, with the shipped
demo CLIP (models/).

    python bench/bench_ocr.py [--memes 40] [--twins 20] [--sweep] [--json out.json]

Corpus: memetui.ocr.memes — `--memes` captioned memes (classic, modern text bar, and classic
shrunk to 320 px as JPEG q35), `--twins` more re-using the first captions on other pictures, and
as many pictures without text; backgrounds from sample_index/images with their captions.
Also reported: FTS5 tokenizer (unicode61 vs trigram, native phrase MATCH), fusion of CLIP and text
scores on twin memes (query = picture caption + quoted phrase: only CLIP can tell twins apart),
and with --sweep the detection side limit (word recall, character error, ms/image).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MEMETUI_MODELS", str(ROOT / "models"))

from memetui.embed import Embedder  # noqa: E402
from memetui.index import ocr_text  # noqa: E402
from memetui.index.build import BuildOptions, IndexBuilder, open_or_create  # noqa: E402
from memetui.index.store import IndexStore  # noqa: E402
from memetui.index.text_match import fuse, hybrid_order, match_phrases, text_scores_for  # noqa: E402
from memetui.ocr.memes import load_backgrounds, make_memes  # noqa: E402


def phrase_of(i: int, top: str, bottom: str) -> str:
    """A 2–4-word phrase from a caption: the top line, the bottom line, or words across both."""
    words = f"{top} {bottom}".split()
    choice = [top.split(), bottom.split(), words[len(top.split()) - 1: len(top.split()) + 2]][i % 3]
    return " ".join(choice[:4]) if len(choice) >= 2 else " ".join(words[:3])


def build(images: Path, index: Path, embedder, ocr: bool) -> tuple[float, IndexStore]:
    """Build `index` over `images`; return seconds and the opened store."""
    started = time.perf_counter()
    store = open_or_create(index, images, embedder)
    IndexBuilder(store, embedder, BuildOptions(ocr=ocr, thumbnails=True)).run()
    store.close()
    return time.perf_counter() - started, IndexStore.open(index)


def row_names(store) -> dict[int, str]:
    return {row: path for row, path in store.db.execute("SELECT id, path FROM items")}


def hit_at(order_rows, targets: set[int], k: int = 3) -> bool:
    return bool(targets & set(int(r) for r in order_rows[:k]))


def tokenizer_check(store, queries) -> dict:
    """Native FTS5 phrase MATCH hit@3 and index size per tokenizer over the stored OCR text."""
    texts = [(r, t) for r, t in store.db.execute("SELECT item_id, text FROM ocr WHERE status = 'text'")]
    out = {}
    for name, tokenize in (("unicode61", "unicode61 remove_diacritics 2"), ("trigram", "trigram")):
        mem = sqlite3.connect(":memory:")
        mem.execute(f"CREATE VIRTUAL TABLE t USING fts5(text, tokenize='{tokenize}')")
        mem.executemany("INSERT INTO t (rowid, text) VALUES (?, ?)", [(r, ocr_text.index_text(t)) for r, t in texts])
        mem.commit()
        mem.execute("INSERT INTO t (t) VALUES ('optimize')")
        size = mem.execute("SELECT SUM(LENGTH(block)) FROM t_data").fetchone()[0]
        hits = 0
        for phrase, targets in queries:
            found = [r for (r,) in mem.execute("SELECT rowid FROM t WHERE t MATCH ? ORDER BY bm25(t) LIMIT 3",
                                               ('"' + ocr_text.index_text(phrase) + '"',))]
            hits += hit_at(found, targets)
        out[name] = {"phrase_hit@3": hits / len(queries), "fts_bytes": int(size)}
    return out


def sweep(folder: Path, specs, side: int = 1024) -> list[dict]:
    """Detection side limit vs word recall, character error and ms/image on the memes scaled to
    `side` px wide (a limit above an image's size changes nothing: memes are shrunk to the limit)."""
    from PIL import Image

    from memetui.image_files import load_image
    from memetui.ocr.engine import MAX_SIDE, OcrEngine

    memes = [s for s in specs if s.style != "plain"]
    images = [load_image(folder / s.path, max_side=MAX_SIDE) for s in memes]
    images = [im.resize((side, round(im.height * side / im.width)), Image.BICUBIC) for im in images]
    limits = (320, 480, 640, 960)
    engines = {limit: OcrEngine(det_limit_side=limit) for limit in limits}
    stats = {limit: {"times": [], "found": 0, "total": 0, "errors": 0, "chars": 0} for limit in limits}
    for engine in engines.values():
        engine.read(Image.new("RGB", (64, 64), "white"))
    for spec, image in zip(memes, images):
        truth = ocr_text.words(f"{spec.top} {spec.bottom}")
        long_words = [w for w in truth if len(w) >= 3]
        for limit in limits:  # interleaved: a busy machine slows every setting alike
            result, s = engines[limit].read(image), stats[limit]
            s["times"].append(result.seconds)
            got = ocr_text.words(result.text)
            s["found"] += sum(w in set(got) for w in long_words)
            s["total"] += len(long_words)
            s["errors"] += _edit_distance(" ".join(truth), " ".join(got))
            s["chars"] += len(" ".join(truth))
    return [{"det_limit": limit, "words_found": s["found"] / s["total"], "char_error": s["errors"] / s["chars"],
             "ms_p50": 1000 * statistics.median(s["times"])} for limit, s in stats.items()]


def _edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def main() -> None:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memes", type=int, default=40)
    parser.add_argument("--twins", type=int, default=20)
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        need = 2 * (args.memes + args.twins)
        backgrounds = load_backgrounds(ROOT / "sample_index" / "images", ROOT / "sample_index" / "captions.jsonl", need)
        specs = make_memes(tmp / "memes", args.memes, twins=args.twins, backgrounds=backgrounds)
        (tmp / "memes" / "memes.json").rename(tmp / "memes.json")
        n = len(specs)
        embedder = Embedder(device="cpu")
        off_s, _ = build(tmp / "memes", tmp / "idx_off", embedder, ocr=False)
        on_s, store = build(tmp / "memes", tmp / "idx_on", embedder, ocr=True)
        ocr_ms = [1000 * s for (s,) in store.db.execute("SELECT seconds FROM ocr WHERE seconds IS NOT NULL")]
        results["cost"] = {"images": n, "index_off_img_s": n / off_s, "index_on_img_s": n / on_s,
                           "index_off_ms_per_image": 1000 * off_s / n,
                           "ocr_ms_p50": statistics.median(ocr_ms), "ocr_ms_p90": float(np.percentile(ocr_ms, 90))}
        names = {v: k for k, v in row_names(store).items()}
        emb = np.asarray(store.embeddings, dtype=np.float32)
        by_caption: dict[tuple, set[int]] = {}
        for spec in specs:
            if spec.style != "plain":
                by_caption.setdefault((spec.top, spec.bottom), set()).add(names[spec.path])
        queries = [(phrase_of(i, top, bottom), rows) for i, ((top, bottom), rows) in enumerate(by_caption.items())]
        clip_hits = hybrid_hits = 0
        per_style = {}
        rows_all = np.arange(store.count)
        for phrase, targets in queries:
            clip = emb @ embedder.embed_texts([phrase])[0]
            clip_hits += hit_at(np.argsort(-clip), targets)
            text = text_scores_for(rows_all, match_phrases(store.db, [(1.0, phrase)]))
            hybrid_hits += hit_at(rows_all[hybrid_order(clip, text, text_only=True)], targets)
        results["phrase_queries"] = {"queries": len(queries), "clip_only_hit@3": clip_hits / len(queries),
                                     "hybrid_hit@3": hybrid_hits / len(queries)}
        results["tokenizers"] = tokenizer_check(store, queries)
        twins = [s for s in specs if s.style != "plain" and len(by_caption[(s.top, s.bottom)]) == 2]
        methods = {"clip_only": None, "rrf_k10": ("rrf", 10, 0), "rrf_k60": ("rrf", 60, 0),
                   "sum_l0.5": ("sum", 0, 0.5), "sum_l1": ("sum", 0, 1.0), "sum_l2": ("sum", 0, 2.0),
                   "sum_l4": ("sum", 0, 4.0)}
        fused_hits = {m: [0, 0] for m in methods}
        for i, spec in enumerate(twins):
            phrase = phrase_of(i, spec.top, spec.bottom)
            q = embedder.embed_texts([spec.background, phrase]).sum(axis=0)
            clip = emb @ q
            text = text_scores_for(rows_all, match_phrases(store.db, [(1.0, phrase)]))
            target = {names[spec.path]}
            for m, params in methods.items():
                order = np.argsort(-clip) if params is None else np.argsort(
                    -fuse(clip, text, params[0], k=params[1] or 10, lam=params[2] or 2.0), kind="stable")
                fused_hits[m][0] += hit_at(order, target, 1)
                fused_hits[m][1] += hit_at(order, target, 3)
        results["fusion_twins"] = {"queries": len(twins), **{m: {"hit@1": h1 / len(twins), "hit@3": h3 / len(twins)}
                                                             for m, (h1, h3) in fused_hits.items()}}
        store.close()
        if args.sweep:
            results["det_sweep"] = sweep(tmp / "memes", specs)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def report(r: dict) -> None:
    """Print the results as small tables."""
    c = r["cost"]
    print(f"\nindexing {c['images']} images (demo CLIP, CPU): OCR off {c['index_off_img_s']:.1f} img/s "
          f"({c['index_off_ms_per_image']:.0f} ms/image) | OCR on {c['index_on_img_s']:.1f} img/s "
          f"| ratio {c['index_off_img_s'] / c['index_on_img_s']:.2f}x")
    print(f"OCR ms/image: p50 {c['ocr_ms_p50']:.0f}, p90 {c['ocr_ms_p90']:.0f}")
    p = r["phrase_queries"]
    print(f"\nphrase queries ({p['queries']}): hit@3 CLIP-only {p['clip_only_hit@3']:.3f} | hybrid {p['hybrid_hit@3']:.3f}"
          f" | +{p['hybrid_hit@3'] - p['clip_only_hit@3']:.3f}")
    print("\nFTS5 tokenizer (native phrase MATCH): " + " | ".join(
        f"{k} hit@3 {v['phrase_hit@3']:.3f}, {v['fts_bytes']} B" for k, v in r["tokenizers"].items()))
    f = r["fusion_twins"]
    print(f"\nfusion on twin memes ({f['queries']} queries: picture caption + quoted phrase)")
    for m, v in f.items():
        if m != "queries":
            print(f"  {m:<10} hit@1 {v['hit@1']:.3f}  hit@3 {v['hit@3']:.3f}")
    for row in r.get("det_sweep", []):
        print(f"det limit {row['det_limit']:>4}: words found {row['words_found']:.3f}, char error "
              f"{row['char_error']:.4f}, {row['ms_p50']:.0f} ms p50")


if __name__ == "__main__":
    main()
