"""SweepScreen: a dataset-size sweep, live — the runs, overall progress with ETA, and the power
law max P^1 ≈ c1·D^c2 forming as runs finish.

A worker thread scans the sweep directory (:class:`engine.sweep.SweepScanner`, through the store)
every :data:`POLL_S` seconds and posts a :class:`SweepUpdated` (coalesced: only the newest
waits); the screen redraws at most :data:`REDRAW_HZ` times a second and only what changed (table
cells, the progress bar, new journal lines); the plot is a :class:`SeriesPlot`, built off the UI
thread and paced like every panel. ``enter`` opens the selected run's monitor; ``p`` saves the
power-law panel as shown (PNG + SVG + CSV into ``SWEEP/figures/``; the paper-style figure with
bootstrap intervals is ``eos-tui plot SWEEP --figure powerlaw``); ``q`` asks before
stopping a sweep this session started (its runs end ``interrupted`` and continue on the next
``eos-tui sweep``).
"""

from __future__ import annotations

import math
import subprocess
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Footer, Log, ProgressBar, Static

from engine.errors import EosError
from engine.figures.panel import PanelFigure
from engine.sweep.status import SweepScanner, SweepStatus, format_duration

from ..estimates import fmt_num
from ..series import RunData
from ..widgets.header import status_style
from ..widgets.plot import Line, Panel, SeriesPlot
from .base import SizedScreen
from .modals import ConfirmQuit
from .save import FIGURES_DIR, FigureRequest, SavesFigure
from .monitor import MonitorScreen

__all__ = ["SweepScreen", "SweepUpdated", "SweepFailed", "powerlaw_figure", "scan_loop", "COLUMNS"]

POLL_S = 1.0
REDRAW_HZ = 4
COLUMNS = ["D", "init", "subset", "state", "step", "progress", "loss", "λ1", "max P^1", "wall"]
BAR = 8


class SweepUpdated(Message):
    """A new scan of the sweep; a newer one replaces an older one still in the queue."""

    def __init__(self, status: SweepStatus) -> None:
        super().__init__()
        self.status = status

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SweepUpdated)


class SweepFailed(Message):
    """The sweep directory cannot be read (one line)."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


def scan_loop(sweep_dir: Path, post, cancelled, *, interval: float = POLL_S) -> None:
    """Scan ``sweep_dir`` every ``interval`` seconds until ``cancelled()`` (a worker thread)."""
    try:
        scanner = SweepScanner(sweep_dir)
    except EosError as exc:
        post(SweepFailed(str(exc)))
        return
    while not cancelled():
        try:
            post(SweepUpdated(scanner.scan()))
        except EosError as exc:
            post(SweepFailed(str(exc)))
        deadline = time.monotonic() + interval
        while not cancelled() and time.monotonic() < deadline:
            time.sleep(0.05)


def _log10(values) -> np.ndarray:
    return np.log10(np.asarray(values, dtype=float))


def powerlaw_figure(status: SweepStatus) -> Panel:
    """log10 max P^1 against log10 D: finished runs, runs in progress (so far), per-size
    medians, the current fit and the paper's slope through the medians."""
    a = status.analysis
    lines: list[Line] = []
    done = sorted((r.n_train, r.max_P1) for r in a.included)
    if done:
        d, y = zip(*done)
        lines.append(Line(_log10(d), _log10(y), label="finished runs", color="cyan", marker="●"))
    live = sorted((r.spec.size, r.max_P1) for r in status.runs
                  if r.state == "running" and math.isfinite(r.max_P1) and r.max_P1 > 0)
    if live:
        d, y = zip(*live)
        lines.append(Line(_log10(d), _log10(y), label="running (so far)", color="gray", marker="·"))
    if len(a.medians) >= 2:
        lines.append(Line(_log10([m[0] for m in a.medians]), _log10([m[1] for m in a.medians]),
                          label="median per size", color="yellow"))
    fit = a.fit
    if fit is not None:
        xs = _log10([min(r.n_train for r in a.included), max(r.n_train for r in a.included)])
        lines.append(Line(xs, math.log10(fit.c1) + fit.c2 * xs, label=f"fit c2={fit.c2:.3f}", color="red"))
        if a.paper is not None and a.medians:
            name, (_, c2p, _) = a.paper
            mx = float(np.mean(_log10([m[0] for m in a.medians])))
            my = float(np.mean(_log10([m[1] for m in a.medians])))
            lines.append(Line(xs, my + c2p * (xs - mx), label=f"paper slope {c2p:g}", color="green", dashed=True))
    if fit is not None:
        lo, hi = fit.c2_ci
        interval = f" [{lo:.2f},{hi:.2f}]" if math.isfinite(lo) else ""
        title = f"max P¹ ∝ D^{fit.c2:.3f}{interval}  R² {fit.r2:.2f}"
    else:
        title = "max P¹ against D"
    return Panel(title=title, xlabel="log10 D   (y: log10 max P¹ after step 10)", lines=lines,
                  message=a.fit_error or "no finished run yet")


def _bar(fraction: float) -> str:
    full = int(round(fraction * BAR))
    return "█" * full + "░" * (BAR - full) + f" {100 * fraction:3.0f}%"


def _row(r) -> tuple:
    step = "-" if r.step is None else f"{r.steps_done}/{r.max_steps}"
    spec = r.spec
    return (str(spec.size), str(spec.init), str(spec.subset), Text(r.state, style=status_style(r.state)),
            step, _bar(r.fraction), fmt_num(r.loss),
            fmt_num(r.lambda1), fmt_num(r.max_P1), format_duration(r.wall_s) if r.wall_s else "-")


class SweepRunMonitor(MonitorScreen):
    """A run of the sweep, opened from the sweep screen (escape goes back; the run belongs to
    the sweep, so quitting never stops it)."""

    BINDINGS = [Binding("escape", "app.pop_screen", "back to the sweep"), Binding("q", "quit_sweep", "quit")]

    def __init__(self, data: RunData) -> None:
        super().__init__(data, live=False)

    def action_quit_sweep(self) -> None:
        sweep = next(s for s in self.app.screen_stack if isinstance(s, SweepScreen))
        sweep.action_quit_sweep()


class SweepScreen(SavesFigure, SizedScreen):
    """The live sweep: title, progress bar, runs table, power-law plot, journal."""

    MIN_SIZE = (100, 24)
    BINDINGS = [
        Binding("enter", "open", "monitor"),
        Binding("q", "quit_sweep", "quit"),
    ]

    DEFAULT_CSS = """
    SweepScreen #title { height: 1; padding: 0 1; background: $boost; }
    SweepScreen #summary { height: 1; padding: 0 1; }
    SweepScreen ProgressBar { height: 1; padding: 0 1; }
    SweepScreen #body { height: 1fr; }
    SweepScreen DataTable { width: 3fr; height: 1fr; }
    SweepScreen #powerlaw { width: 2fr; height: 1fr; border: round $primary-darken-2; }
    SweepScreen Log { height: 6; border-top: solid $primary-darken-2; }
    """

    def __init__(self, sweep_dir: Path, *, process: subprocess.Popen | None = None, poll: float = POLL_S) -> None:
        super().__init__()
        self.sweep_dir = Path(sweep_dir)
        self.process = process          # the sweep client this session started, if any
        self.poll = poll
        self.status: SweepStatus | None = None
        self.error = ""
        self._dirty = False
        self._rows: dict[str, tuple] = {}
        self._journal_shown = 0.0       # time of the newest journal line shown
        self.updates_seen = 0           # SweepUpdated messages handled (tests)
        self.redraws = 0

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield Static(id="summary")
        yield ProgressBar(total=1000, show_eta=False, id="overall")
        with Horizontal(id="body"):
            yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
            yield SeriesPlot(id="powerlaw")
        yield Log(id="journal", max_lines=500)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#runs", DataTable)
        for label in COLUMNS:
            table.add_column(label, key=label)
        table.focus()
        self.query_one("#title", Static).update(f"sweep {self.sweep_dir}")

        def work() -> None:
            from textual.worker import get_current_worker

            worker = get_current_worker()
            scan_loop(self.sweep_dir, self.post_message, lambda: worker.is_cancelled, interval=self.poll)

        self.run_worker(work, thread=True, group="sweep-scan", name="sweep-scan", exit_on_error=False)
        self.set_interval(1 / REDRAW_HZ, self._tick)

    # -- messages ------------------------------------------------------------------------------

    @on(SweepUpdated)
    def _updated(self, message: SweepUpdated) -> None:
        first = self.status is None
        self.status = message.status
        self.updates_seen += 1
        self._dirty = True
        if first:  # the first scan is shown at once, later ones at the redraw rate
            self._tick()

    @on(SweepFailed)
    def _failed(self, message: SweepFailed) -> None:
        if message.error != self.error:
            self.error = message.error
            self.notify(message.error, title="cannot read the sweep", severity="error", timeout=10)

    def mark_dirty(self) -> None:
        """Called by the plot when a build finished (it may have more to draw)."""
        self._dirty = True

    redraw_now = mark_dirty

    def _tick(self) -> None:
        if self._dirty and self.is_current and self.status is not None:
            self._dirty = False
            self.redraw()

    # -- drawing -------------------------------------------------------------------------------

    def client_text(self) -> str:
        s = self.status
        if self.process is not None and self.process.poll() is None:
            return "client: running (this session)"
        if s is None or s.client is None:
            return "client: none"
        if s.client_alive:
            return f"client: running (pid {s.client.pid} on {s.client.host})"
        if s.client.state == "failed":
            return f"client failed: {s.client.message}"
        return f"client: {s.client.state if s.client.state != 'running' else 'gone'}"

    def redraw(self) -> None:
        s = self.status
        self.redraws += 1
        self.query_one("#title", Static).update(
            Text.assemble(("sweep ", "bold"), str(self.sweep_dir), "  ·  ", s.plan.describe()))
        summary = f"{s.summary()}  ·  {self.client_text()}"
        fit = s.analysis.fit
        if fit is not None:
            summary += f"  ·  fit: max P¹ ≈ {fit.c1:.3g}·D^{fit.c2:.3f} (R² {fit.r2:.2f}, {fit.n} runs)"
        if s.done:
            summary += "  ·  done: `eos-tui analyze` prints the fit with intervals"
        self.query_one("#summary", Static).update(summary)
        self.query_one(ProgressBar).update(progress=round(1000 * s.fraction))
        self._update_table(s)
        plot = self.query_one("#powerlaw", SeriesPlot)
        data_sig = (tuple((r.rel, r.state, r.max_P1) for r in s.runs), s.analysis.fit)
        if not plot.show(lambda: powerlaw_figure(s), (), data_sig) and (plot.building or plot.pending((), data_sig)):
            self._dirty = True
        self._update_journal(s)

    def _update_table(self, s: SweepStatus) -> None:
        table = self.query_one("#runs", DataTable)
        for r in s.runs:
            row = _row(r)
            old = self._rows.get(r.rel)
            if old is None:
                table.add_row(*row, key=r.rel)
            elif old != row:
                for label, new, was in zip(COLUMNS, row, old):
                    if new != was:
                        table.update_cell(r.rel, label, new)
            self._rows[r.rel] = row

    def _update_journal(self, s: SweepStatus) -> None:
        log = self.query_one(Log)
        for rec in s.journal:
            when = float(rec.get("time", 0))
            if when <= self._journal_shown:
                continue
            self._journal_shown = when
            stamp = datetime.fromtimestamp(when).strftime("%H:%M:%S")
            timing = f", {rec['run_s']:.0f} s" if rec.get("run_s") else ""
            log.write_line(f"{stamp} {rec.get('status')} {rec.get('rel')} ({rec.get('action')}"
                           f"{timing}) {rec.get('message', '')}")

    # -- actions -------------------------------------------------------------------------------

    def figure_for_view(self) -> FigureRequest | None:
        """The power-law panel as drawn now (finished and running runs, medians, fit, the
        paper's slope), into ``SWEEP/figures/``."""
        s = self.status
        if s is None or not s.runs:
            return None
        finished = sum(r.state == "finished" for r in s.runs)
        title = f"sweep {self.sweep_dir.name}: {finished} of {len(s.runs)} runs finished"
        return FigureRequest(self.sweep_dir / FIGURES_DIR, f"sweep-powerlaw-{finished}of{len(s.runs)}",
                             PanelFigure([powerlaw_figure(s)], title, ncols=1))

    def selected(self):
        table = self.query_one("#runs", DataTable)
        if not table.row_count or self.status is None:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        return next((r for r in self.status.runs if r.rel == key), None)

    @on(DataTable.RowSelected, "#runs")
    def _row_selected(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        r = self.selected()
        if r is None:
            return
        if r.state == "pending":
            self.notify(f"{r.rel} has not started yet")
            return
        self.app.push_screen(SweepRunMonitor(RunData(key=r.rel, path=r.path)))

    def owns_client(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def action_quit_sweep(self) -> None:
        if not self.owns_client():
            self.app.exit(0)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.stop_client()
                self.app.exit(0)

        self.app.push_screen(ConfirmQuit([f"the sweep {self.sweep_dir.name}"]), answered)

    def stop_client(self) -> None:
        """SIGTERM to the sweep client: it stops the runs in progress (they end ``interrupted``)
        and closes its cluster; the caller waits for it after the app has exited."""
        if self.owns_client():
            self.process.terminate()
            self.process.stopped_by_screen = True  # run_sweep_screen must not signal it again
