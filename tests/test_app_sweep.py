"""Pilot tests of the live sweep screen: the grid of runs, progress, the power-law plot updated as
runs finish, `enter` opens a run's monitor, quitting stops only a sweep this session started."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app_fixtures import screen_text, start_writer, wait_until
from engine.store import RunWriter
from eos_tui.app import build_app
from eos_tui.app.app import EosApp
from eos_tui.app.screens.modals import ConfirmQuit
from eos_tui.app.screens.sweep import SweepRunMonitor, SweepScreen, powerlaw_figure
from sweep_fixtures import synthetic_sweep
from textual.widgets import DataTable

SIZE = (170, 48)
LIVE = "size=800/init=0/subset=1"
LATE = "size=100/init=0/subset=1"


@pytest.fixture
def live_sweep(tmp_path):
    root = synthetic_sweep(tmp_path / "s", missing=(LIVE, LATE))
    proc = start_writer(root / LIVE, delay=0.05, snapshot_every=5)
    yield root
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def finish_late_run(root) -> None:
    """The pending run starts and finishes (as a worker would write it)."""
    meta = {"name": LATE, "preset": "dice-quick-ee", "solver": "ee", "criterion": "ce", "dataset": "dice",
            "n_train": 100, "num_eigs": 2, "depth": 3}
    w = RunWriter.create(root / LATE, config={"preset": "dice-quick-ee"}, meta=meta, num_eigs=2,
                         heartbeat_interval=None)
    w.append_steps([{"step": s, "t": 0.3 * s, "loss": 1.0 / (1 + s), "tau": 0.3, "threshold": 6.7,
                     "wall_s": 0.1 * s, "lambda_H": [6.0, 1.0]} for s in range(30)])
    w.append_snapshot(20, {"P_1": 0.002 * 100 ** 0.4})
    w.close("finished", "reached max_steps=30")


def cells(table: DataTable) -> dict[str, list[str]]:
    """Row cells by run (``size=D/init=i/subset=j``), from the state column on."""
    out = {}
    for i in range(table.row_count):
        row = [str(c) for c in table.get_row_at(i)]
        out[f"size={row[0]}/init={row[1]}/subset={row[2]}"] = row[2:]
    return out


async def test_grid_progress_and_the_fit_as_runs_finish(live_sweep):
    app = build_app("sweep", [live_sweep])
    async with app.run_test(size=SIZE) as pilot:
        s = app.screen
        assert isinstance(s, SweepScreen)
        table = s.query_one("#runs", DataTable)
        await wait_until(pilot, lambda: table.row_count == 8, what="runs listed")
        rows = cells(table)
        assert rows[LATE][1] == "pending" and rows[LIVE][1] == "running"
        assert rows["size=400/init=0/subset=0"][1:3] == ["finished", "30/30"] and "100%" in rows["size=400/init=0/subset=0"][3]
        plot = s.query_one("#powerlaw")
        await wait_until(pilot, lambda: plot.redraws >= 1, what="power-law plot drawn")
        assert s.status.analysis.fit.n == 6
        text = screen_text(app)
        for needle in ("8 runs: 1 pending, 1 running, 6 finished", "max P¹ ∝ D^", "fit: max P¹ ≈", "R²",
                       "log10 D", "client: none"):
            assert needle in text, needle
        # the live run's step advances in the grid
        def live_step() -> int:
            text = cells(table)[LIVE][2]
            return -1 if text == "-" else int(text.split("/")[0])

        await wait_until(pilot, lambda: live_step() >= 0, what="live run's first rows")
        first = live_step()
        await wait_until(pilot, lambda: live_step() > first + 5, what="live run advancing")
        # a pending run finishes: its row, the counts and the fit follow
        finish_late_run(live_sweep)
        await wait_until(pilot, lambda: cells(table)[LATE][1] == "finished", what="late run finished")
        await wait_until(pilot, lambda: s.status.analysis.fit.n == 7, what="fit over 7 runs")
        await wait_until(pilot, lambda: "7 finished" in screen_text(app), what="summary updated")


async def test_enter_opens_the_run_monitor_and_escape_returns(live_sweep):
    app = build_app("sweep", [live_sweep])
    async with app.run_test(size=SIZE) as pilot:
        s = app.screen
        table = s.query_one("#runs", DataTable)
        await wait_until(pilot, lambda: table.row_count == 8 and s.status is not None, what="runs listed")
        keys = list(cells(table))
        table.move_cursor(row=keys.index(LATE))
        await pilot.press("enter")  # pending: nothing to open
        await pilot.pause(0.1)
        assert app.screen is s
        table.move_cursor(row=keys.index(LIVE))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, SweepRunMonitor), what="monitor opened")
        assert app.screen.data.path == live_sweep / LIVE
        await pilot.press("escape")
        assert app.screen is s


async def test_p_saves_the_power_law_panel_as_shown(live_sweep):
    """`p` on the sweep screen: PNG + SVG + CSV of the panel into SWEEP/figures/, the CSV holding
    exactly the finished runs' points the panel draws (log10 D, log10 max P^1)."""
    import csv

    import numpy as np

    app = build_app("sweep", [live_sweep])
    async with app.run_test(size=SIZE) as pilot:
        s = app.screen
        await wait_until(pilot, lambda: s.status is not None and s.status.analysis.fit is not None, what="fit")
        n = len(s.saved_figures)
        await pilot.press("p")
        await wait_until(pilot, lambda: len(s.saved_figures) > n, timeout=60, what="the saved figure")
        files = s.saved_figures[-1]
        assert {f.suffix for f in files} == {".png", ".svg", ".csv"}
        assert all(f.parent == live_sweep / "figures" and f.stat().st_size > 50 for f in files)
        assert files[0].name.startswith("sweep-powerlaw-")
        csv_path = next(f for f in files if f.suffix == ".csv")
        rows = [r for r in csv.DictReader(open(csv_path)) if r["series"] == "finished runs"]
        expected = sorted((r.n_train, r.max_P1) for r in s.status.analysis.included)
        np.testing.assert_allclose(sorted((float(r["x"]), float(r["y"])) for r in rows),
                                   np.log10(np.array(expected, dtype=float)), rtol=1e-12)


async def test_quit_asks_before_stopping_a_sweep_of_this_session(tmp_path):
    root = synthetic_sweep(tmp_path / "s", sizes=(100, 200), seeds=1)
    client = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        app = EosApp(lambda: SweepScreen(root, process=client))
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: app.screen.redraws >= 1, what="first scan shown")
            assert "client: running (this session)" in screen_text(app)
            await pilot.press("q")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmQuit), what="confirmation")
            await pilot.press("n")
            assert isinstance(app.screen, SweepScreen) and client.poll() is None
            await pilot.press("q")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmQuit), what="confirmation")
            await pilot.press("y")
        assert client.wait(timeout=10) is not None  # SIGTERM: the client stops its runs
    finally:
        if client.poll() is None:
            client.kill()


async def test_watching_a_sweep_quits_without_asking(tmp_path):
    root = synthetic_sweep(tmp_path / "s", sizes=(100, 200), seeds=1)
    app = build_app("sweep", [root])
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.screen.redraws >= 1, what="first scan shown")
        assert "done" in screen_text(app)
        await pilot.press("q")
        await pilot.pause(0.1)
    assert app.return_code == 0


def test_powerlaw_figure_lines(tmp_path):
    from engine.sweep.status import SweepScanner

    status = SweepScanner(synthetic_sweep(tmp_path / "s")).scan()
    fig = powerlaw_figure(status)
    labels = [line.label for line in fig.lines]
    assert labels[0] == "finished runs" and "median per size" in labels and labels[-1] == "paper slope 0.23"
    fit_line = next(line for line in fig.lines if line.label.startswith("fit"))
    fit = status.analysis.fit
    assert fit_line.y[1] - fit_line.y[0] == pytest.approx(fit.c2 * (fit_line.x[1] - fit_line.x[0]))
    assert fig.title.startswith(f"max P¹ ∝ D^{fit.c2:.3f}") and "R²" in fig.title


@pytest.mark.slow
async def test_a_sweep_started_from_the_screen_runs_to_the_end(tmp_path):
    """`eos-tui sweep` with the UI: the client runs in its own process (engine.launch.spawn_sweep)
    and the screen follows the sweep directory until every run finished."""
    from engine.launch import spawn_sweep
    from engine.sweep.manifest import write_manifest
    from engine.sweep.plan import make_plan
    from sweep_fixtures import TINY_SWEEP_SETS

    sweep = tmp_path / "ui"
    sets = [s for s in TINY_SWEEP_SETS if not s.startswith("train.max_steps")] + ["train.max_steps=25"]
    write_manifest(sweep, make_plan("dice-quick-ee", sizes=[40, 80], init_seeds=1, subset_seeds=1, sets=sets))
    client = spawn_sweep(sweep, workers=1)
    try:
        app = EosApp(lambda: SweepScreen(sweep, process=client, poll=0.25))
        async with app.run_test(size=SIZE) as pilot:
            s = app.screen
            await wait_until(pilot, lambda: s.status is not None and s.status.done, timeout=240, what="sweep done")
            await wait_until(pilot, lambda: client.poll() is not None, timeout=60, what="client exited")
            await wait_until(pilot, lambda: "2 finished" in screen_text(app) and "client: finished" in screen_text(app),
                             what="final state shown")
            log = s.query_one("#journal")
            await wait_until(pilot, lambda: log.line_count == 2, what="journal lines")
            await pilot.press("q")  # the client has ended: no question
        assert client.returncode == 0
    finally:
        if client.poll() is None:
            client.kill()
