"""Pilot tests of the live monitor: panels, every key, engine control and quitting a live run."""

from pathlib import Path

import pytest

from app_fixtures import (  # noqa: F401 - fixtures
    ee_run, gd_run, runs_root, screen_text, settle, spawn_real_training, writing_run,
    wait_until,
)
from engine.store import open_run
from eos_tui.app import build_app
from eos_tui.app.screens.help import HelpScreen
from eos_tui.app.screens.metrics import MetricsScreen
from eos_tui.app.screens.modals import ConfirmQuit
from eos_tui.app.screens.monitor import MonitorScreen
from eos_tui.app.widgets.factors import FactorTable
from eos_tui.app.widgets.header import EE_NOTE
from eos_tui.app.widgets.plot import SeriesPlot

SIZE = (160, 48)


def control_word(path: Path) -> str:
    f = Path(path) / "control"
    return f.read_text().strip() if f.exists() else "run"


async def test_monitor_shows_a_finished_run(gd_run):
    app = build_app("monitor", [gd_run], live=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, MonitorScreen)
        text = screen_text(app)
        assert "status finished" in text
        assert "sharpness λ1(H) vs 2/η" in text
        assert "training loss (log)" in text and "layer 1/" in text
        plots = list(screen.query(SeriesPlot))
        assert len(plots) == 5 and all(p.redraws >= 1 for p in plots)
        assert all(p.points_drawn <= 2 * p.size.width + 8 for p in plots)
        assert screen.query_one(FactorTable).row_count == 6
        # a finished run: space/s only explain, q quits without asking
        await pilot.press("space", "s")
        assert control_word(gd_run) == "run"
        await pilot.press("q")
    assert app.return_code == 0


async def test_view_keys(gd_run):
    app = build_app("monitor", [gd_run], live=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        s = app.screen
        sharp = s.query_one("#sharpness", SeriesPlot)
        before = sharp.redraws
        await pilot.press("x")
        await settle(pilot)
        assert s.xaxis == "t" and sharp.redraws > before
        assert "t (gradient-flow time)" in screen_text(app)
        await pilot.press("x", "l")
        await settle(pilot)
        assert s.xaxis == "step" and s.ylog is False
        assert "training loss (linear)" in screen_text(app)
        depth = s.data.depth
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert s.layer_i == 2 and f"layer 2/{depth}" in screen_text(app)
        await pilot.press("left_square_bracket", "left_square_bracket")
        assert s.layer_i == depth  # wraps around
        await pilot.press("e")
        await settle(pilot)
        assert s.extra_eigs and f"top-{s.data.num_eigs} eigenvalues" in screen_text(app)
        await pilot.press("m")
        await pilot.pause(0.2)
        assert isinstance(app.screen, MetricsScreen)
        assert "snapshot metrics at step" in screen_text(app)
        await pilot.press("escape")
        assert app.screen is s
        await pilot.press("question_mark")
        await pilot.pause(0.1)
        assert isinstance(app.screen, HelpScreen)
        help_text = screen_text(app)
        for key in ("space", "pause/resume", "stop", "x: step/t", "log loss", "layer", "top-k", "metrics", "quit"):
            assert key in help_text
        await pilot.press("escape")
        assert app.screen is s


async def test_ee_run_shows_tau_threshold_and_note(ee_run):
    app = build_app("monitor", [ee_run], live=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        text = screen_text(app)
        assert "vs 2/τ" in text and EE_NOTE in text
        assert "step size τ against t" in text


@pytest.fixture
def live_writer(tmp_path):
    path = tmp_path / "live"
    with writing_run(path, delay=0.01, rows=5) as proc:
        yield path, proc


async def test_live_pause_resume_stop(live_writer):
    path, proc = live_writer
    app = build_app("monitor", [path], live=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        s = app.screen
        n0 = len(s.data.steps)
        await wait_until(pilot, lambda: len(s.data.steps) > n0 + 5, what="live rows")
        await pilot.press("space")
        assert control_word(path) == "pause"
        await wait_until(pilot, lambda: "paused" in screen_text(app), what="paused status")
        await pilot.press("space")
        assert control_word(path) == "run"
        await pilot.press("s")
        assert control_word(path) == "stop"
        proc.wait(timeout=20)
        await wait_until(pilot, lambda: s.data.status == "interrupted", what="interrupted")
        await settle(pilot)
        assert "status interrupted" in screen_text(app)
        await pilot.press("q")  # nothing live any more: no question
    assert app.return_code == 0


@pytest.fixture
def real_training(tmp_path):
    """The real engine training a tiny run in its own process (killed at teardown)."""
    path = tmp_path / "real-live"
    proc = spawn_real_training(path)
    yield path, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


async def test_quit_during_real_training_asks_then_stops(real_training):
    """The real engine: quitting asks; 'n' keeps watching; 'y' sends stop, the engine ends the
    run 'interrupted' with its rows kept."""
    path, proc = real_training
    app = build_app("monitor", [path], live=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await pilot.pause(0.1)
        assert isinstance(app.screen, ConfirmQuit)
        assert "Training is still running" in screen_text(app)
        await pilot.press("n")  # keep watching
        await pilot.pause(0.1)
        assert isinstance(app.screen, MonitorScreen) and app.is_running
        assert control_word(path) == "run"
        await pilot.press("q")
        await pilot.pause(0.1)
        await pilot.press("y")
        await pilot.pause(0.1)
    assert app.return_code == 0
    assert control_word(path) == "stop"
    proc.wait(timeout=60)
    with open_run(path) as run:
        assert run.status == "interrupted" and not run.crashed and run.num_steps() > 0


async def test_a_view_key_redraws_at_once_and_starts_every_panel_it_changes(gd_run):
    """The key's own handler repaints the header and starts the rebuild of all four panels
    drawn against the x axis, more than the per-tick cap on rebuilds for new data, without
    waiting for the redraw timer."""
    from eos_tui.app.screens.base import MAX_PLOTS_PER_TICK
    from eos_tui.app.widgets.header import RunHeader

    app = build_app("monitor", [gd_run], live=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        s = app.screen
        x_panels = [s.query_one(f"#{name}", SeriesPlot) for name in ("sharpness", "loss", "layer", "curvature")]
        assert len(x_panels) > MAX_PLOTS_PER_TICK
        s.action_toggle_x()  # no await: nothing else has run since the key
        assert "x: t " in str(s.query_one(RunHeader)._shown)
        assert all(p._signature[0][0] == "t" for p in x_panels)  # each rebuild has started
        await settle(pilot)
        assert all(p.drawn_view[0] == "t" for p in x_panels)
