"""A textual-plotext panel that redraws only when what it shows has changed, off the UI thread.

Screens describe a panel's content as a :class:`~engine.figures.panel.Panel` (series, threshold
lines, cursor, scales: the engine's description, which the ``p`` key draws with matplotlib too)
plus two hashable signatures: ``view`` (what the user chose: axis, scale, layer...) and ``data``
(which rows). :meth:`SeriesPlot.show` redraws when either changed, but at most
every ``DATA_MIN_INTERVAL`` seconds when only new data arrived (a live run), so a run written
flat out cannot monopolise the UI. The expensive part — downsampling every series to the
panel width (:mod:`eos_tui.app.downsample`) and building the plotext canvas — runs in a worker
thread on a fresh plotext figure; the widget only swaps in the finished text. Drawing cost
therefore depends on the panel width, never on the length of the run, and key presses are
handled while a plot is being built.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Hashable

import numpy as np
from rich.text import Text
from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot

from engine.figures.panel import Line, Panel

from ..downsample import minmax_downsample

__all__ = ["Line", "Panel", "SeriesPlot", "build_plot", "DATA_MIN_INTERVAL", "UNCONVERGED"]

DATA_MIN_INTERVAL = 1.0  # seconds between redraws caused only by new rows
BUILD_DUTY = 0.33  # at most this fraction of the time is spent building plots (GIL fairness)

# Plot builds are pure Python and hold the GIL: run one at a time, then rest for
# (1/BUILD_DUTY - 1) times as long, so the UI thread always gets the interpreter back quickly.
# A build for a changed view (the user pressed a key) cuts the rest short while it waits for
# its turn: the duty cycle paces a run's stream of new rows, not the answer to a key.
_BUILD_LOCK = threading.Lock()
_URGENT = threading.Condition()
_urgent_waiting = 0  # view-change builds waiting for _BUILD_LOCK (guarded by _URGENT)


def _count_urgent(delta: int) -> None:
    global _urgent_waiting
    with _URGENT:
        _urgent_waiting += delta
        _URGENT.notify_all()


@contextmanager
def _build_turn(urgent: bool):
    """Hold the build lock; an urgent build is counted while it waits for it."""
    if urgent:
        _count_urgent(+1)
    try:
        _BUILD_LOCK.acquire()
    finally:
        if urgent:
            _count_urgent(-1)
    try:
        yield
    finally:
        _BUILD_LOCK.release()


def _rest(seconds: float) -> None:
    """Sleep ``seconds``, or less if a view-change build is waiting for its turn."""
    with _URGENT:
        _URGENT.wait_for(lambda: _urgent_waiting > 0, timeout=seconds)


UNCONVERGED = "○"  # the marker of a value whose eigen-solve did not reach its tolerance (dimmed)


def build_plot(fig: Panel, width: int, height: int, theme: str | None = None) -> tuple[Text, int]:
    """Downsample ``fig`` to ``width`` and render it with plotext; returns (text, points drawn).

    Pure (a fresh plotext figure each time), so it is safe to call from a worker thread.
    """
    plt = Plot()
    buckets = max(width - 12, 10)
    plt.title(fig.title)
    plt.xlabel(fig.xlabel)
    drawn = 0
    any_right = False
    xmin = xmax = None
    for line in fig.lines:
        positive = fig.ylog_right if line.right else fig.ylog
        xd, yd = minmax_downsample(line.x, line.y, buckets // 2 if line.dashed else buckets, positive=positive)
        if len(xd) == 0:
            continue
        any_right |= line.right
        kw: dict = {"yside": "right" if line.right else "left"}
        if line.label:
            kw["label"] = line.label
        if line.color:
            kw["color"] = line.color
        if line.dashed:
            if len(xd) == 1 or np.ptp(yd) == 0:
                # a constant line: dashes across the x range of the series drawn so far
                lo = xd[0] if xmin is None else min(xmin, xd[0])
                hi = xd[-1] if xmax is None else max(xmax, xd[-1])
                xd = np.linspace(lo, hi, max(buckets // 3, 2)) if hi > lo else xd[:1]
                yd = np.full(len(xd), yd[0])
            plt.scatter(xd.tolist(), yd.tolist(), marker="-", **kw)
        elif line.marker:
            plt.scatter(xd.tolist(), yd.tolist(), marker=line.marker, **kw)
        elif line.converged is not None and not np.asarray(line.converged, dtype=bool).all():
            # a certified series: a line through the converged values, the others hollow and dimmed
            conv = np.asarray(line.converged, dtype=bool)
            xs, ys = minmax_downsample(line.x, np.where(conv, line.y, np.nan), buckets, positive=positive)
            if len(xs):
                plt.plot(xs.tolist(), ys.tolist(), marker="braille", **kw)
            xu, yu = minmax_downsample(line.x, np.where(conv, np.nan, line.y), buckets, positive=positive)
            if len(xu):
                plt.scatter(xu.tolist(), yu.tolist(), marker=UNCONVERGED, color="gray", yside=kw["yside"],
                            label=f"{line.label or ''} unconverged".strip())
        else:
            plt.plot(xd.tolist(), yd.tolist(), marker="braille", **kw)
        drawn += len(xd)
        xmin = xd[0] if xmin is None else min(xmin, xd[0])
        xmax = xd[-1] if xmax is None else max(xmax, xd[-1])
    if fig.ylog and drawn:
        plt.yscale("log", "left")
    if fig.ylog_right and any_right:
        plt.yscale("log", "right")
    if fig.vline is not None and drawn:
        plt.vline(float(fig.vline), "white")
    if not drawn:
        plt.title(f"{fig.title}  ({fig.message or 'no data yet'})")
    plt.plotsize(width, height)
    plt._set_size(width, height)  # noqa: SLF001 - see PlotextPlot.render
    if theme:
        plt.theme(theme)
    return Text.from_ansi(plt.build()), drawn


class SeriesPlot(PlotextPlot):
    """A plot panel; call :meth:`show` as often as you like, it only redraws on change."""

    DEFAULT_CSS = """
    SeriesPlot { height: 1fr; width: 1fr; min-height: 6; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._signature: tuple | None = None
        self._last_draw = 0.0
        self._text: Text | None = None
        self.building = False
        self._wanted_view: Hashable = None  # the view of the last show() call, drawn or not
        self.redraws = 0  # finished rebuilds (observed by tests)
        self.points_drawn = 0  # points handed to plotext by the last rebuild

    @property
    def needs(self) -> bool:
        """Whether this panel is on screen (hidden panels are not redrawn)."""
        return bool(self.is_mounted and self.display and self.size.width > 0 and self.size.height > 0)

    @property
    def drawn_view(self) -> Hashable:
        """The view on screen now (``None`` while a rebuild is running or before the first)."""
        return None if self.building or self._signature is None else self._signature[0]

    def view_changed(self, view: Hashable) -> bool:
        """Whether the user changed the view: ``view`` (or the panel's size) differs from the
        one last drawn or started. The first drawing is not a change (it is paced like data)."""
        sig = self._signature
        return sig is not None and (sig[0] != view or sig[2] != (self.size.width, self.size.height))

    def wants(self, view: Hashable, data: Hashable) -> bool:
        """Whether :meth:`show` with these signatures would start a redraw now."""
        if not self.pending(view, data):
            return False
        if self._signature is not None and not self.view_changed(view):  # only new data
            return time.monotonic() - self._last_draw >= DATA_MIN_INTERVAL
        return True

    def pending(self, view: Hashable, data: Hashable) -> bool:
        """Whether what is drawn differs from these signatures (drawn now or after the throttle)."""
        return (view, data, (self.size.width, self.size.height)) != self._signature

    def show(self, figure_factory: Callable[[], Panel], view: Hashable, data: Hashable = None) -> bool:
        """Start a rebuild from ``figure_factory()`` if wanted and none is running; True if started."""
        self._wanted_view = view
        if self.building or not self.wants(view, data):
            return False
        urgent = self.view_changed(view)
        width, height = self.size
        self._signature = (view, data, (width, height))
        self._last_draw = time.monotonic()
        fig = figure_factory()  # cheap: views of the data, no copies of whole columns
        theme = self._get_plotext_theme_name(self.app.theme)
        self.building = True
        self.run_worker(lambda: self._build(fig, width, height, theme, urgent), thread=True,
                        group=f"plot-{self.id}", exit_on_error=False)
        return True

    def _build(self, fig: Panel, width: int, height: int, theme: str, urgent: bool) -> None:
        with _build_turn(urgent):
            t0 = time.perf_counter()
            try:
                text, drawn = build_plot(fig, width, height, theme)
            except Exception as exc:  # noqa: BLE001 - a bad figure must not kill the app
                text, drawn = Text(f"cannot draw {fig.title}: {exc}", style="red"), 0
            rest = (time.perf_counter() - t0) * (1 / BUILD_DUTY - 1)
            try:
                self.app.call_from_thread(self._built, text, drawn)
            except RuntimeError:  # the app is closing
                return
            _rest(min(rest, 1.0))

    def _built(self, text: Text, drawn: int) -> None:
        self._text = text
        self.building = False
        self.points_drawn = drawn
        self.redraws += 1
        self.refresh()
        # something may have changed while this was building: a key (redraw at once) or data
        name = "redraw_now" if self.view_changed(self._wanted_view) else "mark_dirty"
        redraw = getattr(self.screen, name, None)
        if redraw is not None:
            redraw()

    def invalidate(self) -> None:
        """Force the next :meth:`show` to redraw."""
        self._signature = None

    def render(self):
        if self._text is None:
            return Text("")
        return self._text
