"""Snapshot tests (pytest-textual-snapshot) of every screen, at a fixed terminal size, from the
fixed tiny real run of ``app_fixtures`` (its wall-clock fields are normalised).

Update after an intended change with ``pytest tests/test_app_snapshots.py --snapshot-update``.
The tiny run is trained by the engine, so a change to the engine's numerics also changes these.
"""

import shutil

import pytest

from app_fixtures import ee_run, gd_run, runs_root, settle  # noqa: F401 - fixtures
from eos_tui.app import build_app

SIZE = (160, 48)


def before(*keys: str, setup=None):
    """Settle, apply ``setup(screen)`` (state that many key presses would reach), press keys."""

    async def run_before(pilot) -> None:
        await settle(pilot)
        if setup is not None:
            setup(pilot.app.screen)
            pilot.app.screen.mark_dirty()
            await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
        pilot.app.clear_notifications()
        await pilot.pause()

    return run_before


def test_snapshot_monitor(snap_compare, gd_run):
    assert snap_compare(build_app("monitor", [gd_run]), terminal_size=SIZE, run_before=before())


def test_snapshot_monitor_ee_topk_time_axis(snap_compare, ee_run):
    app = build_app("monitor", [ee_run])
    assert snap_compare(app, terminal_size=SIZE, run_before=before("e", "x", "right_square_bracket"))


def test_snapshot_replay_midway(snap_compare, gd_run):
    app = build_app("replay", [gd_run])
    assert snap_compare(app, terminal_size=SIZE, run_before=before(setup=lambda s: s.seek_step(19)))


def test_snapshot_compare(snap_compare, gd_run, ee_run):
    def cursor(screen):
        screen.frac = 0.7

    app = build_app("compare", [gd_run, ee_run])
    assert snap_compare(app, terminal_size=SIZE, run_before=before(setup=cursor))


@pytest.fixture
def browse_cwd(runs_root, tmp_path, monkeypatch):
    root = tmp_path / "runs"
    for name in ("gd", "ee"):
        shutil.copytree(runs_root / name, root / name)
    monkeypatch.chdir(tmp_path)  # the browser shows the folder relative to the working directory
    return root


def test_snapshot_runs(snap_compare, browse_cwd):
    async def run_before(pilot):
        from app_fixtures import wait_until

        table = pilot.app.screen.query_one("#runs")
        await wait_until(pilot, lambda: table.row_count == 2, what="runs")
        await pilot.press("c")
        await pilot.pause()

    assert snap_compare(build_app("browser", [browse_cwd]), terminal_size=(160, 20), run_before=run_before)


def test_snapshot_help(snap_compare, gd_run):
    assert snap_compare(build_app("replay", [gd_run]), terminal_size=SIZE, run_before=before("question_mark"))


def test_snapshot_metrics(snap_compare, gd_run):
    assert snap_compare(build_app("monitor", [gd_run]), terminal_size=(160, 30), run_before=before("m"))


def test_snapshot_terminal_too_small(snap_compare, gd_run):
    assert snap_compare(build_app("monitor", [gd_run]), terminal_size=(80, 24))
