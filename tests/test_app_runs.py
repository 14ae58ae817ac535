"""Pilot tests of the run browser: columns, sorting, filtering, replay on Enter, compare by marks."""

import os
import shutil
import time

import pytest

from app_fixtures import gd_run, runs_root, screen_text, settle, synthetic_run, wait_until  # noqa: F401
from engine.errors import EosError
from eos_tui.app import build_app, run_browser
from eos_tui.app.screens.compare import CompareScreen
from eos_tui.app.screens.replay import ReplayScreen
from eos_tui.app.screens.runs import RunsScreen
from textual.widgets import DataTable

SIZE = (160, 40)


@pytest.fixture(scope="module")
def browse_root(tmp_path_factory, runs_root):
    root = tmp_path_factory.mktemp("browse")
    for name in ("gd", "ee"):
        shutil.copytree(runs_root / name, root / name)
    synthetic_run(root / "zz-long", steps=300, name="zz-long")
    bad = root / "broken"
    bad.mkdir()
    (bad / "run.json").write_text("{not json")
    (bad / "metrics.sqlite").write_bytes(b"garbage")
    settled = time.time() - 10  # an unreadable run is judged corrupt once its files settle
    for p in [bad, *bad.iterdir()]:
        os.utime(p, (settled, settled))
    return root


def names(table: DataTable) -> list[str]:
    return [str(table.get_row_at(i)[1]) for i in range(table.row_count)]


async def test_table_sort_filter(browse_root):
    app = build_app("browser", [browse_root])
    async with app.run_test(size=SIZE) as pilot:
        s = app.screen
        assert isinstance(s, RunsScreen)
        table = s.query_one("#runs", DataTable)
        await wait_until(pilot, lambda: table.row_count == 4, what="runs listed")
        # the rows are in the table before the next repaint shows them
        await wait_until(pilot, lambda: "corrupt" in screen_text(app), what="rows painted")
        text = screen_text(app)
        for col in ("status", "preset", "solver", "steps", "final loss", "max λ1", "max P^1", "started"):
            assert col in text
        assert "corrupt" in text and "finished" in text
        # sort by name via the header, then reverse with r
        s.sort_key = "steps"
        await pilot.press("o")  # next sortable column after steps: t
        assert s.sort_key == "t"
        await pilot.click("#runs", offset=(6, 0))  # header of the "run" column
        await pilot.pause(0.1)
        assert s.sort_key == "name" and names(table) == sorted(names(table))
        await pilot.press("r")
        assert names(table) == sorted(names(table), reverse=True)
        # filter
        await pilot.press("slash", "e", "e")
        await pilot.pause(0.1)
        assert names(table) == ["ee"]
        await pilot.press("backspace", "backspace", "escape")
        await pilot.pause(0.1)
        assert table.row_count == 4 and table.has_focus
        # R re-reads the folder (a new run appears)
        synthetic_run(browse_root / "new-run", steps=15, name="new-run")
        await pilot.press("R")
        await wait_until(pilot, lambda: table.row_count == 5, what="reload")
        assert "new-run" in names(table)
        shutil.rmtree(browse_root / "new-run")


async def listed_by_name(pilot, app) -> tuple:
    """The browser screen and its table once the four runs are listed, sorted by name."""
    s = app.screen
    table = s.query_one("#runs", DataTable)
    await wait_until(pilot, lambda: table.row_count == 4, what="runs listed")
    s.sort_key, s.sort_desc = "name", False
    s.populate()
    return s, table


async def test_enter_replays_and_escape_returns(browse_root):
    app = build_app("browser", [browse_root])
    async with app.run_test(size=SIZE) as pilot:
        s, table = await listed_by_name(pilot, app)
        assert names(table)[0] == "broken"
        await pilot.press("enter")  # a corrupt run: message, no replay
        await pilot.pause(0.1)
        assert app.screen is s
        await pilot.press("down", "enter")
        await settle(pilot)
        assert isinstance(app.screen, ReplayScreen) and app.screen.data.path.name == "ee"
        await pilot.press("escape")
        assert app.screen is s


async def test_two_marks_open_compare(browse_root):
    app = build_app("browser", [browse_root])
    async with app.run_test(size=SIZE) as pilot:
        s, table = await listed_by_name(pilot, app)
        await pilot.press("down", "c")
        assert len(s.marked) == 1 and "✓" in screen_text(app)
        await pilot.press("c")  # unmark
        assert s.marked == []
        await pilot.press("c", "down", "c")
        await settle(pilot)
        assert isinstance(app.screen, CompareScreen)
        assert {app.screen.a.path.name, app.screen.b.path.name} == {"ee", "gd"}
        await pilot.press("escape")
        assert app.screen is s and s.marked == []


def test_browser_of_missing_folder_is_an_error(tmp_path):
    with pytest.raises(EosError, match="does not exist"):
        run_browser(tmp_path / "nope")
