"""EosApp: the Textual application; which screen it opens is decided by the entry points."""

from __future__ import annotations

import gc
import sys
from typing import Callable

from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from engine.errors import EosError
from engine.store import send_control

from .screens.help import HelpScreen
from .screens.modals import ConfirmQuit, TooSmall

__all__ = ["EosApp", "MIN_SIZE"]

MIN_SIZE = (100, 30)
SWITCH_INTERVAL = 0.001  # seconds (CPython's default is 0.005)


class EosApp(App):
    """Opens ``make_screen()``; ``q`` quits (asking first while runs of this session train)."""

    TITLE = "eos-tui"
    BINDINGS = [
        Binding("q", "request_quit", "quit"),
        Binding("question_mark", "help", "help", key_display="?"),
    ]

    def __init__(self, make_screen: Callable[[], Screen], *, min_size: tuple[int, int] = MIN_SIZE) -> None:
        super().__init__()
        self._make_screen = make_screen
        self.min_size = min_size
        self.stopped_runs: list = []  # runs sent "stop" on quit (the caller waits for their engines)
        self._started = False
        self._switch_interval = sys.getswitchinterval()

    async def on_mount(self) -> None:
        # Reader and plot-builder threads hold the GIL in bursts; a short switch interval hands
        # it back to the UI thread quickly, so key presses stay snappy while plots are rebuilt.
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        await self.push_screen(self._make_screen())
        self._started = True
        self._check_size()
        # What is alive now (modules, torch's operator tables, the widgets) lives as long as the
        # app: keep it out of the cyclic collector, whose full passes over it stalled the UI
        # thread for over 100 ms on a 2-core machine while a run streamed rows.
        gc.freeze()

    def on_unmount(self) -> None:
        gc.unfreeze()
        sys.setswitchinterval(self._switch_interval)

    def on_resize(self, event) -> None:
        self._check_size(event.size)

    def _check_size(self, size=None) -> None:
        """Cover the app with a clear message while the terminal is smaller than the current
        screen needs (its ``MIN_SIZE``, else the app's ``min_size``)."""
        if not self._started:
            return
        size = size or self.size
        top = self.screen
        if isinstance(top, TooSmall):
            under = self.screen_stack[-2] if len(self.screen_stack) > 1 else None
            need = getattr(under, "MIN_SIZE", self.min_size)
            if size.width >= need[0] and size.height >= need[1]:
                self.pop_screen()
            return
        need = getattr(top, "MIN_SIZE", self.min_size)
        if size.width < need[0] or size.height < need[1]:
            self.push_screen(TooSmall(need))

    # -- actions -----------------------------------------------------------------------------

    def live_runs(self) -> list:
        runs = []
        for screen in self.screen_stack:
            owned = getattr(screen, "owned_live_runs", None)
            if owned is not None:
                runs.extend(r for r in owned() if r not in runs)
        return runs

    def action_request_quit(self) -> None:
        live = self.live_runs()
        if not live:
            self.exit(0)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.stop_runs(live)
                self.exit(0)

        if isinstance(self.screen, ConfirmQuit):
            return
        self.push_screen(ConfirmQuit([r.name for r in live]), answered)

    def stop_runs(self, runs: list) -> None:
        for run in runs:
            try:
                send_control(run.path, "stop")
                self.stopped_runs.append(run)
            except EosError as exc:
                self.log.error(f"cannot stop {run.path}: {exc}")

    def action_help(self) -> None:
        if isinstance(self.screen, (HelpScreen, TooSmall)):
            return
        self.push_screen(HelpScreen(self.screen))
