"""The app shows its first results before the SAE is loaded (no torch needed for them), then the
feature panel fills in; steps pressed meanwhile are queued, other keys that need the SAE wait; a
corrupt SAE still leaves a working app."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from memetui.commands.app_cmd import open_session
from memetui.errors import SAEError
from memetui.session import Session
from test_tui import index_with_sae, settle, wait_for  # noqa: F401  (the module's fixture)


def deferred_app(index, gate: threading.Event | None = None, **kwargs):
    """The app as `memetui` opens it (SAE deferred); `gate`: loading the SAE waits for it."""
    from memetui.tui.app import MemeApp

    session, notices = open_session(index, "cpu", None)
    if gate is not None:
        real = session.load_sae
        session.load_sae = lambda: gate.wait(30) and real()
    app = MemeApp(session, graphics="halfblock", restore_history=False, notices=notices, **kwargs)
    return app


def test_a_deferred_session_names_its_sae_without_loading_it(index_with_sae):
    session = Session.open(index_with_sae, device="cpu", defer_sae=True)
    assert session.sae_pending == "tiny" and not session.has_sae and session.mode == "sae"
    assert session.modes == ("sae", "pca", "random")
    session.add_image(0)
    assert session.results(5).results  # searching needs no SAE
    with pytest.raises(SAEError, match="still loading"):
        session.active_directions(3)
    session.attach_sae(session.load_sae())
    eager = Session.open(index_with_sae, device="cpu")
    eager.add_image(0)
    assert session.sae_pending is None and session.has_sae and session.modes == eager.modes
    assert session.active_directions(5) == eager.active_directions(5)


def test_the_first_results_need_no_torch(index_with_sae):
    code = (f"import sys\nfrom memetui.commands.app_cmd import open_session\n"
            f"s, _ = open_session({str(index_with_sae)!r}, 'cpu', None)\n"
            "s.add_image(0)\n"
            "assert s.sae_pending and s.results(5).results\n"
            "assert s.features.of_rows('pca', [0, 1]) is not None\n"
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.strip() == "False"


async def test_results_are_shown_before_the_sae_is_loaded_then_the_panel_fills_in(index_with_sae):
    from memetui.tui.sae_loading import LOADING_TITLE
    from test_display_text import record_notifications

    gate = threading.Event()
    app = deferred_app(index_with_sae, gate)
    said = record_notifications(app)
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, lambda: app.results_shown >= 1, "no first results")
        assert app.grid.tiles and app.session.sae_pending == "tiny"
        assert app.panel.border_title == LOADING_TITLE and app.panel.mode == "sae" and not app.panel.directions
        await pilot.press("f")  # the gallery needs the SAE: it says so and waits
        await pilot.press("l")  # a step is queued, not lost
        await pilot.pause(0.05)
        assert any("still loading" in message for message, _ in said)
        assert any("stepping once the SAE features have loaded" in message for message, _ in said)
        assert len(app.screen_stack) == 1 and len(app.session.history.states) == 1
        shown = app.results_shown
        gate.set()
        await wait_for(pilot, lambda: app.session.sae_pending is None and app.results_shown > shown
                       and app.panel.directions and app.session.query.direction_terms(), "the panel never filled in")
        assert app.session.has_sae and app.panel.border_title is None and app.panel.mode == "sae"
        assert app.device_name == "cpu" and app.queued_steps == []
        assert app.session.selected is not None and app.session.selected.provider == "sae"
        stepped = app.session.query
        assert len(app.session.history.states) == 2  # the queued press stepped once along the top SAE feature
        shown = app.results_shown
        await pilot.press("l")  # steps on along it
        await settle(pilot, app, shown)
        assert app.session.query != stepped and len(app.session.history.states) == 3


async def test_a_corrupt_deferred_sae_is_said_in_full_and_the_app_goes_on_with_pca(tiny_index):
    from conftest import save_broken_sae
    from test_display_text import record_notifications

    index = tiny_index(12)
    save_broken_sae(index, "broken", "W_enc", float("inf"))
    app = deferred_app(index)
    said = record_notifications(app)
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, lambda: app.session.sae_pending is None and app.results_shown >= 2, "never settled")
        message = "SAE broken is corrupt: non-finite values in W_enc; started without an SAE (PCA and random only)"
        assert (message, False) in said
        assert app.session.modes == ("pca", "random") and app.session.mode == "pca" and app.grid.tiles
        assert app.panel.border_title is None and app.panel.mode == "pca"


@pytest.mark.parametrize("source", ["query_file", "history"])
async def test_a_restored_query_along_sae_features_loads_the_sae_first(index_with_sae, tmp_path, source):
    from memetui.session import library
    from memetui.steer.query import DirectionRef, Query, Term
    from memetui.tui.app import MemeApp

    eager = Session.open(index_with_sae, device="cpu")
    query = Query((Term(1.0, "image", 0), Term(0.5, "direction", DirectionRef("sae", 3))))
    eager.set_query(query)
    library.save_query(tmp_path / "q.json", query)
    eager.files.save_history()
    session, _ = open_session(index_with_sae, "cpu", None)
    app = MemeApp(session, graphics="halfblock", restore_history=source == "history",
                  query_file=tmp_path / "q.json" if source == "query_file" else None)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot, app)
        assert app.session.sae_pending is None and app.session.query == query and app.panel.directions


async def test_an_index_without_an_sae_shows_results_before_its_pca_is_fitted(tiny_index):
    from memetui.tui.sae_loading import LOADING_TITLE

    index = tiny_index(12)
    gate = threading.Event()
    app = deferred_app(index)
    directions = app.session.directions
    real = directions.provider
    directions.provider = lambda name: (gate.wait(30) or True) and real(name) if name == "pca" else real(name)
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, lambda: app.results_shown >= 1, "no first results")
        assert app.grid.tiles and app.session.mode == "pca" and not directions.pca_ready
        assert app.panel.border_title == LOADING_TITLE and app.panel.mode == "pca" and not app.panel.directions
        shown = app.results_shown
        gate.set()
        await wait_for(pilot, lambda: directions.pca_ready and app.results_shown > shown and app.panel.directions,
                       "the PCA panel never filled in")
        assert app.panel.border_title is None and app.panel.mode == "pca"
