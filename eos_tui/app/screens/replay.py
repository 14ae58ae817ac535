"""ReplayScreen: the monitor in replay mode — a playhead over a stored (or still growing) run."""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.binding import Binding

from ..series import RunData
from .monitor import MonitorBase

__all__ = ["ReplayScreen", "SPEEDS"]

SPEEDS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)  # steps per second of playback


class ReplayScreen(MonitorBase):
    """Play/pause, speed, seek and follow over a run read from its store.

    The playhead is a row count ``stop`` (rows ``0..stop-1`` are shown). In *follow* mode it
    sticks to the last committed row while the run is still being written.
    """

    BINDINGS = [
        Binding("space", "play", "play/pause"),
        Binding("plus,equals_sign", "speed(1)", "faster", key_display="+"),
        Binding("minus", "speed(-1)", "slower", key_display="-"),
        Binding("home", "seek_start", "start"),
        Binding("end", "seek_end", "end"),
        Binding("left", "nudge(-1)", "step-", show=False),
        Binding("right", "nudge(1)", "step+", show=False),
        Binding("pageup", "nudge(-100)", "-100", show=False),
        Binding("pagedown", "nudge(100)", "+100", show=False),
        Binding("g", "goto", "go to step"),
        Binding("f", "follow", "follow"),
        Binding("escape", "back", "back", show=False),
        # the footer is full with the playback keys: p (save figure) stays in the help (?)
        Binding("p", "save_figure", "save figure", show=False),
    ]

    def __init__(self, data: RunData, *, follow: bool = False, **kwargs) -> None:
        super().__init__(data, **kwargs)
        self.follow = follow
        self.playing = False
        self.speed_i = SPEEDS.index(10)
        self.pos: float | None = None  # playhead in rows; None until the data arrive (then: end)

    # -- playhead ----------------------------------------------------------------------------

    @property
    def total(self) -> int:
        return len(self.data.steps)

    def stop_rows(self) -> int | None:
        if self.follow or self.pos is None:
            return None
        return max(1, min(int(self.pos), self.total))

    def shown_rows(self) -> int:
        stop = self.stop_rows()
        return self.total if stop is None else stop

    def _set_pos(self, rows: float) -> None:
        self.pos = float(max(1, min(rows, self.total)))
        self.redraw_now()

    def advance(self, dt: float) -> None:
        if self.pos is None and self.data.loaded:
            self.pos = float(self.total)
        if not self.playing or self.follow or self.pos is None:
            return
        self.pos = min(self.pos + SPEEDS[self.speed_i] * dt, float(self.total))
        if self.pos >= self.total and not self.data.live:
            self.playing = False
        self.mark_dirty()

    def notes(self) -> Text:
        text = Text()
        if self.follow:
            text.append("● follow", "bold green")
        elif self.playing:
            text.append("▶ playing", "bold green")
        else:
            text.append("⏸ paused", "bold yellow")
        text.append(f"  ×{SPEEDS[self.speed_i]}  ")
        shown = self.shown_rows()
        steps = self.data.steps.column("step")
        cur = int(steps[shown - 1]) if shown and len(steps) else 0
        last = int(steps[-1]) if len(steps) else 0
        text.append(f"step {cur}/{last}", "bold")
        if self.data.crashed or self.data.status in ("interrupted", "failed", "diverged"):
            text.append(f"  run {self.data.display_status}: replaying up to its last committed step {last}",
                        "bold red")
        elif self.data.live:
            text.append("  (run still being written)", "italic")
        rest = super().notes()
        if rest.plain:
            text.append("  ")
            text.append_text(rest)
        return text

    # -- actions -------------------------------------------------------------------------------

    def action_play(self) -> None:
        if self.pos is None:
            return
        if self.follow:
            self.follow = False
            self.playing = False
        elif not self.playing and self.pos >= self.total:
            self.pos = 1.0  # replay from the start
            self.playing = True
        else:
            self.playing = not self.playing
        self.redraw_now()

    def action_speed(self, delta: int) -> None:
        self.speed_i = max(0, min(len(SPEEDS) - 1, self.speed_i + delta))
        self.redraw_now()

    def action_seek_start(self) -> None:
        self.follow = False
        self._set_pos(1)

    def action_seek_end(self) -> None:
        self.follow = False
        self._set_pos(self.total)

    def action_nudge(self, rows: int) -> None:
        if self.pos is None:
            return
        self.follow = False
        self.playing = False
        self._set_pos(self.shown_rows() + rows)

    def action_follow(self) -> None:
        self.follow = not self.follow
        if not self.follow:
            self.pos = float(self.total)
        self.playing = False
        self.notify("following the run as it is written" if self.follow else "follow off")
        self.redraw_now()

    def seek_step(self, step: int | None) -> None:
        if step is None:
            return
        steps = self.data.steps.column("step")
        if not len(steps):
            return
        self.follow = False
        self.playing = False
        self._set_pos(int(np.searchsorted(steps, step, side="right")))

    def action_goto(self) -> None:
        from .modals import GotoStep

        steps = self.data.steps.column("step")
        if not len(steps):
            return
        self.app.push_screen(GotoStep(int(steps[0]), int(steps[-1])), self.seek_step)

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
