"""Rows without a local image (imported embeddings) in the app: text cards, URL, metadata, no model."""

from __future__ import annotations

import pytest

from test_import import clip_retrieval_folder, run_import


@pytest.fixture(scope="module")
def imported_index(tmp_path_factory):
    """300 remote rows (clip-retrieval shards: caption, URL, width) of a model not on this machine."""
    folder = tmp_path_factory.mktemp("remote")
    clip_retrieval_folder(folder / "cr")
    run_import(folder / "cr", folder / "index")
    return folder / "index"


def test_results_of_remote_rows_carry_a_card_and_their_url(imported_index):
    from memetui.errors import QueryError
    from memetui.session import Session
    from memetui.steer.parse import parse_typed

    session = Session.open(imported_index, device="cpu")
    session.add_image(42)
    top = session.results(5).results[0]
    assert top.row == 42 and top.url == "https://example.com/42.jpg"
    assert "caption 42" in top.card and "not on this machine" in top.card
    session.select_direction(0, "pca")
    session.set_mode("pca")
    session.step(+1)  # steering works without the model
    with pytest.raises(QueryError, match="need the index's model") as first:
        session.set_query(parse_typed("cat"))
    with pytest.raises(QueryError) as second:  # known now: no second attempt to load it
        session.set_query(parse_typed("dog"))
    assert str(first.value) == str(second.value) and "\n" not in str(first.value)


async def test_app_shows_cards_opens_urls_and_details_metadata(imported_index, monkeypatch):
    from memetui.session import Session
    from memetui.tui.app import MemeApp
    from memetui.tui.screens.detail import DetailScreen
    from memetui.tui.widgets.result_grid import ResultGrid, TileView
    from test_display_text import record_notifications
    from test_tui import settle, wait_for

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    app = MemeApp(Session.open(imported_index, device="cpu"), graphics="halfblock", restore_history=False)
    said = record_notifications(app)
    async with app.run_test(size=(150, 45)) as pilot:
        await settle(pilot, app)
        grid = app.query_one(ResultGrid)
        await wait_for(pilot, lambda: not grid.unrendered(grid.tiles[: grid.visible_count]), "cards never drawn")
        view = next(v for v in grid.query(TileView) if v.tile is not None)
        card = "\n".join(view.render_line(y).text for y in range(view.image_height))
        row = view.tile.row
        assert f"caption {row}" in card and "example.com" in card and "machine" in card
        await pilot.press("tab", "o")
        assert any(m == f"no display: https://example.com/{grid.selected.row}.jpg" for m, _ in said)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), "no detail view")
        info = str(app.screen.query_one("#detail-info").query_one("Static").render())
        assert f"https://example.com/{grid.selected.row}.jpg" in info and "not on this machine" in info
        await pilot.press("escape", "slash", *"cat", "enter")
        await wait_for(pilot, lambda: any("need the index's model" in m for m, _ in said), "no one-line notice")
        assert app.return_code is None


async def test_a_corrupt_sae_does_not_stop_the_app_and_is_named_in_full(tiny_index):
    from conftest import save_broken_sae
    from memetui.commands.app_cmd import open_session
    from memetui.tui.app import MemeApp
    from test_display_text import record_notifications
    from test_tui import settle

    index = tiny_index(12)
    save_broken_sae(index, "broken", "W_dec", float("nan"))
    session, notices = open_session(index, "cpu", None, defer_sae=False)  # deferred: tests/test_sae_loading.py
    assert not session.has_sae and session.modes == ("pca", "random")
    assert len(notices) == 1 and "broken" in notices[0] and "non-finite" in notices[0]
    app = MemeApp(session, graphics="halfblock", restore_history=False, notices=notices)
    said = record_notifications(app)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot, app)
        assert (notices[0], False) in said and app.grid.tiles
