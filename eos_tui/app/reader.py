"""The store reader: a loop, run in a worker thread, that fills a RunData from ``engine.store``.

The UI thread never touches the store. The loop appends new step and snapshot rows to the
run's :class:`RunData` and posts :class:`RunUpdated` (coalesced by the message queue) after
each change; while the run is live it polls every ``interval`` seconds, and it stops once the
run has a final status and nothing new arrived.
"""

from __future__ import annotations

import time
from typing import Callable

from engine.errors import EosError
from engine.store import open_run
from textual.message import Message

from .messages import RunFailed, RunUpdated
from .series import TERMINAL_STATUSES, RunData

__all__ = ["read_loop", "poll_once", "preload"]

POLL_INTERVAL = 0.25


def poll_once(run, data: RunData) -> bool:
    """Read what is new in ``run`` into ``data``; returns whether anything changed."""
    changed = False
    last = data.steps.last("step") if len(data.steps) else None
    rows = run.steps(since=None if last is None else int(last))
    if len(rows.get("step", ())):
        data.steps.append(rows)
        changed = True
    last_snap = data.snaps.last("step") if len(data.snaps) else None
    snaps = run.snapshots(since=None if last_snap is None else int(last_snap))
    if len(snaps.get("step", ())):
        data.snaps.append(snaps)
        changed = True
    state = (run.status, run.crashed, run.status_message or "", run.control)
    if state != (data.status, data.crashed, data.status_message, data.control):
        data.status, data.crashed, data.status_message, data.control = state
        changed = True
    if changed or not data.loaded:
        data.loaded = True
        data.version += 1
    return changed


def preload(data: RunData) -> None:
    """Start reading ``data``'s store in a plain thread right away (while the app starts up);
    :func:`read_loop` joins it before polling on. Errors are left for ``read_loop`` to report."""
    import threading

    def work() -> None:
        try:
            with open_run(data.path) as run:
                _load_static(run, data)
                poll_once(run, data)
        except EosError:
            pass

    thread = threading.Thread(target=work, name=f"preload:{data.key}", daemon=True)
    data.preload_thread = thread
    thread.start()


def _load_static(run, data: RunData) -> None:
    data.meta = dict(run.meta)
    data.config = dict(run.config)
    data.meta.setdefault("num_eigs", run.num_eigs)


def read_loop(
    data: RunData,
    post: Callable[[Message], object],
    cancelled: Callable[[], bool],
    *,
    interval: float = POLL_INTERVAL,
) -> None:
    """Follow ``data.path`` until the run ends (or ``cancelled()``), posting RunUpdated."""
    pre = data.preload_thread
    if pre is not None:
        pre.join()
    try:
        run = open_run(data.path)
    except EosError as exc:
        data.error = str(exc)
        data.version += 1
        post(RunFailed(data.key, str(exc)))
        return
    try:
        _load_static(run, data)
        first = True
        while not cancelled():
            try:
                changed = poll_once(run, data)
            except EosError as exc:
                data.error = str(exc)
                data.version += 1
                post(RunFailed(data.key, str(exc)))
                return
            if changed or first:
                post(RunUpdated(data.key, data.version))
            first = False
            if data.status in TERMINAL_STATUSES and not changed:
                return
            deadline = time.monotonic() + interval
            while not cancelled() and time.monotonic() < deadline:
                time.sleep(min(0.05, interval))
    finally:
        run.close()
