"""The UI keeps handling keys while a writer runs flat out, and drawing cost does not grow with
run length (a 100k-row run is drawn from at most ~2×width points per series)."""

import asyncio
import time

import pytest

from app_fixtures import settle, synthetic_run, wait_until, writing_run
from eos_tui.app import build_app
from textual import events
from eos_tui.app.widgets.plot import SeriesPlot

SIZE = (160, 48)


async def test_keys_are_handled_while_a_writer_runs_flat_out(tmp_path):
    """20 key presses, each sent like a terminal would (not through Pilot.press, whose
    wait-for-idle measures the CPU of our reader/plot threads, not the UI), are all handled,
    in order, each within a generous bound, while the run grows and the plots keep redrawing."""
    path = tmp_path / "flat-out"
    with writing_run(path, rows=20) as proc:
        app = build_app("monitor", [path], live=True)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            s = app.screen
            rows0 = len(s.data.steps)
            redraws0 = sum(p.redraws for p in s.query(SeriesPlot))
            latencies = []
            for i in range(20):
                before = s.xaxis
                t0 = time.monotonic()
                app._driver.send_message(events.Key("x", "x"))  # noqa: SLF001 - as a terminal would
                while s.xaxis == before:
                    assert time.monotonic() - t0 < 10, f"key press {i} not handled within 10 s"
                    await asyncio.sleep(0.002)
                latencies.append(time.monotonic() - t0)
                await asyncio.sleep(0.05)
            assert len(latencies) == 20 and s.xaxis == "step"  # all 20 processed, in order
            latencies.sort()
            print(f"key latency: median {latencies[10] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms")
            assert latencies[10] < 1.0
            # the UI kept up with the data meanwhile
            await wait_until(pilot, lambda: len(s.data.steps) > rows0, what="new rows")
            await wait_until(pilot, lambda: sum(p.redraws for p in s.query(SeriesPlot)) > redraws0 + 5,
                             what="plots to redraw")
            assert s.updates_seen > 0
            await pilot.press("q")
            await pilot.press("y")
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def huge_run(tmp_path_factory):
    return synthetic_run(tmp_path_factory.mktemp("huge") / "huge", steps=100_000, snapshot_every=1000)


async def test_a_100k_row_run_is_drawn_from_a_bounded_number_of_points(huge_run):
    app = build_app("replay", [huge_run])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, timeout=60)
        s = app.screen
        assert len(s.data.steps) == 100_000
        for plot in s.query(SeriesPlot):
            assert plot.redraws >= 1
            n_lines = 6  # at most this many series in one panel here
            assert plot.points_drawn <= n_lines * 2 * plot.size.width, plot.id
        # seeking in a long run stays quick
        t0 = time.monotonic()
        await pilot.press("home", "end", "x", "x")
        await settle(pilot, timeout=60)
        assert time.monotonic() - t0 < 60


def test_a_view_change_cuts_the_rest_between_plot_builds_short():
    """The pause that paces rebuilds for new data ends as soon as a rebuild for a changed view
    (a key press) waits for its turn, and runs its course otherwise; a waiting rebuild is
    counted only while it waits."""
    import threading
    import time

    from eos_tui.app.widgets import plot

    done = threading.Event()
    rester = threading.Thread(target=lambda: (plot._rest(30.0), done.set()))
    rester.start()
    assert not done.wait(0.3)  # resting
    plot._count_urgent(+1)
    try:
        assert done.wait(10.0)  # cut short, long before its 30 s
    finally:
        plot._count_urgent(-1)
        rester.join()
    t0 = time.monotonic()
    plot._rest(0.2)  # nothing urgent: the full rest
    assert time.monotonic() - t0 >= 0.19
    with plot._build_turn(urgent=True):  # counted while waiting, not once its turn has come
        assert plot._urgent_waiting == 0 and plot._BUILD_LOCK.locked()
    assert not plot._BUILD_LOCK.locked()
