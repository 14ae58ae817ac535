"""Helpers for driving the app headless (tests, screenshots): wait until a screen has settled."""

from __future__ import annotations

import time

__all__ = ["settle"]


async def settle(pilot, timeout: float = 20.0) -> None:
    """Wait until the runs of the current screen are loaded and its plots are drawn.

    For finished runs: until nothing is left to redraw. For live runs (always changing): until
    every visible plot has been drawn at least once.
    """
    from .screens.base import RunScreen

    app = pilot.app
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline and quiet < 4:
        await pilot.pause(0.05)
        screens = [s for s in app.screen_stack if isinstance(s, RunScreen)]
        if not screens:
            quiet += 1
            continue
        screen = screens[-1]
        loaded = all(d.loaded or d.error for d in screen.runs)
        plots = [p for p in screen.query("SeriesPlot") if p.needs]
        if loaded and any(d.live for d in screen.runs):
            quiet = quiet + 1 if all(p.redraws for p in plots) else 0
        else:
            busy = any(p.building for p in plots)
            quiet = quiet + 1 if loaded and not busy and not screen._dirty else 0  # noqa: SLF001
    await pilot.pause()
