"""Who holds a run: the writer's heartbeat and pid, and the control channel to it.

A run has exactly one writer. It records its pid and host in the ``meta`` table and refreshes
``meta.heartbeat`` from a background thread; a reader calls a ``running`` run whose writer is
gone (:func:`writer_gone`) ``interrupted``. The UI talks back to the writer through the
``control`` file (:func:`send_control`), which the writer polls.
"""

from __future__ import annotations

import math
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from engine.errors import RunStoreError
from engine.store.files import atomic_write
from engine.store.schema import CONTROL_COMMANDS, CONTROL_FILE, connect, is_run_dir


class HeartbeatThread(threading.Thread):
    """Refreshes ``meta.heartbeat`` every ``interval`` seconds through its own connection."""

    def __init__(self, db: Path, interval: float) -> None:
        super().__init__(name="eos-run-heartbeat", daemon=True)
        self._db = db
        self._interval = interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            conn = connect(self._db, create=False)
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error:
            return  # the store is gone or unreadable; readers will see a stale heartbeat
        try:
            while not self._stop_event.wait(self._interval):
                try:
                    conn.execute("UPDATE meta SET value = ? WHERE key = 'heartbeat'",
                                 (repr(time.time()),))
                except sqlite3.Error:
                    continue  # busy or transient: the next beat retries
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host and is not a zombie."""
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill would terminate the process on Windows: rely on heartbeat
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def writer_gone(meta: Mapping[str, str | None], stale_after: float) -> bool:
    """Whether the writer recorded in ``meta`` has stopped: a stale heartbeat, or a dead pid on
    this host."""
    try:
        heartbeat = float(meta.get("heartbeat") or "nan")
    except ValueError:
        heartbeat = math.nan
    if not time.time() - heartbeat <= stale_after:  # also true for a NaN heartbeat
        return True
    try:
        pid = int(meta.get("pid") or 0)
    except ValueError:
        pid = 0
    return pid > 0 and meta.get("hostname") == socket.gethostname() and not pid_alive(pid)


def read_control(path: Path) -> str:
    """The control word in ``path`` (``run`` when missing or unreadable)."""
    try:
        word = path.read_text(encoding="utf-8").strip().lower()
    except (OSError, UnicodeDecodeError):
        return "run"
    return word if word in CONTROL_COMMANDS else "run"


def send_control(run_dir: Path | str, command: str) -> None:
    """Atomically write the control word ``command`` (``run``/``pause``/``stop``) for a run."""
    if command not in CONTROL_COMMANDS:
        raise RunStoreError(f"unknown control command {command!r}; expected run, pause or stop")
    run_dir = Path(run_dir).expanduser()
    if not is_run_dir(run_dir):
        raise RunStoreError(f"cannot send {command!r}: {run_dir} is not an eos-tui run directory")
    atomic_write(run_dir / CONTROL_FILE, f"{command}\n".encode("ascii"))
