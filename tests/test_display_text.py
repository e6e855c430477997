"""Hostile names show literally everywhere they are shown: CLI, feature HTML and every TUI place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memetui.text import html_safe, markup_safe, one_line, path_text, terminal_safe

HOSTILE = ["[bold red]x[/].png", "\x1b]0;pwned\x07.png", "[link=\"]x.png", "[@click=app.quit]clickme.png", "y[/].png",
           "rlo\u202egnp.png"]


@pytest.mark.parametrize("name", HOSTILE + ["\x9b2Jcsi.png", "tab\tand\nnewline.png"])
def test_escaping_functions_never_pass_control_characters(name):
    for out in (terminal_safe(name), markup_safe(name), html_safe(name), one_line(name), path_text(name)):
        assert not any(ch in out for ch in "\x1b\x07\x9b\u202e\n\t")
    assert terminal_safe("plain ü 猫.png") == "plain ü 猫.png"
    assert path_text(b"caf\xe9.png") == "caf\\xe9.png"
    assert "<" not in html_safe("<script>") and "&quot;" in html_safe('"')


@pytest.fixture(scope="module")
def hostile_index(tiny_model_dir, tmp_path_factory):
    import os

    from conftest import build_tiny_index, make_image

    os.environ["MEMETUI_MODELS"] = str(tiny_model_dir)
    folder = tmp_path_factory.mktemp("hostile")
    for i, name in enumerate(HOSTILE):
        make_image(folder / "images" / name, seed=100 + i)
    for i in range(4):
        make_image(folder / "images" / f"plain{i}.png", seed=i)
    return build_tiny_index(folder / "images", folder / "index")


def test_search_prints_hostile_names_literally(hostile_index, capsys):
    from memetui.cli import main

    for name in HOSTILE:
        assert main(["search", "--image", str(hostile_index.parent / "images" / name), "-k", "10",
                     "--index", str(hostile_index)]) == 0
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
        assert terminal_safe(name) in out


def record_notifications(app) -> list[tuple[str, bool]]:
    """Record (message, markup) of every notification the app posts (Textual still shows them)."""
    seen: list[tuple[str, bool]] = []
    post = app.notify

    def notify(message, *, markup=True, **kwargs):
        seen.append((message, markup))
        return post(message, markup=markup, **kwargs)

    app.notify = notify
    return seen


async def test_every_tui_place_shows_hostile_names_literally(hostile_index, tmp_path, monkeypatch):
    from memetui.session import Session
    from memetui.tui.app import MemeApp
    from memetui.tui.screens.detail import DetailScreen
    from memetui.tui.widgets.query_bar import QueryBar
    from memetui.tui.widgets.result_grid import ResultGrid, TileView

    config = tmp_path / "config"
    config.mkdir()
    (config / "keys.json").write_text(json.dumps({"help": "question_mark,[/]"}))
    query_file = tmp_path / "q.json"
    query_file.write_text(json.dumps({"terms": [{"kind": "image", "weight": 1,
                                                 "path": str(hostile_index.parent / "images" / HOSTILE[2])}]}))
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    app = MemeApp(Session.open(hostile_index, device="cpu"), graphics="halfblock", query_file=query_file,
                  restore_history=False)
    said = record_notifications(app)
    async with app.run_test(size=(160, 50)) as pilot:
        for _ in range(400):
            await pilot.pause(0.01)
            if app.results_shown:
                break
        grid = app.query_one(ResultGrid)
        root = hostile_index.parent / "images"
        assert {root / name for name in HOSTILE} <= {t.path for t in grid.tiles}
        views = [v for v in grid.query(TileView) if v.tile is not None]
        shown = "\n".join(v.render_line(v.image_height).text for v in views)
        for name in HOSTILE:  # the tile's name line (the file name, cut to the tile width)
            assert terminal_safe(Path(name).name)[:8] in shown
        assert "\x1b" not in shown and "\u202e" not in shown
        await pilot.press("tab")
        for index, tile in enumerate(grid.tiles):
            if tile.path.relative_to(root).as_posix() not in HOSTILE:
                continue
            grid.cursor = index
            await pilot.press("y", "o", "enter")
            for _ in range(200):
                await pilot.pause(0.01)
                if isinstance(app.screen, DetailScreen):
                    break
            assert isinstance(app.screen, DetailScreen)
            detail = str(app.screen.query_one("#detail-info").query_one("Static").render())
            assert terminal_safe(str(tile.path)) in detail and "\x1b" not in detail
            await pilot.press("escape")
            text = "\n".join(message for message, _ in said)
            assert f"copied {terminal_safe(tile.path.name)}" in text
            assert f"no display: {terminal_safe(str(tile.path))}" in text and "\x1b" not in text
        assert app.is_running and app.return_code is None  # `o` on [@click=app.quit] did not quit
        await pilot.press("slash", *'cat [link="]', "enter", "b")
        await pilot.press("question_mark")
        for _ in range(200):
            await pilot.pause(0.01)
            if type(app.screen).__name__ == "HelpScreen":
                break
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        bar = str(app.query_one(QueryBar).query_one("#query-text").render())
        assert "\x1b" not in bar
    assert app.return_code in (None, 0)
    assert said and not any(markup for _, markup in said)  # data is never read as markup
    assert any("bookmarked: " in message and '[link="]' in message for message, _ in said)
