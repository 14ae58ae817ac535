"""Shared behaviour of screens that show runs: reader workers and a bounded-rate redraw."""

from __future__ import annotations

import time

from textual import on
from textual.screen import Screen

from ..messages import RunFailed, RunUpdated
from ..reader import read_loop
from ..series import RunData
from .save import SavesFigure

__all__ = ["RunScreen", "SizedScreen", "REDRAW_HZ"]

REDRAW_HZ = 8
MAX_PLOTS_PER_TICK = 3


class SizedScreen(Screen):
    """A screen with a minimum terminal size; the app shows a "terminal too small" notice
    instead of a broken layout (checked on resize and whenever this screen becomes current)."""

    MIN_SIZE: tuple[int, int] = (100, 30)

    def on_screen_resume(self) -> None:
        check = getattr(self.app, "_check_size", None)
        if check is not None:
            self.app.call_later(check)


class RunScreen(SavesFigure, SizedScreen):
    """A screen fed by one reader thread per run; redraws at most ``REDRAW_HZ`` times a second.

    Subclasses implement :meth:`redraw` (called on the timer while the screen is current and
    something changed) and list their plots' ``show`` calls via :meth:`draw_plots`; ``p`` saves
    what :meth:`~eos_tui.app.screens.save.SavesFigure.figure_for_view` returns.
    """

    def __init__(self, runs: list[RunData], **kwargs) -> None:
        super().__init__(**kwargs)
        self.runs = runs
        self._dirty = True
        self._rr = 0  # round-robin start among plots
        self.updates_seen = 0  # RunUpdated messages handled (tests)
        self._last_tick = time.monotonic()

    def on_mount(self) -> None:
        for data in self.runs:
            self.start_reader(data)
        self.set_interval(1 / REDRAW_HZ, self._tick)
        self.call_after_refresh(self._tick)

    def start_reader(self, data: RunData) -> None:
        def work() -> None:
            from textual.worker import get_current_worker

            worker = get_current_worker()
            read_loop(data, self.post_message, lambda: worker.is_cancelled)

        self.run_worker(work, thread=True, group="reader", name=f"reader:{data.key}", exit_on_error=False)

    @on(RunUpdated)
    def _on_run_updated(self, message: RunUpdated) -> None:
        self.updates_seen += 1
        self._dirty = True

    @on(RunFailed)
    def _on_run_failed(self, message: RunFailed) -> None:
        self._dirty = True
        self.notify(message.error, title="cannot read run", severity="error", timeout=10, markup=False)

    def mark_dirty(self) -> None:
        """Something changed (new rows, a finished plot): redraw on the next tick."""
        self._dirty = True

    def redraw_now(self) -> None:
        """The user changed the view (a key): redraw at once rather than on the next tick, so
        the header and notes show it in this refresh and the plots it affects start rebuilding."""
        self._dirty = True
        if self.is_current:
            self._dirty = False
            self.redraw()

    def _tick(self) -> None:
        now = time.monotonic()
        dt, self._last_tick = now - self._last_tick, now
        self.advance(dt)
        if not self.is_current or not self._dirty:
            return
        self._dirty = False
        self.redraw()

    def advance(self, dt: float) -> None:
        """Hook for playback (replay): move the playhead by ``dt`` seconds."""

    def redraw(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def draw_plots(self, jobs: list) -> None:
        """``jobs`` = [(plot, factory, view_signature, data_signature)].

        Panels whose view changed (a key, a resize) all start rebuilding at once, in the listed
        order; rebuilds for new data only start at most MAX_PLOTS_PER_TICK per tick (round robin
        over the visible plots). Marks the screen dirty again if some plot still has to catch up.
        """
        visible = [j for j in jobs if j[0].needs]
        n = len(visible)
        urgent = [plot.view_changed(view) for plot, _, view, _ in visible]
        # the changed panels first, in the listed order; then the others, round robin
        order = sorted(range(n), key=lambda j: (not urgent[j], 0 if urgent[j] else (j - self._rr) % n))
        done = 0
        for j in order:
            plot, factory, view, data = visible[j]
            if (urgent[j] or done < MAX_PLOTS_PER_TICK) and plot.show(factory, view, data):
                if not urgent[j]:
                    done += 1
                    self._rr = (j + 1) % n
            elif plot.building or plot.pending(view, data):
                # still building, or new data held back by the redraw throttle: come back, so
                # the last data of a run that stopped changing is always drawn
                self._dirty = True
