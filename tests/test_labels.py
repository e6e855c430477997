"""Label sources (text tower, exemplar words), captions sidecars, label precision in compare and
dead latents per split, on small real indexes (no mocks)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from memetui.index.captions import captions, row_documents  # noqa: E402
from memetui.index.store import IndexStore, ModelInfo  # noqa: E402
from memetui.sae.model import TopKSAE  # noqa: E402
from memetui.sae.words import exemplar_words, document_frequencies, label_hits, occurs  # noqa: E402

WORDS = ["apple", "boat", "cloud"]
PER = 12
DIM = 16


def cluster_index(tmp_path, sidecar: str = "root") -> IndexStore:
    """3 tight clusters of 12 rows; files WORD/WORD_i.png; captions 'a WORD number i' in a sidecar."""
    root = tmp_path / "images"
    store = IndexStore.create(tmp_path / "index", ModelInfo("tiny", None, DIM, "ab" * 32), str(root))
    gen = np.random.default_rng(0)
    centres = np.eye(DIM, dtype=np.float32)[: len(WORDS)]
    emb = np.repeat(centres, PER, axis=0) + 0.05 * gen.standard_normal((len(WORDS) * PER, DIM)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    store.write_embeddings(emb.astype(np.float16))
    store.manifest.count = len(emb)
    store.write_manifest()
    lines = []
    for row in range(len(emb)):
        word = WORDS[row // PER]
        rel = f"{word}/{word}_{row:02d}.png"
        (root / word).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (row, 0, 0)).save(root / rel)
        store.db.execute("INSERT INTO items (id, path, sha256, status, embedding) VALUES (?, ?, ?, 'ok', ?)",
                         (row, rel, f"{row:064x}", b""))
        lines.append(json.dumps({"path": rel, "caption": f"a {word} number {row}"}))
    store.db.commit()
    folder = root if sidecar == "root" else store.path
    (folder / "captions.jsonl").write_text("\n".join(lines + ["not json", '{"path": 3}']) + "\n")
    return store


def cluster_sae(dead_latent: bool = True) -> TopKSAE:
    """An SAE whose latent j fires on cluster j (encoder = decoder = the cluster centre); plus one latent
    that fires on no row."""
    n = len(WORDS) + int(dead_latent)
    sae = TopKSAE(DIM, n, 1)
    with torch.no_grad():
        sae.W_enc.zero_()
        sae.W_dec.zero_()
        for j in range(len(WORDS)):
            sae.W_enc[j, j] = sae.W_dec[j, j] = 1.0
        if dead_latent:
            sae.W_enc[n - 1] = -1.0
            sae.W_dec[n - 1, DIM - 1] = 1.0
    sae.meta["training"] = {"val_fraction": 0.25}
    return sae


def test_captions_come_from_a_sidecar_in_the_images_root_or_the_index_and_imports_win(tmp_path):
    store = cluster_index(tmp_path)
    found = captions(store)
    assert len(found) == 3 * PER and found[0] == "a apple number 0" and found[PER] == "a boat number 12"
    store.db.execute("INSERT INTO item_meta (id, url, caption, meta) VALUES (0, NULL, 'imported words', NULL)")
    store.db.commit()
    assert captions(store)[0] == "imported words"
    docs = row_documents(store)
    assert docs[PER].split()[:4] == ["a", "boat", "number", "12"] and "boat_12" in docs[PER]

    other = cluster_index(tmp_path / "b", sidecar="index")
    assert captions(other)[2 * PER] == "a cloud number 24"
    (other.path / "captions.jsonl").unlink()
    assert captions(other) == {}


def test_exemplar_words_are_the_distinctive_words_shared_by_exemplars():
    docs = ["red apple on a table", "green apple tree", "apple pie", "a boat on the sea", "boat sail", "sea shell"]
    sets, df = document_frequencies(docs)
    assert "the" not in df and df["apple"] == 3
    found = exemplar_words(np.array([[0, 1, 2, -1], [3, 4, 5, -1], [0, 3, -1, -1]]), sets, df, top=2)
    assert found[0] == ["apple"] and found[1][0] in ("boat", "sea") and set(found[1]) == {"boat", "sea"}
    assert found[2] == []  # no word is in two of these exemplars


def test_a_label_occurs_as_consecutive_words_ignoring_case_and_plural():
    assert occurs("red dragon", "Mahjong RED dragons, 3d emoji") and occurs("flags", "flag of Palau")
    assert not occurs("red dragon", "dragon red") and not occurs("", "anything") and not occurs("cat", "category")
    assert label_hits("boat", [0, 1, 2], {0: "a boat", 1: "two boats", 3: "boat"}) == 2


def test_exemplar_labels_and_dead_latents_per_split(tmp_path):
    from memetui.sae.dead import dead_by_split
    from memetui.sae.labels import exemplar_labels

    store = cluster_index(tmp_path)
    sae = cluster_sae()
    sae.init_from_data_(torch.from_numpy(np.asarray(store.embeddings, np.float32)), pre_bias="mean", decoder="random")
    with torch.no_grad():  # keep the hand-made directions; only b_pre / s come from the data
        sae.b_pre.zero_()
    labels = exemplar_labels(sae, store, top=2)
    assert [found[0] for found in labels[:3]] == WORDS and labels[3] == []
    dead = dead_by_split(sae, store)
    assert dead.all == dead.train == 0.25 and dead.train_rows + dead.val_rows == 3 * PER
    assert dead.val >= dead.all


def test_text_labels_read_the_exemplars_against_the_whole_index(tmp_path):
    from memetui.sae.labels import read_exemplars, text_match_statistics

    store = cluster_index(tmp_path)
    eye = np.eye(DIM, dtype=np.float32)
    # text embeddings sit in their own cone (a shared axis), as CLIP's do; "picture" is close to every image
    words = [0.4 * eye[j] + 0.9 * eye[DIM - 1] for j in range(len(WORDS))]
    vocab_emb = np.vstack(words + [eye[0] + eye[1] + eye[2]])
    vocab_emb /= np.linalg.norm(vocab_emb, axis=1, keepdims=True)
    stats = text_match_statistics(store.embeddings, np.flatnonzero(store.live_mask()), vocab_emb)
    assert stats[0].shape == (4,) and stats[0][3] > stats[0][0] > 0 and (stats[1] > 0).all()
    exemplars = [np.arange(j * PER, j * PER + 10) for j in range(len(WORDS))] + [np.array([PER, -1]), np.array([-1])]
    labels = read_exemplars(exemplars, store.embeddings, WORDS + ["picture"], vocab_emb, stats, top=2)
    assert [found[0] for found in labels[:4]] == WORDS + ["boat"]  # raw cosine would say "picture" everywhere
    assert labels[4] == []
    mean_cos = np.asarray(store.embeddings[:10], np.float32) @ vocab_emb.T
    assert mean_cos.mean(0).argmax() == 3


def test_compare_reports_label_precision_with_intervals(tmp_path):
    from memetui.sae.labels import label_directions
    from memetui.session import Session
    from memetui.steer.compare import CompareOptions, compare
    from memetui.steer.sae_directions import SAEDirections

    store = cluster_index(tmp_path)
    sae = SAEDirections.from_sae(cluster_sae(dead_latent=False))
    session = Session(store, sae=sae)
    vocab_emb = np.eye(DIM, dtype=np.float32)[: len(WORDS)]

    def labeller(vectors, rows):
        assert len(rows) == len(vectors)
        return label_directions(vectors, WORDS, vocab_emb, top=1, remove_mean=False)

    providers = {m: session.directions.provider(m) for m in session.directions.modes}
    options = CompareOptions(directions=3, starts=3, per_start=1, bootstrap=200)
    report = compare(store, providers, session.searcher.ann.search, sae, options, labeller=labeller,
                     captions=captions(store))
    by = {p.provider: p for p in report.providers}
    assert by["sae"].label_precision == (1.0, 1.0, 1.0, 3)  # each feature's 10 exemplars are its cluster
    assert [e[1] for e in by["sae"].examples] == [WORDS[e[0]] for e in by["sae"].examples]
    for p in report.providers:
        iv = p.label_precision
        assert 0 <= iv.low <= iv.mean <= iv.high <= 1 and iv.n == 3
        if p.provider != "random":  # compare draws fresh random directions; the others are recounted here
            for j, label, hits in p.examples:
                rows = session.searcher.ann.search(providers[p.provider].vector(j), 10).rows
                assert hits == label_hits(label, rows, captions(store))
    assert report.to_dict()["providers"]["sae"]["label_precision"]["mean"] == 1.0
    silent = compare(store, providers, session.searcher.ann.search, sae, options, labeller=labeller, captions={})
    assert all(p.label_precision is None for p in silent.providers)


def test_vocabulary_beside_the_checkpoint_is_preferred(tmp_path, monkeypatch):
    from memetui.sae.labels import VOCAB_FILE, load_vocabulary, vocabulary_file

    models = tmp_path / "models"
    models.mkdir()
    (models / "mini.safetensors").write_bytes(b"x")
    monkeypatch.setenv("MEMETUI_MODELS", str(models))
    assert vocabulary_file("mini.safetensors") == VOCAB_FILE and vocabulary_file(None) == VOCAB_FILE
    (models / "mini.vocab.txt").write_text("# comment\nred\nred\nblue square\n\n")
    assert vocabulary_file("mini.safetensors") == models / "mini.vocab.txt"
    assert load_vocabulary(vocabulary_file("mini.safetensors")) == ["red", "blue square"]
    assert vocabulary_file("missing.safetensors") == VOCAB_FILE


def test_demo_vocabulary_script_keeps_caption_words_and_phrases():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    from make_demo_vocab import caption_vocabulary

    caps = ["red dragon 3d emoji", "red dragon, fire", "red dragon card", "blue car emoji"]
    vocab = caption_vocabulary(caps, min_captions=3)
    assert vocab == ["dragon", "red", "red dragon"]


@pytest.mark.usefixtures("one_torch_thread")
def test_train_sae_stores_both_label_sources_and_info_reports_dead_per_split(tiny_index, tmp_path, capsys):
    from conftest import make_image_folder
    from memetui.cli import main

    images = make_image_folder(tmp_path / "images", 32)
    (images / "captions.jsonl").write_text("\n".join(
        json.dumps({"path": p.name, "caption": f"a {p.stem.split('_')[0]} square"}) for p in sorted(images.glob("*.png"))))
    index = tiny_index(images=images)
    assert main(["train-sae", str(index), "--latents", "32", "--k", "4", "--epochs", "4", "--batch", "16",
                 "--name", "t", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "training rows" in printed and "validation rows" in printed and "of all 32 rows" in printed
    assert "lr=search " in printed and "; lr " in printed  # the candidates first, the chosen rate at the end
    saved = json.loads((index / "sae" / "t.json").read_text())
    assert len(saved["labels"]) == len(saved["exemplar_labels"]) == 32
    assert set(saved["label_sources"]) == {"labels", "exemplar_labels"}
    words = {w for found in saved["exemplar_labels"] for w in found}
    assert words and words <= {"red", "green", "blue", "yellow", "black", "white", "purple", "orange", "square"}
    assert saved["metrics"]["dead_train_rows"] >= saved["metrics"]["dead_all_rows"]
    assert main(["info", str(index)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("t:"))
    assert "of all rows (train" in line and "validation" in line
    assert main(["features", str(index), "--sae", "t", "--out", str(tmp_path / "html")]) == 0
    html = "".join(p.read_text() for p in (tmp_path / "html").glob("features-*.html"))
    assert "exemplars: <span" in html
    capsys.readouterr()
    assert main(["compare", str(index), "--directions", "4", "--starts", "2", "--bootstrap", "50", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for scores in report["providers"].values():
        iv = scores["label_precision"]
        assert 0 <= iv["low"] <= iv["mean"] <= iv["high"] <= 1 and iv["n"] == 4
