"""``eos-tui`` with faults injected: the child process of the fault suite (tests/faults).

Runs ``eos_tui.cli.main()`` (the installed command's entry point) after patching it according
to the environment:

``FAULT_COMMITS=FILE``
    append each step number to FILE right after its row is committed (the ledger of what the
    store must still hold after a kill).
``FAULT_AT=checkpoint:N:SIGNAL``
    send SIGNAL (``SIGKILL``, ``SIGTERM``, ``SIGINT``) to itself during the N-th checkpoint
    write: its bytes are in the ``*.tmp`` file, not yet fsynced nor renamed.
``FAULT_AT=transaction:N:SIGNAL``
    send SIGNAL to itself inside the N-th step transaction: the row is inserted, not committed.
``FAULT_AT=checkpoint:N:ENOSPC`` / ``transaction:N:ENOSPC``
    that write fails as on a full disk instead (``No space left on device`` /
    SQLite's ``database or disk is full``).
``FAULT_SLOW_STEP=SECONDS``
    sleep this long after each committed step (gives kills at random times more to hit).
"""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path


def _fault() -> tuple[str, int, str] | None:
    spec = os.environ.get("FAULT_AT")
    if not spec:
        return None
    where, n, what = spec.split(":")
    return where, int(n), what


def _strike(what: str, disk_full: BaseException) -> None:
    if what == "ENOSPC":
        raise disk_full
    os.kill(os.getpid(), getattr(signal, what))
    time.sleep(5)  # a caught signal raises in this thread before the sleep ends


def _install() -> None:
    from engine.store import writer as writer_module

    fault = _fault()
    ledger = os.environ.get("FAULT_COMMITS")
    slow = float(os.environ.get("FAULT_SLOW_STEP") or 0)
    if ledger or slow:
        fd = os.open(ledger, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if ledger else None
        append_step = writer_module.RunWriter.append_step

        def logged(self, row):
            append_step(self, row)
            if fd is not None:
                os.write(fd, f"{int(row['step'])}\n".encode())
            if slow:
                time.sleep(slow)

        writer_module.RunWriter.append_step = logged

    if fault and fault[0] == "transaction":
        _, target, what = fault
        connect = writer_module.connect
        state = {"commits": 0}

        class Connection:
            """The writer's connection, striking at the COMMIT of the ``target``-th step row."""

            def __init__(self, conn):
                self._conn, self._steps = conn, False

            def execute(self, sql, *args):
                if sql.startswith("INSERT INTO steps"):
                    self._steps = True
                elif sql == "COMMIT" and self._steps:
                    self._steps = False
                    state["commits"] += 1
                    if state["commits"] == target:
                        full = sqlite3.OperationalError("database or disk is full")
                        full.sqlite_errorcode = 13  # SQLITE_FULL
                        _strike(what, full)
                elif sql == "ROLLBACK":
                    self._steps = False
                return self._conn.execute(sql, *args)

            def __getattr__(self, name):
                return getattr(self._conn, name)

        writer_module.connect = lambda db, *, create: Connection(connect(db, create=create))

    if fault and fault[0] == "checkpoint":
        _, target, what = fault
        fsync = os.fsync
        state = {"writes": 0}

        def fsync_then_strike(fd):
            try:
                path = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                path = ""
            if "/checkpoints/step_" in path and path.endswith(".tmp"):
                state["writes"] += 1
                if state["writes"] == target:
                    _strike(what, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
            return fsync(fd)

        os.fsync = fsync_then_strike


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    _install()
    from eos_tui.cli import main as cli_main

    sys.argv = ["eos-tui", *sys.argv[1:]]
    cli_main()


if __name__ == "__main__":
    main()
