"""Who holds a run: the writer's heartbeat and pid, and the control channel to it.

A run has exactly one writer. It records its pid and host in the ``meta`` table and refreshes
``meta.heartbeat`` from a background thread; a reader calls a ``running`` run whose writer is
gone (:func:`writer_gone`) ``interrupted``. The UI talks back to the writer through the
``control`` file (:func:`send_control`), which the writer polls.

Before the writer exists: :func:`make_run_dir` creates a run directory exclusively (a suffix
``-2``, ``-3`` ... when the name is taken, so simultaneous starts never share one) with a
``.starting`` marker naming the creating process; :class:`~engine.store.RunWriter` accepts
that directory and removes the marker once ``run.json``, the last file of a new run, is
written. :func:`creation_state` tells a run being created (``starting``) from one whose
creator died before it was complete (``interrupted``).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from engine.errors import RunStoreError, StorageError
from engine.store.files import atomic_write
from engine.store.schema import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    CONTROL_COMMANDS,
    CONTROL_FILE,
    FINAL_STATUSES,
    METRICS_FILE,
    RUN_FILE,
    connect,
    is_run_dir,
    one_line,
)

STARTING_FILE = ".starting"
"""Marker of a run directory whose run is being created: JSON ``pid``, ``host``, ``time``."""
RESERVE_FILE = ".reserve"
"""Space an open writer holds back to record the final status on a full disk."""


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


# --------------------------------------------------------------------------------------------
# Creation


def mark_starting(run_dir: Path | str) -> None:
    """Write the ``.starting`` marker (this process, this host, now) into ``run_dir``."""
    payload = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}
    atomic_write(Path(run_dir) / STARTING_FILE, (json.dumps(payload) + "\n").encode("utf-8"))


def make_run_dir(root: Path | str, name: str) -> Path:
    """Create the run directory ``root/name`` exclusively and mark it starting; return it.

    ``os.mkdir`` either creates the directory or fails, so processes starting at the same
    moment with the same name each get their own: the first ``name``, the others ``name-2``,
    ``name-3`` ... ``root`` is created when missing.
    """
    root = Path(root).expanduser()
    if not name or "/" in name or name in (".", ".."):
        raise RunStoreError(f"{name!r} is not a valid run directory name")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RunStoreError(f"runs folder {root} exists and is not a directory") from None
    except OSError as exc:
        raise StorageError(f"cannot create runs folder {root}: {one_line(exc)}") from exc
    for i in itertools.count(1):
        path = root / (name if i == 1 else f"{name}-{i}")
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        except OSError as exc:
            raise StorageError(f"cannot create run directory {path}: {one_line(exc)}") from exc
        break
    mark_starting(path)
    return path


def _fresh(path: Path, stale_after: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime <= stale_after
    except OSError:
        return False


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _stored_meta(db: Path) -> dict[str, str | None] | None:
    """The ``meta`` table of a store, or ``None`` while it has none (being created) or is
    unreadable."""
    try:
        conn = connect(db, create=False)
    except sqlite3.Error:
        return None
    try:
        conn.execute("PRAGMA query_only=ON")
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def creation_state(run_dir: Path | str, stale_after: float) -> tuple[str, str] | None:
    """``("starting", why)`` for a run still being created, ``("interrupted", why)`` for one
    whose creator stopped before it was complete, ``None`` otherwise (a complete run, a
    damaged one, or a directory holding nothing of a run).

    A run is complete once ``run.json`` exists (its writer writes it last). Before that, the
    creator is the process named by the ``.starting`` marker, else the writer recorded in the
    store's ``meta`` table; a creator on another host is judged by how recent its files are.
    """
    try:
        return _creation_state(Path(run_dir), stale_after)
    except OSError:  # the directory went away while we looked
        return None


def _creation_state(path: Path, stale_after: float) -> tuple[str, str] | None:
    if (path / RUN_FILE).is_file() or not path.is_dir():
        return None
    marker = path / STARTING_FILE
    info = _read_json(marker)
    db = path / METRICS_FILE
    meta = _stored_meta(db) if db.is_file() else None
    if meta is not None:
        if meta.get("status") in FINAL_STATUSES:
            return None  # closed, yet no run.json: damaged (or being deleted)
        alive, who = not writer_gone(meta, stale_after), f"pid {meta.get('pid')}"
    elif info is not None:
        pid, host = info.get("pid"), info.get("host")
        if host == socket.gethostname() and isinstance(pid, int):
            alive = pid_alive(pid)
        else:
            alive = _fresh(marker, stale_after)
        who = f"pid {pid} on {host}"
    else:  # the writer's first files, before its store has a meta table
        first = [p for p in (marker, db, path / RESERVE_FILE, path / CONFIG_FILE, path / CHECKPOINT_DIR) if p.exists()]
        if not first:
            return None
        alive, who = any(_fresh(p, stale_after) for p in first), "its writer"
    if alive:
        return "starting", f"being created by {who}"
    return "interrupted", f"{who} stopped before the run was created"
