"""The single writer of a run directory: :class:`RunWriter`.

Every ``append_*`` / ``log_event`` / ``set_status`` call is its own committed SQLite
transaction (WAL, ``synchronous=NORMAL``), so killing the writer loses at most the step in
flight.

A full disk: the writer keeps a small ``.reserve`` file in the run directory while it is open
and gives its space back to record the final status when a write has failed, so a run stopped
by a full disk still ends with a clear status (``failed``, with the reason) and an intact store.
Failures of the file system raise :class:`~engine.errors.StorageError`.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import socket
import sqlite3
import struct
import threading
import time
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from engine.errors import RunStoreError, StorageError
from engine.store import checkpoints
from engine.store.files import atomic_write, dumps_toml, is_torch_tensor
from engine.store.liveness import RESERVE_FILE, STARTING_FILE, HeartbeatThread, read_control
from engine.store.schema import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    CONTROL_FILE,
    FINAL_STATUSES,
    METRICS_FILE,
    PACKED_COLUMN,
    RUN_FILE,
    SCALAR_COLUMNS,
    SCALAR_SPECS,
    SCHEMA_VERSION,
    STATUSES,
    connect,
    create_schema,
    lambda_columns,
    now_iso,
    one_line,
    read_step_columns,
    real,
)

_HEARTBEAT_MIN_INTERVAL = 1.0
_NEG_EIGS = SCALAR_COLUMNS.index("neg_eigs")
RESERVE_BYTES = 256 * 1024  # far more than the final status and event need

# SQLite primary result codes that mean the file system refused (not a bad store):
# SQLITE_PERM, SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN.
_STORAGE_CODES = {3, 8, 10, 13, 14}


def _write_reserve(run_dir: Path) -> None:
    """The ``.reserve`` file a writer keeps while it is open (see the module docstring)."""
    try:
        with open(run_dir / RESERVE_FILE, "wb") as fh:
            fh.write(bytes(RESERVE_BYTES))
    except OSError as exc:
        raise StorageError(f"cannot write in the run directory {run_dir}: {one_line(exc)}") from exc


def _store_error(what: str, exc: sqlite3.Error) -> RunStoreError:
    """A :class:`StorageError` when the file system refused, else a :class:`RunStoreError`."""
    code = getattr(exc, "sqlite_errorcode", None)
    cls = StorageError if code is not None and code & 0xFF in _STORAGE_CODES else RunStoreError
    return cls(f"{what}: {one_line(exc)}")


class RunWriter:
    """The single writer of a run directory (use :meth:`create`).

    Thread-safe (one lock around its connection). Every ``append_*`` / ``log_event`` /
    ``set_status`` call is its own committed transaction. Usable as a context manager: leaving
    the block normally sets ``finished``; an exception sets ``failed`` (``KeyboardInterrupt``:
    ``interrupted``) unless a final status was already set.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, num_eigs: int,
                 heartbeat_interval: float | None) -> None:
        self.path = path
        self.num_eigs = num_eigs
        self._conn = conn
        self._lock = threading.RLock()
        self._closed = False
        self._final: str | None = None
        self._last_step: int | None = None
        self._last_heartbeat = time.monotonic()
        self._control = "run"
        self._control_key: tuple[int, int, int] | None = None
        self._lambda_names = lambda_columns(num_eigs)
        self._allowed_keys = frozenset(SCALAR_COLUMNS) | {"lambda_H"} | set(self._lambda_names)
        self._packer = struct.Struct(f"<{len(SCALAR_COLUMNS) + num_eigs}d")
        columns = list(SCALAR_COLUMNS) + self._lambda_names + [PACKED_COLUMN]
        self._insert_step_sql = (f"INSERT INTO steps ({', '.join(columns)}) "
                                 f"VALUES ({', '.join('?' * len(columns))})")
        self._heartbeat_thread: HeartbeatThread | None = None
        if heartbeat_interval is not None:
            self._heartbeat_thread = HeartbeatThread(path / METRICS_FILE, heartbeat_interval)
            self._heartbeat_thread.start()

    @classmethod
    def create(cls, run_dir: Path | str, *, config: Mapping[str, Any], meta: Mapping[str, Any],
               num_eigs: int, heartbeat_interval: float | None = 5.0) -> "RunWriter":
        """Create a new run directory and return its writer (status ``running``).

        ``run_dir`` may not exist yet (parents are created) or must be an empty directory
        (apart from the ``.starting`` marker of :func:`~engine.store.liveness.make_run_dir`,
        removed once the run exists).
        ``heartbeat_interval`` is the period of the background heartbeat (``None``: only
        :meth:`heartbeat` and appends refresh it).
        """
        run_dir = Path(run_dir).expanduser()
        if not isinstance(num_eigs, numbers.Integral) or num_eigs < 0:
            raise ValueError(f"num_eigs must be a non-negative integer, got {num_eigs!r}")
        num_eigs = int(num_eigs)
        if meta.get("num_eigs", num_eigs) != num_eigs:
            raise ValueError(f"meta['num_eigs']={meta['num_eigs']!r} but num_eigs={num_eigs}")
        # Serialise first so that a bad value never leaves a half-created directory behind.
        config_text = dumps_toml(config, header="Resolved configuration of this eos-tui run.")
        meta_full = {**meta, "num_eigs": num_eigs}
        meta_text = json.dumps(meta_full, indent=2, default=str) + "\n"

        if run_dir.exists():
            if not run_dir.is_dir():
                raise RunStoreError(f"cannot create run: {run_dir} exists and is not a directory")
            if any(p.name != STARTING_FILE for p in run_dir.iterdir()):
                raise RunStoreError(
                    f"cannot create run: {run_dir} already exists and is not empty")
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / CHECKPOINT_DIR).mkdir(exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create run directory {run_dir}: {one_line(exc)}") from exc
        _write_reserve(run_dir)
        atomic_write(run_dir / CONFIG_FILE, config_text.encode("utf-8"))

        db = run_dir / METRICS_FILE
        try:
            conn = connect(db, create=True)
            create_schema(conn, num_eigs, {
                "num_eigs": str(num_eigs), "created": str(meta.get("created") or now_iso()),
                "status": "running", "status_message": None, "pid": str(os.getpid()),
                "hostname": socket.gethostname(), "heartbeat": repr(time.time()),
                "finished_at": None,
            })
        except sqlite3.Error as exc:
            raise _store_error(f"cannot create {db}", exc) from exc
        atomic_write(run_dir / RUN_FILE, meta_text.encode("utf-8"))
        (run_dir / STARTING_FILE).unlink(missing_ok=True)
        return cls(run_dir, conn, num_eigs, heartbeat_interval)

    # -- context manager ---------------------------------------------------------------------

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None or self._final is not None:
            self.close()
        elif issubclass(exc_type, KeyboardInterrupt):
            self.close("interrupted", "interrupted by the user")
        else:
            self.close("failed", f"{exc_type.__name__}: {one_line(exc)}")

    # -- internals ---------------------------------------------------------------------------

    @property
    def last_step(self) -> int | None:
        """The last step appended by this writer (``None`` before the first)."""
        return self._last_step

    @property
    def closed(self) -> bool:
        return self._closed

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise RunStoreError(f"the writer of {self.path} is closed")
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                if time.monotonic() - self._last_heartbeat >= _HEARTBEAT_MIN_INTERVAL:
                    self._write_heartbeat(conn)
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.IntegrityError):
                    raise ValueError(f"duplicate record in {self.path.name}: "
                                     f"{one_line(exc)}") from exc
                if isinstance(exc, sqlite3.Error):
                    raise _store_error(f"cannot write {self.path / METRICS_FILE}", exc) from exc
                raise

    def _write_heartbeat(self, conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'heartbeat'", (repr(time.time()),))
        self._last_heartbeat = time.monotonic()

    def _step_values(self, row: Mapping[str, Any]) -> tuple:
        """The INSERT parameters of one step row: typed columns, then the packed copy."""
        if not self._allowed_keys.issuperset(row):
            unknown = sorted(set(row) - self._allowed_keys)
            raise ValueError(f"unknown step field(s): {', '.join(unknown)}")
        if row.get("step") is None:
            raise ValueError("a step row needs a 'step' value")
        values: list[Any] = [int(row["step"])]
        for col, is_int in SCALAR_SPECS:
            v = row.get(col)
            if v is None:
                values.append(None)
            elif is_int:
                values.append(int(v))
            else:
                x = float(v)
                values.append(None if x != x else x)
        lambdas: list[float | None] = [None] * self.num_eigs
        spectrum = row.get("lambda_H")
        if spectrum is not None:
            if is_torch_tensor(spectrum):
                spectrum = spectrum.detach().cpu().reshape(-1).tolist()
            elif isinstance(spectrum, np.ndarray):
                spectrum = spectrum.reshape(-1).tolist()
            seq = [float(x) for x in spectrum]
            if len(seq) > self.num_eigs:
                raise ValueError(f"{len(seq)} eigenvalues given, the run records {self.num_eigs}")
            lambdas[: len(seq)] = [None if x != x else x for x in seq]
            if values[_NEG_EIGS] is None:  # neg_eigs defaults to the NaN count of lambda_H
                values[_NEG_EIGS] = sum(1 for x in seq if x != x)
        for i, name in enumerate(self._lambda_names):
            if name in row:
                lambdas[i] = real(row[name])
        values += lambdas
        packed = self._packer.pack(*[math.nan if v is None else v for v in values])
        return (*values, packed)

    def _check_order(self, step: int) -> None:
        if self._last_step is not None and step <= self._last_step:
            raise ValueError(f"step {step} is not after the last recorded step {self._last_step}")

    # -- appends -----------------------------------------------------------------------------

    def append_step(self, row: Mapping[str, Any]) -> None:
        """Append one step row and commit.

        Keys are from :data:`SCALAR_COLUMNS` (missing -> NULL) plus optional ``lambda_H``: a
        sequence of up to ``num_eigs`` floats, NaN for a negative eigenvalue (``neg_eigs``
        defaults to their count). Steps must be strictly increasing.
        """
        values = self._step_values(row)
        with self._lock:
            self._check_order(values[0])
            with self._transaction() as conn:
                conn.execute(self._insert_step_sql, values)
            self._last_step = values[0]

    def append_steps(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Append many step rows in one transaction (bulk import, tests)."""
        values = [self._step_values(row) for row in rows]
        if not values:
            return
        with self._lock:
            last = self._last_step
            for v in values:
                if last is not None and v[0] <= last:
                    raise ValueError(f"step {v[0]} is not after the last recorded step {last}")
                last = v[0]
            with self._transaction() as conn:
                conn.executemany(self._insert_step_sql, values)
            self._last_step = last

    def append_snapshot(self, step: int, values: Mapping[str, float]) -> None:
        """Record the snapshot metrics ``values`` (name -> float, NaN allowed) at ``step``."""
        rows = []
        for name, value in values.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"snapshot metric names must be non-empty strings, got {name!r}")
            rows.append((int(step), name, real(value)))
        if not rows:
            return
        with self._transaction() as conn:
            conn.executemany("INSERT INTO snapshots (step, name, value) VALUES (?, ?, ?)", rows)

    def log_event(self, step: int | None, kind: str, message: str) -> None:
        """Append a log line (``kind`` e.g. ``info``, ``warning``, ``diverged``)."""
        with self._transaction() as conn:
            conn.execute("INSERT INTO events (step, wall, kind, message) VALUES (?, ?, ?, ?)",
                         (None if step is None else int(step), time.time(), str(kind),
                          str(message)))

    def save_checkpoint(self, step: int, tensors: Mapping[str, Any]) -> Path:
        """Atomically write ``checkpoints/step_XXXXXXXX.safetensors``; return its path.

        Values are torch tensors (any device) or numpy arrays.
        """
        return checkpoints.save_checkpoint(self.path, step, tensors)

    def save_training_data(self, X: Any, y: Any, indices: Any) -> None:
        """Atomically write ``data.safetensors`` with ``X``, ``y`` and int64 ``indices``."""
        checkpoints.save_training_data(self.path, X, y, indices)

    # -- liveness, control, status -----------------------------------------------------------

    def heartbeat(self) -> None:
        """Refresh the heartbeat; writes at most once a second, so call it freely."""
        if time.monotonic() - self._last_heartbeat < _HEARTBEAT_MIN_INTERVAL:
            return
        with self._transaction():
            pass  # the transaction writes the heartbeat because it is due

    def poll_control(self) -> str:
        """The current control command (``run``/``pause``/``stop``); re-reads only on change."""
        path = self.path / CONTROL_FILE
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._control_key = None
            self._control = "run"
            return self._control
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self._control_key:
            self._control_key = key
            self._control = read_control(path)
        return self._control

    def set_status(self, status: str, message: str | None = None) -> None:
        """Store ``status`` (one of :data:`STATUSES`) and an optional one-line message."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}")
        final = status in FINAL_STATUSES
        with self._transaction() as conn:
            conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [
                ("status", status), ("status_message", message),
                ("finished_at", now_iso() if final else None),
            ])
            self._write_heartbeat(conn)
        self._final = status if final else None

    def close(self, status: str | None = None, message: str | None = None) -> None:
        """Set the final status and close. Idempotent.

        ``status=None`` means ``finished`` unless a final status was already set (e.g. by
        ``set_status("diverged")``); an explicit status always wins.
        """
        if self._closed:
            return
        if self._heartbeat_thread is not None:
            self._heartbeat_thread.stop()
        if status is None and self._final is None:
            status = "finished"
        try:
            if status is not None:
                try:
                    self.set_status(status, message)
                except RunStoreError:
                    if not self._release_reserve():
                        raise
                    self.set_status(status, message)  # a full disk: now there is room
        finally:
            with self._lock:
                self._closed = True
                self._conn.close()
            self._release_reserve()

    def _release_reserve(self) -> bool:
        """Delete the ``.reserve`` file; whether there was one to give back."""
        try:
            (self.path / RESERVE_FILE).unlink()
        except OSError:
            return False
        return True

    @classmethod
    def reopen(cls, run_dir: Path | str, *, heartbeat_interval: float | None = 5.0) -> "RunWriter":
        """Become the writer of an existing run again (``engine.resume``): the run is marked
        ``running`` with this process as its writer and appends continue after its last step.

        The caller makes sure the previous writer is gone (a reader reports the run
        ``interrupted``): a run has exactly one writer.
        """
        run_dir = Path(run_dir).expanduser()
        db = run_dir / METRICS_FILE
        if not db.is_file() or not (run_dir / RUN_FILE).is_file():
            raise RunStoreError(f"{run_dir} is not an eos-tui run directory")
        conn = None
        try:
            conn = connect(db, create=False)
            conn.execute("PRAGMA synchronous=NORMAL")
            columns, _ = read_step_columns(conn, db)
            if not set(SCALAR_COLUMNS) <= set(columns):
                raise RunStoreError(f"{run_dir} was written by an older eos-tui (store schema < "
                                    f"{SCHEMA_VERSION}): it can be read, not continued")
            num_eigs = sum(c.startswith("lambda_H_") for c in columns)
            last = conn.execute("SELECT MAX(step) FROM steps").fetchone()[0]
            _write_reserve(run_dir)  # given back when the run last ended
        except BaseException as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, sqlite3.Error):
                raise _store_error(f"cannot reopen {db}", exc) from exc
            raise
        writer = cls(run_dir, conn, num_eigs, heartbeat_interval)
        writer._last_step = last
        with writer._transaction() as tx:
            tx.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [
                ("status", "running"), ("status_message", None), ("finished_at", None),
                ("pid", str(os.getpid())), ("hostname", socket.gethostname()),
            ])
            writer._write_heartbeat(tx)
        return writer
