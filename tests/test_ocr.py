"""Text in images: OCR at index time, quoted-phrase matching, --no-ocr then re-index, no OCR package."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import TINY_MODEL, make_image_folder
from memetui.embed import Embedder
from memetui.index import ocr_text
from memetui.index.build import BuildOptions, IndexBuilder, open_or_create
from memetui.index.store import IndexStore
from memetui.index.text_match import hybrid_order, match_phrases, text_scores_for
from memetui.ocr.render import photo_background, render_meme


def build(images, index, ocr=True):
    embedder = Embedder(TINY_MODEL, f"{TINY_MODEL}.safetensors", device="cpu")
    store = open_or_create(index, images, embedder)
    summary = IndexBuilder(store, embedder, BuildOptions(batch_size=4, workers=2, ocr=ocr)).run()
    store.close()
    return summary, IndexStore.open(index)


def meme_folder(folder, plain=6):
    """Plain pictures plus two memes drawn with Pillow's bundled default font."""
    make_image_folder(folder, plain)
    render_meme(photo_background(1, (320, 240)), "one does not simply", "walk into mordor",
                size=320, prefer_default_font=True).save(folder / "mordor.png")
    render_meme(photo_background(2, (320, 240)), "brace yourselves", "tests are coming", style="modern",
                size=320, prefer_default_font=True).save(folder / "winter.jpg", quality=80)
    return folder


def row_of(store, name):
    return next(r for r, p in store.db.execute("SELECT id, path FROM items") if p == name)


def test_quoted_phrase_finds_meme_drawn_with_default_font(tiny_model_dir, tmp_path):
    summary, store = build(meme_folder(tmp_path / "img"), tmp_path / "idx")
    assert summary.ocr.read == 8 and summary.ocr.with_text == 2 and summary.ocr.failed == 0
    assert store.manifest.ocr["name"] == "rapidocr" and store.manifest.ocr["version"].startswith("3.")
    mordor, winter = row_of(store, "mordor.png"), row_of(store, "winter.jpg")
    assert "ONE DOES NOT SIMPLY" in " ".join(ocr_text.ocr_text(store, [mordor])[0].split())
    for phrase, target in (("one does not simply", mordor), ("simply walk into", mordor),
                           ("brace yourselves", winter), ("tests are coming", winter)):
        matches = match_phrases(store.db, [(1.0, phrase)])
        assert matches.rows[0] == target and matches.scores[0] >= 1.89, phrase  # 1.9: OCR ran words together
        # quoted-only query: text first, CLIP (here random) breaks ties; the meme ranks first
        rows = np.arange(store.count)
        clip = np.random.default_rng(0).normal(size=store.count)
        order = hybrid_order(clip, text_scores_for(rows, matches), text_only=True)
        assert rows[order[0]] == target
    entry = ocr_text.entries(store.db, [mordor])[0]
    assert entry.status == "text" and 0.5 < entry.confidence <= 1.0
    assert all(len(line["box"]) == 4 for line in entry.boxes)
    assert ocr_text.counts(store.db) == ocr_text.OcrCounts(text=2, empty=6, error=0, pending=0)


def test_no_ocr_index_gains_text_on_reindex_without_reembedding(tiny_model_dir, tmp_path):
    images = meme_folder(tmp_path / "img", plain=3)
    summary, store = build(images, tmp_path / "idx", ocr=False)
    assert summary.ocr is None and store.manifest.ocr == {}
    assert ocr_text.counts(store.db).pending == 5
    before_npy = (tmp_path / "idx" / "embeddings.f16.npy").read_bytes()
    before_rows = list(store.db.execute("SELECT id, embedding FROM items ORDER BY id"))
    store.close()
    again, store = build(images, tmp_path / "idx")
    assert (again.added, again.unchanged, again.ocr.read) == (0, 5, 5)
    assert (tmp_path / "idx" / "embeddings.f16.npy").read_bytes() == before_npy
    assert list(store.db.execute("SELECT id, embedding FROM items ORDER BY id")) == before_rows
    assert ocr_text.counts(store.db).text == 2 and store.manifest.ocr["name"] == "rapidocr"
    third, store = build(images, tmp_path / "idx")
    assert third.ocr.read == 0  # nothing left to read


def test_unreadable_image_for_ocr_is_recorded_not_fatal(tiny_model_dir, tmp_path):
    images = meme_folder(tmp_path / "img", plain=2)
    _, store = build(images, tmp_path / "idx", ocr=False)
    (images / "mordor.png").write_bytes(b"truncated")  # gone bad after embedding, same mtime/size check aside
    os.utime(images / "mordor.png", (1, 1))
    store.close()
    from memetui.index.ocr_stage import OcrStage

    store = IndexStore.open(tmp_path / "idx", write=True)
    summary = OcrStage.start(store).finish()
    assert summary.failed == 1 and summary.read == 4
    entry = ocr_text.entries(store.db, [row_of(store, "mordor.png")])[0]
    assert entry.status == "error" and entry.error


def test_hostile_ocr_text_is_stored_raw_and_shown_escaped(tiny_model_dir, tmp_path):
    from memetui.ocr.display import highlighted
    from memetui.ocr.engine import OcrLine, OcrResult

    build(make_image_folder(tmp_path / "img", 2), tmp_path / "idx", ocr=False)[1].close()
    store = IndexStore.open(tmp_path / "idx", write=True)
    hostile = "\x1b]52;c;cHduZWQ=\x07 [bold red]brace[/] \u202eyourselves \x1b[2J"
    ocr_text.ensure_schema(store.db)
    with store.db:
        ocr_text.record(store.db, 0, OcrResult((OcrLine(hostile, ((0, 0), (1, 0), (1, 1), (0, 1)), 0.9),)), "test")
    assert ocr_text.ocr_text(store, [0]) == [hostile]  # raw in the engine
    assert match_phrases(store.db, [(1.0, "brace yourselves")]).rows.tolist() == [0]
    shown = highlighted(hostile, ["brace yourselves"])
    assert "\x1b" not in shown.plain and "\u202e" not in shown.plain and "\x07" not in shown.plain
    assert "[bold red]brace[/]" in shown.plain and "\\x1b" in shown.plain  # markup shown as typed
    marked = {shown.plain[s.start:s.end] for s in shown.spans}
    assert marked == {"brace", "yourselves"}


def test_index_without_ocr_package_says_one_line_and_builds(tiny_model_dir, tmp_path, capsys):
    images = make_image_folder(tmp_path / "img", 4)
    code = ("import sys; sys.modules['rapidocr'] = None; from memetui.cli import main; "
            f"sys.exit(main(['index', {str(images)!r}, '--model', {TINY_MODEL!r}, "
            f"'--pretrained', {TINY_MODEL + '.safetensors'!r}]))")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MEMETUI_MODELS": str(tiny_model_dir)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "OCR" in line]
    assert len(notes) == 1 and "unavailable" in notes[0] and "rapidocr" in notes[0]
    assert "added 4" in result.stdout
    store = IndexStore.open(images / ".memetui")
    assert store.count == 4 and store.manifest.ocr == {}
    from memetui.cli import main

    assert main(["info", str(images), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ocr"]["pending"] == 4


def test_quoted_terms_parse_as_text_in_image():
    from memetui.steer.parse import parse_terms, parse_typed
    from memetui.steer.query import Query

    query = parse_typed('cat 2:"brace yourselves" "one does not simply"')
    assert [(t.weight, t.kind, t.value) for t in query.terms] == [
        (1.0, "text", "cat"), (2.0, "ocr", "brace yourselves"), (1.0, "ocr", "one does not simply")]
    assert Query.from_json(query.to_json()) == query
    assert [t.kind for t in parse_typed('re:"zero" say "hi').terms] == ["text"]  # not quoted terms
    assert [(t.weight, t.kind) for t in parse_terms(['-0.5:"this is fine"', "dog"]).terms] == [(-0.5, "ocr"), (1.0, "text")]


def test_search_cli_and_session_rank_quoted_phrase_first(tiny_model_dir, tmp_path, capsys):
    from memetui.cli import main
    from memetui.session import Session
    from memetui.steer.parse import parse_typed

    images = meme_folder(tmp_path / "img", plain=6)
    assert main(["index", str(images), "--model", TINY_MODEL, "--pretrained", f"{TINY_MODEL}.safetensors"]) == 0
    assert "OCR: read 8 images (2 with text" in capsys.readouterr().out
    assert main(["search", '"simply walk into"', "-k", "3", "--json", "--index", str(images)]) == 0
    top = json.loads(capsys.readouterr().out)["results"][0]
    assert top["path"].endswith("mordor.png") and top["text_score"] >= 1.89 and "MORDOR" in top["ocr_text"]
    assert main(["info", str(images)]) == 0
    assert "text     2 images with text, 6 without" in capsys.readouterr().out
    session = Session.open(images, sae=False)
    session.set_query(parse_typed('"brace yourselves"'))
    first = session.results(4).results
    assert first[0].path.name == "winter.jpg" and first[0].text_score >= 1.89
    session.select_direction(0, "pca")
    before = session.vector().copy()
    for _ in range(3):
        session.step(+1)  # steps move the CLIP part; the text match still ranks first
    stepped = session.results(4).results
    assert not np.array_equal(session.vector(), before)
    assert stepped[0].path.name == "winter.jpg"
    assert [r.row for r in stepped] != [r.row for r in first] or stepped[1].score != first[1].score


def test_phrase_score_and_fusion_on_hand_computed_values():
    from memetui.index.text_match import fuse, phrase_score, rank_text_first

    assert phrase_score("one does not simply", "ONE DOES NOT\nSIMPLY\nWALK") == 2.0  # across lines
    assert phrase_score("walk into", "WALKINTO MORDOR") == 1.9  # OCR ran the words together
    assert phrase_score("walk into mordor", "walk to mordor") == pytest.approx(2 / 3)
    assert phrase_score("cat", "") == 0.0 and phrase_score("", "cat") == 0.0
    clip, text = np.array([0.3, 0.1, 0.2]), np.array([0.0, 2.0, 2.0])
    assert rank_text_first(clip, text).tolist() == [2, 1, 0]  # text first, CLIP breaks the tie
    z = (clip - clip.mean()) / clip.std()
    np.testing.assert_allclose(fuse(clip, text, "sum", lam=2.0), z + 2.0 * text)
    # ranks: CLIP 1, 3, 2; text (ties by position) -, 1, 2
    np.testing.assert_allclose(fuse(clip, text, "rrf", k=10), [1 / 11, 1 / 13 + 1 / 11, 1 / 12 + 1 / 12])


async def test_detail_view_shows_the_text_with_quoted_words_highlighted(tiny_model_dir, tmp_path):
    from memetui.session import Session
    from memetui.steer.parse import parse_typed
    from memetui.tui.app import MemeApp
    from memetui.tui.screens.detail import DetailScreen

    build(meme_folder(tmp_path / "img", plain=2), tmp_path / "idx")[1].close()
    session = Session.open(tmp_path / "idx", device="cpu", sae=False)
    session.set_query(parse_typed('"brace yourselves"'))
    app = MemeApp(session, graphics="halfblock", restore_history=False)
    async with app.run_test(size=(140, 45)) as pilot:
        for _ in range(200):
            await pilot.pause(0.02)
            if app.grid.selected is not None:
                break
        await pilot.press("tab", "enter")
        for _ in range(200):
            if isinstance(app.screen, DetailScreen):
                break
            await pilot.pause(0.02)
        assert isinstance(app.screen, DetailScreen) and app.screen.path.name == "winter.jpg"
        shown = app.screen.ocr
        assert "brace yourselves" in shown.plain
        assert {shown.plain[s.start:s.end] for s in shown.spans} == {"brace", "yourselves"}
