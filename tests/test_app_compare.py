"""Pilot tests of compare: side by side + overlay on t, linked cursor, gap table, live compare."""

import numpy as np
import pytest

from app_fixtures import (  # noqa: F401 - fixtures
    ee_run, gd_run, runs_root, screen_text, settle, start_writer, wait_for_rows, wait_until,
)
from engine.errors import EosError
from eos_tui.app import build_app, run_compare
from eos_tui.app.compare import common_range, gap_rows
from eos_tui.app.screens.compare import CompareScreen
from eos_tui.app.screens.modals import ConfirmQuit
from eos_tui.app.series import RunData
from eos_tui.app.widgets.plot import SeriesPlot
from textual.widgets import DataTable

SIZE = (160, 48)


async def test_compare_cursor_and_gap_table(gd_run, ee_run):
    app = build_app("compare", [gd_run, ee_run])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        s = app.screen
        assert isinstance(s, CompareScreen)
        lo, hi = common_range(s.a, s.b)
        assert s.cursor_t() == pytest.approx(hi)
        text = screen_text(app)
        assert "vs 2/η" not in text  # titles carry the values at the cursor instead
        assert "2/η=" in text and "2/τ=" in text and "loss A vs B against t" in text
        assert all(p.redraws for p in s.query(SeriesPlot))
        table = s.query_one("#gap", DataTable)
        assert table.row_count >= 8
        await pilot.press("left", "left")
        await settle(pilot)
        assert s.cursor_t() == pytest.approx(lo + 0.98 * (hi - lo))
        assert f"cursor t = " in screen_text(app)
        # the highlighted row of the gap table is the cursor row, with values at that t
        row = table.get_row_at(table.cursor_row)
        assert str(row[0]) == "▶"
        await pilot.press("home")
        assert s.cursor_t() == pytest.approx(lo)
        await pilot.press("shift+right")
        assert s.cursor_t() == pytest.approx(lo + 0.1 * (hi - lo))
        await pilot.press("end", "l")
        assert s.ylog is False
        # both sharpness panels show the values at the cursor t
        await settle(pilot)
        t_text = screen_text(app)
        assert t_text.count("@t=") >= 2
        await pilot.press("space", "s")  # nothing live: only a notice
        await pilot.press("q")
    assert app.return_code == 0


def test_gap_rows_interpolate_on_common_t(gd_run, ee_run):
    from eos_tui.app.reader import read_loop

    a, b = RunData("a", gd_run), RunData("b", ee_run)
    for d in (a, b):
        read_loop(d, lambda m: None, lambda: False)
    lo, hi = common_range(a, b)
    rows = gap_rows(a, b, np.array([lo, (lo + hi) / 2]))
    ta, la = a.steps.column("t"), a.steps.column("loss")
    assert rows[0].a["loss"] == pytest.approx(np.interp(lo, ta, la))
    tb, lb = b.steps.column("t"), b.steps.column("loss")
    assert rows[1].b["loss"] == pytest.approx(np.interp((lo + hi) / 2, tb, lb))
    assert rows[1].diff("loss") == pytest.approx(rows[1].b["loss"] - rows[1].a["loss"])


def test_compare_a_run_with_itself_is_an_error(gd_run):
    with pytest.raises(EosError, match="itself"):
        run_compare(gd_run, gd_run)


async def test_live_compare_quit_stops_both(tmp_path):
    pa, pb = tmp_path / "a", tmp_path / "b"
    procs = [start_writer(pa, delay=0.02), start_writer(pb, delay=0.02)]
    try:
        wait_for_rows(pa, 3)
        wait_for_rows(pb, 3)
        app = build_app("compare", [pa, pb], live=True)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("space")
            assert (pa / "control").read_text().strip() == "pause" == (pb / "control").read_text().strip()
            await pilot.press("space")
            await pilot.press("q")
            await pilot.pause(0.1)
            assert isinstance(app.screen, ConfirmQuit)
            await pilot.press("y")
        assert (pa / "control").read_text().strip() == "stop" == (pb / "control").read_text().strip()
        for p in procs:
            p.wait(timeout=20)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
