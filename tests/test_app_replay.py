"""Pilot tests of replay: play/pause, speed, seek, go-to, follow, and a killed writer."""

import os
import signal

from app_fixtures import (  # noqa: F401 - fixtures
    gd_run, runs_root, screen_text, settle, spawn_real_training, wait_until, writing_run,
)
from engine.store import open_run
from eos_tui.app import build_app
from eos_tui.app.screens.modals import GotoStep
from eos_tui.app.screens.replay import SPEEDS, ReplayScreen

SIZE = (160, 48)


async def test_replay_keys(gd_run):
    with open_run(gd_run) as run:
        steps = run.steps(columns=["step"])["step"]
    n, last = len(steps), int(steps[-1])
    app = build_app("replay", [gd_run])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        s = app.screen
        assert isinstance(s, ReplayScreen)
        assert s.shown_rows() == n and f"step {last}/{last}" in screen_text(app)
        await pilot.press("home")
        await settle(pilot)
        assert s.shown_rows() == 1 and f"step {int(steps[0])}/{last}" in screen_text(app)
        await pilot.press("right", "right")
        assert s.shown_rows() == 3
        await pilot.press("left")
        assert s.shown_rows() == 2
        await pilot.press("pagedown")
        assert s.shown_rows() == min(102, n)
        await pilot.press("pageup")
        assert s.shown_rows() == 1
        # speed
        i0 = s.speed_i
        await pilot.press("plus", "plus")
        assert s.speed_i == i0 + 2
        await pilot.press("minus")
        assert s.speed_i == i0 + 1
        for _ in range(20):
            await pilot.press("minus")
        assert SPEEDS[s.speed_i] == 1
        for _ in range(20):
            await pilot.press("plus")
        assert SPEEDS[s.speed_i] == 1000
        # play from the start at ×1000: reaches the end and stops
        await pilot.press("home")
        assert s.shown_rows() == 1
        await pilot.press("space")
        await wait_until(pilot, lambda: not s.playing, what="playback to finish")
        assert s.shown_rows() == n
        # pause in the middle
        await pilot.press("minus", "minus", "minus", "minus", "minus", "minus", "minus", "minus", "minus")
        assert SPEEDS[s.speed_i] == 1
        await pilot.press("home", "space")
        await pilot.pause(0.3)
        await pilot.press("space")
        assert not s.playing and 1 <= s.shown_rows() < n
        await settle(pilot)
        assert "⏸ paused" in screen_text(app)
        # go to a step
        target = int(steps[n // 2])
        await pilot.press("g")
        await pilot.pause(0.1)
        assert isinstance(app.screen, GotoStep)
        await pilot.press(*str(target), "enter")
        await pilot.pause(0.1)
        assert app.screen is s and int(steps[s.shown_rows() - 1]) == target
        await pilot.press("end")
        assert s.shown_rows() == n
        # follow toggles
        await pilot.press("f")
        assert s.follow and s.stop_rows() is None
        await pilot.press("f")
        assert not s.follow


async def test_follow_a_run_being_written(tmp_path):
    path = tmp_path / "growing"
    with writing_run(path, delay=0.02, rows=3):
        app = build_app("replay", [path], follow=True)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            s = app.screen
            first = s.shown_rows()
            await wait_until(pilot, lambda: s.shown_rows() > first + 10, what="follow to advance")
            assert "● follow" in screen_text(app) and "still being written" in screen_text(app)
            await pilot.press("f")  # stop following: the playhead stays put
            held = s.shown_rows()
            await pilot.pause(0.5)
            assert s.shown_rows() == held < len(s.data.steps)


async def test_replay_of_a_killed_run(tmp_path):
    """SIGKILL the real engine mid-run: the replay shows its last committed step, 'interrupted'."""
    path = tmp_path / "killed"
    proc = spawn_real_training(path, min_rows=8)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with open_run(path) as run:
        last = run.last_step()
        assert run.status == "interrupted" and run.crashed
    app = build_app("replay", [path])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        s = app.screen
        assert int(s.data.steps.column("step")[-1]) == last
        text = screen_text(app)
        assert "crashed/interrupted" in text
        assert f"step {last}/{last}" in text
        assert f"last committed step {last}" in text
