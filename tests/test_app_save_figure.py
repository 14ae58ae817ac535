"""The `p` key: saves what the screen shows (PNG + SVG + CSV in the run's figures/ folder) off the UI
thread — in the monitor while a run is being written, in replay over the playhead's range, in
compare, and in any screen that implements `figure_for_view`."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from textual.app import App

from app_fixtures import (  # noqa: F401 - fixtures
    ee_run, gd_run, runs_root, screen_text, settle, synthetic_run, wait_until, wait_for_rows, writing_run,
)
from engine.figures.panel import Line, Panel, PanelFigure
from engine.store import open_run
from eos_tui.app import build_app
from eos_tui.app.screens.help import screen_bindings
from eos_tui.app.screens.save import FigureRequest, SavesFigure

SIZE = (160, 48)


def assert_valid(files: list[Path]) -> None:
    by_ext = {p.suffix: p for p in files}
    assert set(by_ext) == {".png", ".svg", ".csv"}
    assert by_ext[".png"].read_bytes()[:4] == b"\x89PNG" and b"<svg" in by_ext[".svg"].read_bytes()[:400]
    assert by_ext[".png"].stat().st_size > 1000 and by_ext[".csv"].stat().st_size > 50


async def save(pilot, screen, timeout: float = 60.0) -> list[Path]:
    n = len(screen.saved_figures)
    await pilot.press("p")
    await wait_until(pilot, lambda: len(screen.saved_figures) > n, timeout=timeout, what="the saved figure")
    return screen.saved_figures[-1]


def csv_series(path: Path, series: str) -> tuple[np.ndarray, np.ndarray]:
    rows = [r for r in csv.DictReader(open(path.with_suffix(".csv"))) if r["series"] == series]
    return np.array([float(r["x"]) for r in rows]), np.array([float(r["y"]) for r in rows])


async def test_p_saves_the_monitor_view_while_the_run_is_written(tmp_path):
    path = tmp_path / "live"
    with writing_run(path, delay=0.01, rows=5):
        app = build_app("monitor", [path], live=False)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            rows_before = len(screen.data.steps)
            files = await save(pilot, screen)
            said = " ".join(n.message for n in app._notifications)  # noqa: SLF001
            assert f"saved {files[0].name}" in said and str(path / "figures") in said
            assert files[0].parent == path / "figures" and files[0].name.startswith("monitor-step")
            assert_valid(files)
            # the run went on meanwhile, and the saved view is the store's series up to its step
            assert wait_for_rows(path, rows_before + 20) >= rows_before + 20
            x, y = csv_series(files[0], "λ1(H)")
            with open_run(path) as run:
                steps = run.steps()
            keep = steps["step"] <= x[-1]
            lam = steps["lambda_H_1"][keep]
            np.testing.assert_array_equal(y, lam[np.isfinite(lam)])
            app.exit(0)


async def test_p_in_replay_saves_the_playheads_range_and_never_overwrites(gd_run):
    app = build_app("replay", [gd_run])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        await pilot.press("home", *["right"] * 14)
        await settle(pilot)
        shown = screen.data.steps.column("step", screen.stop_rows())
        first = await save(pilot, screen)
        second = await save(pilot, screen)
        assert first[0].name == f"replay-step{int(shown[-1])}.png" and second[0].name.endswith("-2.png")
        assert_valid(first)
        x, _ = csv_series(first[0], "λ1(H)")
        assert x.max() <= shown[-1]
        x, y = csv_series(first[0], "λ1(G)")  # snapshots up to the playhead only
        with open_run(gd_run) as run:
            snaps = run.snapshots()
        keep = snaps["step"] <= shown[-1]
        np.testing.assert_array_equal(y, snaps["lambda_G1"][keep])
        app.exit(0)


async def test_p_in_compare_saves_into_run_a(runs_root):
    a, b = runs_root / "gd", runs_root / "ee"
    app = build_app("compare", [a, b])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        files = await save(pilot, app.screen)
        assert files[0].parent == a / "figures" and files[0].name.startswith("compare-ee-t")
        assert_valid(files)
        rows = list(csv.DictReader(open(files[-1])))
        assert {"loss A vs B against t (log)", "gap at equal t (B − A), interpolated onto common t"} <= {
            r["panel"] for r in rows}
        app.exit(0)


class Sweepish(SavesFigure):
    """What a new screen needs for `p`: one method."""

    def __init__(self, folder: Path, build) -> None:
        super().__init__()
        self.folder, self.build = folder, build

    def figure_for_view(self) -> FigureRequest:
        return FigureRequest(self.folder, "sweep", self.build)


class One(App):
    def __init__(self, screen) -> None:
        super().__init__()
        self._screen = screen

    def on_mount(self) -> None:
        self.push_screen(self._screen)


async def test_any_screen_gets_p_by_implementing_figure_for_view(tmp_path):
    panel = Panel("a panel", "step", [Line(np.arange(5.0), np.arange(5.0) ** 2, "y", "red")])
    picklable = PanelFigure([panel], "a sweep")
    for name, build in (("process", picklable), ("thread", lambda: picklable())):  # a lambda renders in-thread
        screen = Sweepish(tmp_path / name, build)
        app = One(screen)
        async with app.run_test(size=(100, 30)) as pilot:
            files = await save(pilot, screen)
            assert_valid(files)
            x, y = csv_series(files[0], "y")
            assert y.tolist() == [0.0, 1.0, 4.0, 9.0, 16.0]
            assert ("p", "save figure") in screen_bindings(screen)


async def test_a_failed_save_is_a_notification_not_a_crash(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    screen = Sweepish(tmp_path / "file" / "figs", PanelFigure([], "nothing"))
    app = One(screen)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("p")
        await wait_until(pilot, lambda: screen.saving == 0 and app._notifications, what="notification")  # noqa: SLF001
        assert "cannot save the figure" in " ".join(n.message for n in app._notifications)  # noqa: SLF001
        assert app.is_running
