"""Pilot tests of the feature panel (the stepped direction stays pinned), the feature gallery (`f`)
and names that collide (real Session, real SAE on a small real index; no mocks)."""

from __future__ import annotations

from pathlib import Path

from test_tui import index_with_sae, make_app, settle, wait_for  # noqa: F401  (index_with_sae: a fixture)


async def press_and_settle(pilot, app, *keys: str) -> None:
    """Press each key and wait for the results it brings."""
    for key in keys:
        shown = app.results_shown
        await pilot.press(key)
        await settle(pilot, app, shown)


async def open_gallery(pilot, app):
    """`f`, then wait for the worker that encodes every row."""
    from memetui.tui.screens.gallery import GalleryScreen

    await pilot.press("f")
    await wait_for(pilot, lambda: isinstance(app.screen, GalleryScreen) and app.screen.features is not None,
                   "the gallery never listed its features")
    return app.screen


async def test_stepped_direction_stays_pinned_with_its_weight_and_undo_restores_panel_and_results(index_with_sae):
    from memetui.tui.widgets.feature_panel import PREFIX, FeaturePanel
    from memetui.tui.widgets.result_grid import ResultGrid

    app = make_app(index_with_sae)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot, app)
        shown = app.results_shown
        await pilot.press("slash", *"red", "enter")
        await wait_for(pilot, lambda: "red" in app.session.query.describe() and app.results_shown > shown
                       and not app.workers._workers, "the typed query was never shown")
        panel, grid = app.query_one(FeaturePanel), app.query_one(ResultGrid)
        top = {d.id for d in panel.data.query}
        gallery = await open_gallery(pilot, app)
        target = next(f for f in gallery.features if f.id not in top)
        await pilot.press(*str(target.id))
        await wait_for(pilot, lambda: gallery.query_one("#gallery-list").highlighted == target, "filter by id failed")
        await pilot.press("enter")
        await wait_for(pilot, lambda: panel.pinned is not None and panel.pinned.id == target.id,
                       "the picked feature was not pinned")
        await settle(pilot, app)
        before = (app.session.query, panel.data, [t.row for t in grid.tiles])
        assert before[1].pinned.weight == 0.0 and target.id not in {d.id for d in before[1].query}

        await press_and_settle(pilot, app, "l", "l", "l")
        pinned = panel.pinned
        assert pinned.id == target.id and pinned.weight > 0
        assert panel.entries[0].direction.id == target.id and panel.cursor == 0 and panel.highlighted.id == target.id
        first = panel.render_line(1).text
        assert first.startswith("▶") and str(target.id) in first and f"w {pinned.weight:+.2f}" in first
        assert panel.data.results, "the visible results' features are listed"
        assert panel.size.width - PREFIX >= 24, "labels get at least 24 characters"

        await press_and_settle(pilot, app, "m", "m", "m")  # sae -> pca -> random -> sae keeps sae's selection
        assert panel.mode == "sae" and panel.pinned.id == target.id

        await press_and_settle(pilot, app, "u", "u", "u")
        assert (app.session.query, panel.data, [t.row for t in grid.tiles]) == before


async def test_gallery_filters_by_label_picks_a_feature_steps_along_it_and_undoes(index_with_sae):
    from memetui.tui.keys import help_rows
    from memetui.tui.screens.gallery import THUMB_HEIGHT, THUMB_WIDTH, GalleryScreen
    from memetui.tui.widgets.feature_panel import FeaturePanel

    assert ("f", "feature gallery") in help_rows({})
    app = make_app(index_with_sae)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot, app)
        start = app.session.query
        await pilot.press("f", "escape")  # closed while its worker encodes every row: the answer is dropped
        assert not isinstance(app.screen, GalleryScreen)
        gallery = await open_gallery(pilot, app)
        features = gallery.features
        assert features and all(f.rate > 0 and f.exemplars for f in features)
        assert [f.rate for f in features] == sorted((f.rate for f in features), reverse=True)
        first = features[0].exemplars[0].thumbnail
        await wait_for(pilot, lambda: app.cache.get(first, THUMB_WIDTH, THUMB_HEIGHT) is not None,
                       "exemplar thumbnails were never rendered")

        feature_list = gallery.query_one("#gallery-list")
        chosen = features[len(features) // 2]
        word = chosen.label.replace(",", " ").split()[0]
        await pilot.press(*word)
        await wait_for(pilot, lambda: gallery.query_one("Input").value == word, "the filter was not typed")
        assert chosen in feature_list.features
        assert all(word.lower() in f.label.lower() or word == str(f.id) for f in feature_list.features)
        await pilot.press(*["down"] * feature_list.features.index(chosen))
        assert feature_list.highlighted == chosen
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, GalleryScreen), "enter did not close the gallery")
        panel = app.query_one(FeaturePanel)
        await wait_for(pilot, lambda: panel.pinned is not None and panel.pinned.id == chosen.id, "not pinned")
        assert app.session.mode == "sae" and app.session.selected == ("sae", chosen.id)

        await press_and_settle(pilot, app, "l")
        term = app.session.query.direction_terms()[("sae", chosen.id)]
        assert term.weight > 0 and panel.pinned.weight == term.weight
        await press_and_settle(pilot, app, "u")
        assert app.session.query == start and panel.pinned.weight == 0.0

        await open_gallery(pilot, app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, GalleryScreen), "escape did not close the gallery")
        assert app.session.selected == ("sae", chosen.id)


def test_shown_names_add_the_shortest_distinguishing_folder_only_where_names_collide():
    from memetui.tui.widgets.result_grid import shown_names

    paths = [Path("/i/twemoji/1f998-kangaroo.webp"), Path("/i/fluent3d/1f998-kangaroo.webp"), Path("/i/cat.png"),
             Path("/a/x/k.png"), Path("/b/x/k.png"), Path("/a/y/k.png")]
    assert shown_names(paths) == ["twemoji/1f998-kangaroo.webp", "fluent3d/1f998-kangaroo.webp", "cat.png",
                                  "a/x/k.png", "b/x/k.png", "y/k.png"]


async def test_colliding_file_names_show_their_folder_in_tiles_and_the_detail_view(tiny_index, tmp_path):
    from conftest import make_image

    from memetui.tui.screens.detail import DetailScreen
    from memetui.tui.widgets.result_grid import ResultGrid, TileView

    images = tmp_path / "images"
    make_image(images / "twemoji" / "kangaroo.png", seed=1)
    make_image(images / "fluent" / "kangaroo.png", seed=2)
    for i in range(3):
        make_image(images / f"other{i}.png", seed=10 + i)
    app = make_app(tiny_index(images=images))
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot, app)
        grid = app.query_one(ResultGrid)
        shown = {view.render_line(view.image_height).text.strip() for view in grid.query(TileView) if view.tile}
        assert {"twemoji/kangaroo.png", "fluent/kangaroo.png", "other0.png"} <= shown  # tiles are 22 cells wide
        grid.cursor = next(i for i, t in enumerate(grid.tiles) if t.path.parent.name == "fluent")
        app.action_detail()
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail view never opened")
        assert app.screen.shown_name == "fluent/kangaroo.png"
        await pilot.press("escape", "f")  # this index has no SAE: the gallery says so
        await wait_for(pilot, lambda: "no SAE" in str(app.screen.query_one("#gallery-status").render()),
                       "the gallery did not say the index has no SAE")
        await pilot.press("escape")


def test_feature_stats_match_encoding_every_row_at_once(index_with_sae):
    import numpy as np

    from memetui.session import Session
    from memetui.session.feature_stats import feature_stats

    session = Session.open(index_with_sae, device="cpu")
    sae, store = session.directions.sae, session.store
    dense = sae.dense(sae.encode(np.asarray(store.embeddings, dtype=np.float32)))
    stats = feature_stats(sae, store.embeddings, store.live_mask(), exemplars=3, chunk=7)  # chunks of 7 rows
    np.testing.assert_allclose(stats.rates, (dense > 0).mean(0))
    for j in np.flatnonzero(stats.rates)[:10]:
        fired = [r for r in np.argsort(-dense[:, j], kind="stable")[:3] if dense[r, j] > 0]
        assert list(stats.exemplars[j][stats.exemplars[j] >= 0]) == fired
    assert all(stats.exemplars[j][0] == -1 for j in np.flatnonzero(stats.rates == 0))


async def test_panel_and_gallery_show_both_label_sources_and_the_filter_matches_exemplar_words(index_with_sae):
    from memetui.tui.screens.gallery import GalleryScreen
    from memetui.tui.widgets.feature_panel import FeaturePanel

    app = make_app(index_with_sae)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot, app)
        sae = app.session.directions.sae
        assert any(sae.text_label(j) and sae.exemplar_label(j) for j in range(sae.n_latents)), \
            "train-sae stored text-tower labels and exemplar words"
        gallery = await open_gallery(pilot, app)
        feature = next(f for f in gallery.features if sae.exemplar_label(f.id))
        assert feature.label == f"{sae.text_label(feature.id)} · exemplars: {sae.exemplar_label(feature.id)}"
        feature_list = gallery.query_one("#gallery-list")
        titles = [feature_list.render_line(y).text for y in range(feature_list.size.height)]
        assert any("· exemplars: " in t for t in titles)
        word = sae.exemplar_label(feature.id).split(",")[0].strip()
        await pilot.press(*word)
        await wait_for(pilot, lambda: gallery.query_one("Input").value == word, "the filter was not typed")
        assert feature in feature_list.features
        assert all(word in f.label for f in feature_list.features)
        await pilot.press(*["down"] * feature_list.features.index(feature), "enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, GalleryScreen), "enter did not close the gallery")
        panel = app.query_one(FeaturePanel)
        await wait_for(pilot, lambda: panel.pinned is not None and panel.pinned.id == feature.id, "not pinned")
        await settle(pilot, app)
        text = " ".join(panel.render_line(y).text.strip() for y in range(panel.size.height))
        assert "exemplars:" in text and sae.text_label(feature.id)[:10] in text
