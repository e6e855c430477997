"""HTML feature browser (offline, escaped) and text labels."""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from memetui.index.store import IndexStore, ModelInfo  # noqa: E402
from memetui.sae.export import export_index_features, feature_stats  # noqa: E402
from memetui.sae.labels import clean_label, label_directions  # noqa: E402
from memetui.sae.model import TopKSAE  # noqa: E402

EVIL = "<script>alert(1)</script>.png"
"""A hostile file name; its "/" also makes a folder `<script>alert(1)<`."""
HOSTILE = [EVIL, "\x1b]0;pwned\x07.png", "[bold red]x[/].png", "rlo\u202egnp.png", "\x9bcsi.png", "bel\x07.png"]


def image_index(tmp_path, n=40, dim=16) -> IndexStore:
    root = tmp_path / "images"
    root.mkdir()
    store = IndexStore.create(tmp_path / "index", ModelInfo("tiny", None, dim, "ab" * 32), str(root))
    gen = np.random.default_rng(0)
    emb = gen.standard_normal((n, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    store.write_embeddings(emb.astype(np.float16))
    store.manifest.count = n
    store.write_manifest()
    for row in range(n):
        name = HOSTILE[row % len(HOSTILE)] if row % 2 == 0 else f"img{row}.png"
        file = root / f"d{row}" / name  # the '/' inside EVIL makes a sub-folder '<script>alert(1)<'
        file.parent.mkdir(parents=True)
        Image.new("RGB", (40, 30), (row * 5, 80, 160)).save(file, "PNG")
        store.db.execute("INSERT INTO items (id, path, sha256, status, embedding) VALUES (?, ?, ?, 'ok', ?)",
                         (row, f"d{row}/{name}", f"{row:064x}", b""))
    store.db.commit()
    return store


def test_feature_browser_escapes_file_names_and_opens_offline(tmp_path):
    store = image_index(tmp_path)
    sae = TopKSAE(16, 24, 3)
    sae.init_from_data_(torch.from_numpy(store.embeddings.astype(np.float32)))
    sae.meta["training"] = {"val_fraction": 0.5}
    sae.labels = [["<b>bold</b>", "x"]] * 24
    pages = export_index_features(store, sae, tmp_path / "html")
    text = "".join(p.read_text(encoding="utf-8") for p in pages)
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;.png" in text
    assert not any(ch in text for ch in "\x1b\x07\x9b\u202e")  # terminal controls shown as escapes, never raw
    from memetui.text import html_safe

    assert any(html_safe(name.rsplit("/", 1)[-1]) in text for name in HOSTILE[1:])
    assert "&lt;b&gt;bold&lt;/b&gt;" in text and "http" not in text
    assert list((tmp_path / "html" / "thumbs").glob("*.jpg"))


def test_feature_stats_rates_and_exemplars():
    sae = TopKSAE(8, 16, 2)
    x = np.random.default_rng(1).standard_normal((50, 8)).astype(np.float32)
    stats = feature_stats(sae, x, np.arange(50), top=10, low=3, batch_size=16)
    assert stats.rate.sum() * 50 == (sae.encode_dense(torch.from_numpy(x)) > 0).sum().item()
    dense = sae.encode_dense(torch.from_numpy(x)).detach().numpy()
    j = int(np.argmax(stats.rate))
    assert stats.top_rows[j, 0] == int(np.argmax(dense[:, j]))
    nonzero = np.flatnonzero(dense[:, j] > 0)
    assert stats.low_rows[j, 0] == nonzero[np.argmin(dense[nonzero, j])]


def test_labels_pick_the_closest_vocabulary_entries_and_strip_control_characters():
    vocab = ["cat\x1b[31m", "dog", "car", "tree"]
    emb = np.eye(4, 6, dtype=np.float32)
    labels = label_directions(np.eye(4, 6)[[2, 0]], vocab, emb, top=2, remove_mean=False)
    assert labels[0][0] == "car" and labels[1][0] == "cat[31m"
    assert clean_label("a\x00b\tc\u200bd") == "ab cd"


def test_features_command_writes_pages_for_the_index_sae(tmp_path, capsys):
    from memetui.cli import main

    store = image_index(tmp_path)
    sae = TopKSAE(16, 24, 3)
    sae.init_from_data_(torch.from_numpy(store.embeddings.astype(np.float32)))
    sae.meta["model"] = {"name": "tiny", "pretrained": None, "dim": 16, "sha256": store.model.sha256}
    sae.save(store.sae_dir / "s")
    assert main(["features", str(store.path), "--out", str(tmp_path / "html")]) == 0
    assert (tmp_path / "html" / "features-000.html").is_file() and "wrote 1 page" in capsys.readouterr().out


def test_transparent_exemplars_are_drawn_on_white_not_black(tmp_path):
    from memetui.sae.export import make_thumbnail

    source = tmp_path / "line-art.png"
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(source)
    assert make_thumbnail(source, tmp_path / "t.jpg")
    with Image.open(tmp_path / "t.jpg") as thumb:
        assert min(thumb.convert("RGB").getpixel((10, 10))) > 240
