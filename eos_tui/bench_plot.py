"""``plot``: `eos-tui plot RUN --figure all` on a 10k-step run, and the latency of the `p` key.

* **plot all**: a synthetic finished run of 10 000 steps (7 eigenvalues every step, depth 4,
  a snapshot every 100 steps: the shape of a long ``dice-quick-ee`` run) written with
  ``engine.store.RunWriter``; the command is timed as a user runs it, in a fresh interpreter
  (imports included), median over repeats; then the same figures in this process, one by one
  (render + write), with the rows of their CSVs.
* **p key**: the replay of that run, and the live monitor of a real training process written
  flat out (the ``ui`` benchmark's run), driven headless. Per press, as a terminal sends keys:
  ``p`` → its handler has started the save; ``p`` then ``x`` → the header shows the new axis
  (the keyboard is back); keys pressed every 100 ms while the figure renders → the header shows
  each; ``p`` → PNG, SVG and CSV written. The first press also starts the render process.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.bench.common import BenchResult, Stopwatch, median

from .bench_ui import SIZE, _stats, live_training, write_big_run

NAME = "plot"
DESCRIPTION = "eos-tui plot --figure all on a 10k-step run; p-key latency while a figure renders"
ROWS = 10_000
PLOT_TARGET_S = 5.0
KEY_TARGET_MS = 100.0


def _plot_all_command(run: Path, out: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of ``eos-tui plot RUN --figure all --out OUT`` in a fresh interpreter.
    The CPU seconds (user + system of the child) tell a busy machine from a slow command."""
    if out.exists():
        shutil.rmtree(out)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "eos_tui.cli", "plot", str(run), "--figure", "all",
                          "--out", str(out)], capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise RuntimeError(f"eos-tui plot failed: {res.stdout[-500:]} {res.stderr[-500:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _figures_in_process(run: Path, out: Path) -> list[dict]:
    from engine.analysis.series import load_views
    from engine.figures.output import save_figure
    from engine.figures.registry import FIGURES, make_figure
    from engine.figures.style import FigureError, plotted

    with Stopwatch() as sw:
        runs = load_views([run])
    rows = [{"figure": "(read the run)", "seconds": sw.seconds, "csv_rows": None, "drawn": None}]
    for name in FIGURES:
        with Stopwatch() as sw:
            try:
                fig = make_figure(name, runs)
            except FigureError:
                continue
            save_figure(fig, out / f"{name}.png")
        series = plotted(fig)
        drawn = sum(len(line.get_xdata()) for ax in fig.axes for line in ax.get_lines())
        rows.append({"figure": name, "seconds": sw.seconds, "csv_rows": sum(len(s.x) for s in series),
                     "drawn": drawn})
    return rows


async def _press_p(path: Path, kind: str, presses: int, wait_rows: int = 0) -> dict:
    from textual import events

    from eos_tui.app import build_app
    from eos_tui.app.widgets.header import RunHeader

    app = build_app(kind, [path], live=False) if kind == "monitor" else build_app(kind, [path])
    out = {"handled": [], "next_key": [], "during": [], "saved": []}
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        deadline = time.monotonic() + 120
        while (not screen.data.loaded or len(screen.data.steps) < wait_rows) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        header = screen.query_one(RunHeader)

        async def key_x() -> float:
            new_x = "t" if screen.xaxis == "step" else "step"
            t0 = time.perf_counter()
            app._driver.send_message(events.Key("x", "x"))  # noqa: SLF001 - as a terminal would
            limit = time.monotonic() + 10
            while f"x: {new_x} " not in str(getattr(header, "_shown", "")) and time.monotonic() < limit:
                await asyncio.sleep(0.001)
            return time.perf_counter() - t0

        for _ in range(presses):
            n = len(screen.saved_figures)
            t0 = time.perf_counter()
            app._driver.send_message(events.Key("p", "p"))  # noqa: SLF001
            while screen.saving == 0 and len(screen.saved_figures) == n and time.perf_counter() - t0 < 10:
                await asyncio.sleep(0.001)
            out["handled"].append(time.perf_counter() - t0)
            await key_x()
            out["next_key"].append(time.perf_counter() - t0)
            while len(screen.saved_figures) == n and time.perf_counter() - t0 < 120:
                await asyncio.sleep(0.1)
                if len(screen.saved_figures) == n:
                    out["during"].append(await key_x())
            out["saved"].append(time.perf_counter() - t0)
            await asyncio.sleep(0.3)
        app.exit(0)
        await pilot.pause()
    return out


def _p_rows(label: str, lat: dict) -> list[dict]:
    rows = [_stats(f"{label}: p → save started", lat["handled"]),
            _stats(f"{label}: p, then x → header shows x", lat["next_key"]),
            _stats(f"{label}: keys while the figure renders", lat["during"]),
            _stats(f"{label}: p → PNG + SVG + CSV written", lat["saved"])]
    for row in rows:
        row["first_s"] = None
    rows[-1]["first_s"] = lat["saved"][0] if lat["saved"] else None
    return rows


def run(quick: bool = False, console=None) -> dict:
    res = BenchResult(NAME, DESCRIPTION)
    repeats, presses = (1, 3) if quick else (3, 8)
    res.params = {"rows": ROWS, "num_eigs": 7, "depth": 4, "snapshot_every": 100, "repeats": repeats,
                  "presses": presses, "terminal": f"{SIZE[0]}×{SIZE[1]}"}
    tmp = Path(tempfile.mkdtemp(prefix="eos-bench-plot-"))
    try:
        big = tmp / "run10k"
        write_big_run(big, ROWS, num_eigs=7, depth=4, snapshot_every=100)
        runs = [_plot_all_command(big, tmp / "figs") for _ in range(repeats)]
        times = [wall for wall, _ in runs]
        n_figs = len(list((tmp / "figs").glob("*.png")))
        row = {"measure": f"eos-tui plot RUN --figure all ({ROWS} steps, {n_figs} figures)", "n": repeats,
               "median_s": median(times), "min_s": min(times), "max_s": max(times),
               "cpu_s": median([cpu for _, cpu in runs]), "load_1min": os.getloadavg()[0]}
        res.table("plot all, fresh interpreter (imports included; cpu_s: the command's own CPU time)", [row],
                  ["measure", "n", "median_s", "min_s", "max_s", "cpu_s", "load_1min"])
        res.target(f"plot --figure all on a {ROWS}-step run (s)", row["median_s"], f"≤ {PLOT_TARGET_S:g}",
                   row["median_s"] <= PLOT_TARGET_S)
        res.table("the same figures in this process (render + PNG + CSV)", _figures_in_process(big, tmp / "figs2"),
                  ["figure", "seconds", "csv_rows", "drawn"])

        replay = asyncio.run(_press_p(big, "replay", presses))
        with live_training(tmp) as live:
            monitor = asyncio.run(_press_p(live, "monitor", presses, wait_rows=20))
        rows = _p_rows(f"replay {ROWS} rows", replay) + _p_rows("monitor, live training", monitor)
        res.table("p key (ms; first_s: the first press, which starts the render process)", rows,
                  ["measure", "n", "p50_ms", "p99_ms", "max_ms", "first_s"])
        for label, lat in (("replay", replay), ("live monitor", monitor)):
            worst = max(lat["next_key"]) * 1000
            res.target(f"{label}: p → keyboard back, worst press (ms)", worst, f"< {KEY_TARGET_MS:g}",
                       worst < KEY_TARGET_MS)
            during = sorted(lat["during"])
            p99 = _stats("", during)["p99_ms"] if during else float("nan")
            res.target(f"{label}: keys while rendering, p99 (ms)", p99, "info", None)
        res.note("plot all runs `python -m eos_tui.cli plot` in a fresh interpreter; its CSVs hold every point "
                 "while lines of more than 4000 points are drawn as their min/max envelope ('drawn').")
        res.note("p: the UI thread only collects the panels' data views; a worker thread hands them to one "
                 "render process (python -m engine.figures.worker), so matplotlib never holds the UI's GIL.")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return res.as_dict()
