"""The shipped sample index and models: integrity, retrieval quality, SAE, offline CLI."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys

import pytest

from memetui.paths import PACKAGE_ROOT, SAMPLE_INDEX
from memetui.steer.query import Query

MODEL_FILE = PACKAGE_ROOT / "models" / "memetui-demo-clip.safetensors"
CAPTION_HIT_THRESHOLD = 0.65
"""Share of held-out caption titles whose top-10 holds an image captioned with that title's word.
Measured 0.814 over 640 held-out title words with the shipped model (0.728 and 0.411 with the two
before it); the threshold is issue 13's goal. scripts/eval_demo_clip.py prints this and the concept figures."""

CONCEPT_WORDS = PACKAGE_ROOT / "scripts" / "concept_words.txt"
CONCEPT_PRECISION_THRESHOLD = 0.6
"""Mean over scripts/concept_words.txt of the share of a word's top-10 results whose caption holds
the word (whole word). Measured 0.805 with the shipped model (0.493 and 0.177 before); issue 13's goal."""
CAT_PRECISION_THRESHOLD = 0.6
"""Share of the top-10 results for "cat" captioned with "cat". Measured 0.7 (0.2 and 0.0 before); issue 13's goal."""

pytestmark = pytest.mark.skipif(not (SAMPLE_INDEX / "manifest.json").is_file(), reason="sample index not built")


@pytest.fixture(scope="module")
def session():
    from memetui.session import Session

    return Session.open(SAMPLE_INDEX, device="cpu")


def captions() -> list[dict]:
    return [json.loads(line) for line in open(SAMPLE_INDEX / "captions.jsonl", encoding="utf-8")]


def test_manifest_names_the_shipped_model_and_checksums_match(session):
    model = session.store.model
    assert model.name == "memetui-demo-clip" and model.pretrained == MODEL_FILE.name
    assert hashlib.sha256(MODEL_FILE.read_bytes()).hexdigest() == model.sha256
    assert session.store.count >= 5000
    assert session.store.status_counts()["error"] == 0
    assert session.terms.embedder.info.sha256 == model.sha256


def first_word(caption: str) -> str | None:
    words = re.findall(r"[a-z]{3,}", caption.split(",")[0].lower())
    return words[0] if words else None


def test_caption_words_find_captioned_images(session):
    by_path = {c["path"]: c["caption"].lower() for c in captions()}
    root = session.store.root
    held = [c for c in captions() if c["split"] == "heldout"]
    words = sorted({w for c in held if (w := first_word(c["caption"]))})
    hits = 0
    session.terms.prefetch_texts(words)  # one batched text-tower call instead of one per word
    for word in words:
        results = session.results(10, query=Query().set_text(word)).results
        hits += any(word in by_path.get(r.path.relative_to(root).as_posix(), "") for r in results)
    rate = hits / len(words)
    print(f"caption-word hit rate @10: {rate:.3f} over {len(words)} words")
    assert rate >= CAPTION_HIT_THRESHOLD


def test_concept_words_find_their_pictures(session):
    by_path = {c["path"]: c["caption"].lower() for c in captions()}
    root = session.store.root
    words = [w.strip() for w in CONCEPT_WORDS.read_text().splitlines() if w.strip() and not w.startswith("#")]
    assert len(words) >= 40
    session.terms.prefetch_texts(words)
    precision = {}
    for word in words:
        results = session.results(10, query=Query().set_text(word)).results
        pattern = re.compile(rf"\b{re.escape(word)}\b")
        precision[word] = sum(bool(pattern.search(by_path.get(r.path.relative_to(root).as_posix(), "")))
                              for r in results) / 10
    mean = sum(precision.values()) / len(precision)
    print(f"concept precision @10: {mean:.3f} over {len(words)} words; cat {precision['cat']:.1f}")
    assert mean >= CONCEPT_PRECISION_THRESHOLD and precision["cat"] >= CAT_PRECISION_THRESHOLD


def test_shipped_sae_loads_with_metrics(session):
    assert session.has_sae and session.mode == "sae"
    config = json.loads((SAMPLE_INDEX / "sae" / "sample.json").read_text())
    metrics = config["metrics"]
    # 9k vectors cannot keep every latent firing on a 917-row validation split (see README)
    assert 0 <= metrics["fvu"] < 0.1 and 0 <= metrics["dead_fraction"] < 0.7 and metrics["l0"] == 16


def test_search_cat_works_offline():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("MEMETUI_MODELS", None)
    result = subprocess.run([sys.executable, "-m", "memetui.cli", "search", "cat", "-k", "5"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 5


def test_quoted_meme_phrases_find_their_memes(session):
    """Every 50th generated meme (captions.jsonl order): its quoted phrase ranks it in the top 3 (OCR text)."""
    from memetui.steer.parse import parse_typed

    memes = [c for c in captions() if c["source"] == "memes"]
    assert len(memes) >= 400 and len({c["text"] for c in memes}) >= 150
    root = session.store.root
    for meme in memes[::50]:
        results = session.results(3, query=parse_typed(f'"{meme["text"]}"')).results
        assert meme["path"] in [r.path.relative_to(root).as_posix() for r in results], meme["text"]
