"""Pilot tests of the Textual app on a small real index (no mocks: real Session, real SAE)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from memetui.session import Session, library


@pytest.fixture(scope="module")
def index_with_sae(tiny_model_dir, tmp_path_factory):
    """A 40-image index with a small SAE trained through `memetui train-sae` (built once per module)."""
    import os

    from conftest import build_tiny_index, make_image_folder
    from memetui.cli import main

    os.environ["MEMETUI_MODELS"] = str(tiny_model_dir)
    folder = tmp_path_factory.mktemp("tui")
    path = build_tiny_index(make_image_folder(folder / "images", 40), folder / "index")
    assert main(["train-sae", str(path), "--latents", "64", "--k", "4", "--epochs", "3", "--batch", "16",
                 "--name", "tiny", "--device", "cpu"]) == 0
    return path


def make_app(index, **kwargs):
    from memetui.tui.app import MemeApp

    return MemeApp(Session.open(index, device="cpu"), graphics="halfblock", restore_history=False, **kwargs)


async def settle(pilot, app, shown_before=None):
    """Wait until the worker has shown results newer than `shown_before`."""
    await wait_for(pilot, lambda: app.results_shown > (shown_before or 0) and not app.workers._workers,
                   "results never arrived")


async def wait_for(pilot, condition, failure: str, tries: int = 400) -> None:
    """Let the app run until `condition()` holds; fail with `failure` after `tries` short waits."""
    for _ in range(tries):
        await pilot.pause(0.01)
        if condition():
            return
    raise AssertionError(failure)


async def test_start_shows_grid_panel_and_status(index_with_sae):
    from memetui.tui.widgets.feature_panel import FeaturePanel
    from memetui.tui.widgets.result_grid import ResultGrid

    app = make_app(index_with_sae)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot, app)
        grid, panel = app.query_one(ResultGrid), app.query_one(FeaturePanel)
        assert len(grid.tiles) >= 12 and panel.directions
        assert app.session.mode == "sae"
        assert grid.tiles[0].score >= grid.tiles[-1].score


async def test_typing_a_query_shows_its_results(index_with_sae):
    from memetui.tui.widgets.result_grid import ResultGrid

    app = make_app(index_with_sae)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot, app)
        shown = app.results_shown
        await pilot.press("slash", *"red", "enter")
        await wait_for(pilot, lambda: "red" in app.session.query.describe() and app.results_shown > shown,
                       "the typed query never became the session's query")
        expected = [r.row for r in app.session.results(24).results]
        await settle(pilot, app, shown)
        assert "red" in app.session.query.describe()
        assert [t.row for t in app.query_one(ResultGrid).tiles] == expected


async def test_step_changes_query_and_undo_restores(index_with_sae):
    from memetui.tui.widgets.result_grid import ResultGrid

    app = make_app(index_with_sae)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot, app)
        start_query, start_rows = app.session.query, [t.row for t in app.query_one(ResultGrid).tiles]
        start_vector = app.session.vector().copy()
        for _ in range(6):
            shown = app.results_shown
            await pilot.press("l")
            await settle(pilot, app, shown)
        assert app.session.query != start_query
        assert "sae" in app.session.query.describe() or "direction" in json.dumps(app.session.query.to_dict())
        assert [t.row for t in app.query_one(ResultGrid).tiles] != start_rows
        for _ in range(6):
            shown = app.results_shown
            await pilot.press("u")
            await settle(pilot, app, shown)
        assert app.session.query == start_query
        np.testing.assert_array_equal(app.session.vector(), start_vector)
        assert [t.row for t in app.query_one(ResultGrid).tiles] == start_rows


async def test_mode_cycles_sae_pca_random(index_with_sae):
    from memetui.tui.widgets.feature_panel import FeaturePanel

    app = make_app(index_with_sae)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot, app)
        seen = []
        for _ in range(3):
            shown = app.results_shown
            await pilot.press("m")
            await settle(pilot, app, shown)
            seen.append((app.session.mode, app.query_one(FeaturePanel).mode, bool(app.query_one(FeaturePanel).directions)))
        assert seen == [("pca", "pca", True), ("random", "random", True), ("sae", "sae", True)]


async def test_help_and_detail_screens(index_with_sae):
    from memetui.tui.screens.detail import DetailScreen
    from memetui.tui.screens.help import HelpScreen

    app = make_app(index_with_sae)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot, app)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("tab", "right", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail view never opened")
        assert app.screen.path.name.endswith(".png") and app.screen.features
        await pilot.press("escape")
        assert not isinstance(app.screen, DetailScreen)


async def test_bookmarks_persist_across_runs(index_with_sae):
    app = make_app(index_with_sae)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("l", "b")
        from memetui.paths import user_data_dir

        await wait_for(pilot, lambda: (user_data_dir() / library.BOOKMARKS_FILE).is_file(), "no bookmark written")
        query = app.session.query
    assert query in library.load_bookmarks().values()


async def test_file_names_with_escape_sequences_are_shown_escaped(tiny_model_dir, tiny_index, tmp_path):
    from conftest import make_image

    from memetui.tui.widgets.result_grid import ResultGrid, TileView

    images = tmp_path / "evil"
    for i in range(3):
        make_image(images / f"ok{i}.png", seed=i)
    make_image(images / "bad\x1b[31mred\x07.png", seed=9)
    index = tiny_index(images=images, index=tmp_path / "evil-index")
    app = make_app(index)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        views = app.query_one(ResultGrid).query(TileView)
        joined = "\n".join(view.render_line(y).text for view in views for y in range(view.image_height + 2))
        assert "\x1b" not in joined and "\x07" not in joined
        assert "\\x1b[31mred" in joined


KEY_EVENTS = {"[": ("left_square_bracket", "["), "]": ("right_square_bracket", "]"), "-": ("minus", "-"),
              "ctrl+r": ("ctrl+r", None), "tab": ("tab", "\t"), "up": ("up", None), "down": ("down", None),
              "left": ("left", None), "right": ("right", None), "question_mark": ("question_mark", "?"),
              "escape": ("escape", "\x1b"), "enter": ("enter", "\r")}
"""Key events as a terminal's input thread posts them (key name, character)."""


def type_keys(app, keys) -> None:
    """Post key events through the driver the way typing does, without waiting between them."""
    from textual import events

    for key in keys:
        name, char = KEY_EVENTS.get(key, (key, key))
        app._driver.send_message(events.Key(name, char))


async def test_smoke_150_random_keys_then_undo_returns_to_start(index_with_sae):
    """A smoke run of 150 random keys through the real bindings, typed without pauses (the undo
    property itself is tested on Session with 5,000 edits in test_session.py)."""
    keys = list("ijklhmnu[]-yb") + ["ctrl+r", "tab", "up", "down", "left", "right", "question_mark", "escape",
                                     "enter", "escape"]
    rng = random.Random(0)
    app = make_app(index_with_sae)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        start = app.session.query
        for _ in range(3):
            type_keys(app, (rng.choice(keys) for _ in range(50)))
            await pilot.press("escape")  # Pilot waits for it: every key typed before it has been handled
        for _ in range(300):  # close whatever the keys opened (a detail view may still be on its way), undo
            if app.session.undo_depth == 0 and len(app.screen_stack) == 1:
                break
            await pilot.press("u" if len(app.screen_stack) == 1 else "escape")
        assert app.session.undo_depth == 0
        assert app.session.query == start
        await settle(pilot, app)
        assert app.is_running


async def test_kitty_mode_draws_placeholders_and_queues_one_upload_per_image(index_with_sae):
    from memetui.tui.app import MemeApp
    from memetui.tui.kitty import decode_placeholder_cells
    from memetui.tui.widgets.result_grid import ResultGrid, TileView

    app = MemeApp(Session.open(index_with_sae, device="cpu"), graphics="kitty", restore_history=False)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot, app)
        grid = app.query_one(ResultGrid)
        shown = [view for view in grid.query(TileView) if view.tile is not None][:6]
        assert len(shown) == 6
        colours = set()
        for view in shown:
            for y in range(view.image_height):
                strip = view.render_line(y)
                assert decode_placeholder_cells(strip.text) == [(y, x) for x in range(view.tile_width)]
                colours |= {segment.style.color.triplet for segment in strip if segment.style}
        assert len(colours) == 6  # one image id (the cells' colour) per thumbnail
        # headless: nothing can reach a terminal, so every rendered image still waits, exactly once
        assert app.cache.pending_uploads() == app.cache.renders


async def test_quitting_while_searches_and_prefetches_run_raises_nothing(index_with_sae):
    from textual import events

    for _ in range(3):
        app = make_app(index_with_sae)
        async with app.run_test(size=(140, 45)) as pilot:
            await settle(pilot, app)
            for _ in range(8):  # held key: events queue faster than searches finish
                app._driver.send_message(events.Key("l", "l"))
            await pilot.pause(0.01)
        # leaving run_test re-raises any worker's exception: workers that outlive the app end quietly
        assert app.return_code in (None, 0)


async def test_kitty_images_keep_their_ids_under_a_modal_screen(index_with_sae, monkeypatch):
    """Placeholder cells name their image by colour: the help screen must not tint them into other ids."""
    import re

    from textual import constants

    from memetui.tui.app import MemeApp

    run = re.compile("\x1b\\[[0-9;]*38;2;(\\d+);(\\d+);(\\d+)[0-9;]*m(?:\U0010EEEE..)+")

    def ids_on_screen(app) -> set[int]:
        text = app.screen._compositor.render_update(full=True).render_segments(app.console)
        return {(int(r) << 16) | (int(g) << 8) | int(b) for r, g, b in run.findall(text)}

    monkeypatch.setattr(constants, "COLOR_SYSTEM", "truecolor")  # what kitty mode ensures for a real terminal
    app = MemeApp(Session.open(index_with_sae, device="cpu"), graphics="kitty", restore_history=False)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot, app)
        uploaded = {upload.image_id for upload in app.cache.take_uploads()}
        assert ids_on_screen(app) and ids_on_screen(app) <= uploaded
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "HelpScreen", "help never opened")
        under_modal = ids_on_screen(app)
        assert under_modal and under_modal <= uploaded


async def test_a_terminal_below_the_minimum_size_says_so(index_with_sae):
    from textual.widgets import Static

    from memetui.tui.app import MIN_SIZE

    app = make_app(index_with_sae)
    async with app.run_test(size=(40, 12)) as pilot:
        await settle(pilot, app)
        message = app.query_one("#too-small", Static)
        assert app.has_class("-too-small") and message.display
        assert f"at least {MIN_SIZE[0]}x{MIN_SIZE[1]}" in str(message.render()) and "40x12" in str(message.render())
        await pilot.resize_terminal(140, 45)
        await wait_for(pilot, lambda: not app.has_class("-too-small"), "the app stayed in its too-small state")
        assert app.query_one("#grid").size.width > 40


def test_scores_fit_a_tile_whatever_their_size():
    from memetui.tui.widgets.result_grid import format_score

    assert format_score(0.7341) == "+0.734" and format_score(-12.5) == "-12.500"
    assert format_score(16206738721255456768.0) == "+1.62e+19" and len(format_score(-3.3e-300)) <= 10
