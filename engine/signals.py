"""How training answers signals: SIGINT, SIGTERM and SIGHUP (Ctrl-C, a cluster's preemption, a
closed terminal) end a run, a resume or a sweep client the same clean way.

:func:`interrupt_on_signals` turns the first one into :class:`SignalInterrupt` (a
``KeyboardInterrupt``) and ignores later ones while the process stops; the process then exits
with ``128 + signal number`` (:func:`interrupt_exit_code`: 130, 143, 129).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

INTERRUPT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""The signals that end a run ``interrupted`` (exit ``128 + signum``)."""


class SignalInterrupt(KeyboardInterrupt):
    """Raised in the main thread by :func:`interrupt_on_signals` for SIGINT/SIGTERM/SIGHUP."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(f"interrupted by {signal.Signals(self.signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def interrupt_exit_code(exc: BaseException) -> int:
    """``128 + signum`` for a :class:`SignalInterrupt`, 130 for any other KeyboardInterrupt."""
    return exc.exit_code if isinstance(exc, SignalInterrupt) else 128 + signal.SIGINT


@contextmanager
def interrupt_on_signals(signals: tuple[int, ...] = INTERRUPT_SIGNALS) -> Iterator[None]:
    """Turn the first of ``signals`` into :class:`SignalInterrupt`; ignore the next ones.

    Later signals arrive while the run is being closed (the final status, the last event);
    raising again there could leave it half-written, so they are dropped until the block ends.
    Only the main thread can install handlers; elsewhere this does nothing.
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum, frame):  # noqa: ARG001 - signal handler signature
        if fired:
            return
        fired.append(signum)
        raise SignalInterrupt(signum)

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
