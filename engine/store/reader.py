"""Reading a run directory: :class:`Run` (safe while the writer writes), :func:`open_run`."""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import RunStoreError
from engine.store import checkpoints
from engine.store.liveness import creation_state, read_control, writer_gone
from engine.store.schema import (
    CONFIG_FILE,
    CONTROL_FILE,
    DEFAULT_STALE_AFTER,
    METRICS_FILE,
    PACKED_COLUMN,
    PACKED_DTYPE,
    RUN_FILE,
    connect,
    logical_step_columns,
    one_line,
    read_step_columns,
)

if TYPE_CHECKING:
    import torch


@dataclass
class RunSummary:
    """One line of ``eos-tui runs``. Transient steps are excluded from the maxima."""

    path: Path
    name: str
    status: str
    preset: str | None
    solver: str | None
    steps: int
    t: float | None
    final_loss: float | None
    max_lambda: float | None
    max_P1: float | None
    started: str | None
    message: str | None = None


class Run:
    """Read-only view of a run directory; safe to use while the writer is writing.

    Holds one SQLite connection guarded by a lock (usable from worker threads). Every query is
    its own short read transaction, so polling ``steps(since=last)`` never blocks the writer.
    """

    def __init__(self, path: Path | str, *, stale_after: float = DEFAULT_STALE_AFTER) -> None:
        p = Path(path).expanduser()
        if not p.exists():
            raise RunStoreError(f"run directory {p} does not exist")
        if not p.is_dir():
            raise RunStoreError(f"{p} is not a directory")
        missing = [f for f in (METRICS_FILE, RUN_FILE) if not (p / f).is_file()]
        if missing:
            state = creation_state(p, stale_after)
            if state is not None and state[0] == "starting":
                raise RunStoreError(f"run {p} is still starting ({state[1]}); try again in a moment")
            if state is not None:
                raise RunStoreError(f"run {p} was never completed: {state[1]}")
            raise RunStoreError(f"{p} is not an eos-tui run directory (no {' or '.join(missing)})")
        self.path = p
        self.stale_after = float(stale_after)
        self._lock = threading.RLock()
        self._closed = False
        self.meta = self._read_meta_json()
        self.config = self._read_config()
        db = p / METRICS_FILE
        conn: sqlite3.Connection | None = None
        try:
            conn = connect(db, create=False)
            conn.execute("PRAGMA query_only=ON")
            columns, has_packed = read_step_columns(conn, db)
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            raise RunStoreError(f"{db} is corrupt or unreadable: {one_line(exc)}") from exc
        except RunStoreError:
            conn.close()
            raise
        self._conn = conn
        self._has_packed = has_packed
        self._stored_columns = columns  # the table's own (a store of an older schema lacks some)
        self._step_columns = logical_step_columns(columns)
        self.num_eigs = sum(1 for c in columns if c.startswith("lambda_H_"))

    def _read_meta_json(self) -> dict[str, Any]:
        path = self.path / RUN_FILE
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise RunStoreError(f"{path} is unreadable: {one_line(exc)}") from exc
        if not isinstance(meta, dict):
            raise RunStoreError(f"{path} does not hold a JSON object")
        return meta

    def _read_config(self) -> dict[str, Any]:
        path = self.path / CONFIG_FILE
        try:
            return tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise RunStoreError(f"config {path} is unreadable: {one_line(exc)}") from exc

    # -- plumbing ----------------------------------------------------------------------------

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection. Idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            if self._closed:
                raise RunStoreError(f"run {self.path} is closed")
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise RunStoreError(f"cannot read {self.path / METRICS_FILE}: "
                                    f"{one_line(exc)}") from exc

    def _meta_table(self) -> dict[str, str | None]:
        return dict(self._query("SELECT key, value FROM meta"))

    def _state(self) -> tuple[str, bool, str | None]:
        """(status, crashed, message) from one read of the ``meta`` table."""
        meta = self._meta_table()
        status = meta.get("status") or "failed"
        message = meta.get("status_message")
        if status == "running" and writer_gone(meta, self.stale_after):
            return "interrupted", True, message or "the writer stopped without a final status"
        return status, False, message

    # -- status ------------------------------------------------------------------------------

    @property
    def status(self) -> str:
        """``running``/``finished``/``diverged``/``interrupted``/``failed`` (re-read each time)."""
        return self._state()[0]

    @property
    def crashed(self) -> bool:
        """True when the stored status is ``running`` but the writer is gone."""
        return self._state()[1]

    @property
    def status_message(self) -> str | None:
        return self._state()[2]

    @property
    def control(self) -> str:
        """The control word currently in effect (``run`` when none was sent)."""
        return read_control(self.path / CONTROL_FILE)

    # -- steps -------------------------------------------------------------------------------

    @property
    def step_columns(self) -> list[str]:
        """The step columns, ``step`` first: those of the current schema (a store written by an
        older version reads as NaN in the ones it lacks), then ``lambda_H_1..K``."""
        return list(self._step_columns)

    def steps(self, since: int | None = None,
              columns: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Columnar arrays of the rows with ``step > since`` (all rows when ``None``).

        ``step`` is int64 and always included; everything else is float64 with NaN for
        NULL/NaN. ``columns=None`` gives every column including ``lambda_H_1..K``.
        """
        if columns is None:
            cols = list(self._step_columns)
        else:
            unknown = [c for c in columns if c not in self._step_columns]
            if unknown:
                raise RunStoreError(f"unknown step column(s) {', '.join(unknown)}; known: "
                                    f"{', '.join(self._step_columns)}")
            cols = ["step"] + [c for c in dict.fromkeys(columns) if c != "step"]
        where, params = ("", ()) if since is None else (" WHERE step > ?", (int(since),))
        stored = [c for c in cols if c in self._stored_columns]  # "step" is always stored
        table = self._packed_steps(stored, where, params) if self._has_packed else None
        if table is None:
            rows = self._query(f"SELECT {', '.join(stored)} FROM steps{where} ORDER BY step", params)
            table = (np.array(rows, dtype=np.float64).T.copy() if rows
                     else np.empty((len(stored), 0), dtype=np.float64))
        columns = dict(zip(stored, table))
        missing = np.full(table.shape[1], np.nan)  # columns newer than the store: NaN
        out = {c: columns[c] if c in columns else missing.copy() for c in cols}
        out["step"] = table[0].astype(np.int64)
        return out

    def _packed_steps(self, cols: list[str], where: str,
                      params: tuple) -> np.ndarray | None:
        """(len(cols), n) float64 table decoded from the packed row copies; ``None`` if any
        row lacks a valid packed copy (the caller then reads the typed columns)."""
        blobs = [r[0] for r in self._query(
            f"SELECT {PACKED_COLUMN} FROM steps{where} ORDER BY step", params)]
        if None in blobs:
            return None
        width = len(self._stored_columns)
        data = b"".join(blobs)
        if len(data) != len(blobs) * width * PACKED_DTYPE.itemsize:
            return None
        wide = np.frombuffer(data, dtype=PACKED_DTYPE).reshape(len(blobs), width)
        idx = [self._stored_columns.index(c) for c in cols]
        return wide[:, idx].T.astype(np.float64)

    def last_step(self) -> int | None:
        return self._query("SELECT MAX(step) FROM steps")[0][0]

    def num_steps(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM steps")[0][0])

    # -- snapshots and events ----------------------------------------------------------------

    def snapshot_steps(self) -> np.ndarray:
        rows = self._query("SELECT DISTINCT step FROM snapshots ORDER BY step")
        return np.array([r[0] for r in rows], dtype=np.int64)

    def snapshots(self, since: int | None = None) -> dict[str, np.ndarray]:
        """Wide columnar snapshots: ``step`` (int64) plus one float64 array per metric name
        (NaN where the metric is missing or NaN), rows ordered by step."""
        sql = "SELECT step, name, value FROM snapshots"
        params: tuple = ()
        if since is not None:
            sql += " WHERE step > ?"
            params = (int(since),)
        rows = self._query(sql + " ORDER BY step, rowid", params)
        if not rows:
            return {"step": np.empty(0, dtype=np.int64)}
        step_arr = np.array([r[0] for r in rows], dtype=np.int64)
        steps, step_idx = np.unique(step_arr, return_inverse=True)
        names: dict[str, int] = {}
        name_idx = np.array([names.setdefault(r[1], len(names)) for r in rows], dtype=np.int64)
        values = np.array([r[2] for r in rows], dtype=np.float64)
        wide = np.full((len(names), len(steps)), np.nan)
        wide[name_idx, step_idx] = values
        out: dict[str, np.ndarray] = {"step": steps}
        out.update({name: wide[j] for name, j in names.items()})
        return out

    def snapshot_at(self, step: int) -> dict[str, float]:
        """The snapshot metrics recorded at ``step`` (NaN for NaN values)."""
        rows = self._query("SELECT name, value FROM snapshots WHERE step = ? ORDER BY rowid",
                           (int(step),))
        if not rows:
            raise RunStoreError(f"no snapshot at step {step} in {self.path}; snapshots exist at "
                                f"steps {checkpoints.format_steps(self.snapshot_steps().tolist())}")
        return {name: math.nan if value is None else float(value) for name, value in rows}

    def events(self, since: int | None = None) -> list[dict[str, Any]]:
        """Log lines as dicts ``id, step, wall, kind, message``; ``since`` filters on ``id``."""
        sql = "SELECT id, step, wall, kind, message FROM events"
        params: tuple = ()
        if since is not None:
            sql += " WHERE id > ?"
            params = (int(since),)
        keys = ("id", "step", "wall", "kind", "message")
        return [dict(zip(keys, r)) for r in self._query(sql + " ORDER BY id", params)]

    # -- tensors -----------------------------------------------------------------------------

    def checkpoint_steps(self) -> list[int]:
        """Steps with a complete checkpoint, ascending (``*.tmp`` leftovers are ignored)."""
        return checkpoints.checkpoint_steps(self.path)

    def checkpoint(self, step: int | None = None) -> dict[str, "torch.Tensor"]:
        """Tensors of the checkpoint at ``step`` (``None``: the latest)."""
        return checkpoints.load_checkpoint(self.path, step)

    def training_data(self) -> dict[str, "torch.Tensor"]:
        """The exact training tensors ``X``, ``y``, ``indices`` of the run."""
        return checkpoints.load_training_data(self.path)

    # -- summary -----------------------------------------------------------------------------

    def summary(self) -> RunSummary:
        """Headline numbers; maxima skip the transient steps (``transient = 1``)."""
        status, _, message = self._state()
        stored = self._meta_table()
        last = self._query("SELECT COUNT(*), (SELECT t FROM steps ORDER BY step DESC LIMIT 1),"
                           " (SELECT loss FROM steps ORDER BY step DESC LIMIT 1) FROM steps")[0]
        max_lambda = None
        if self.num_eigs:
            max_lambda = self._query(
                "SELECT MAX(lambda_H_1) FROM steps WHERE transient IS NOT 1")[0][0]
        max_p1 = self._query(
            "SELECT MAX(value) FROM snapshots WHERE name = 'P_1' AND step NOT IN"
            " (SELECT step FROM steps WHERE transient = 1)")[0][0]
        train = self.config.get("train")
        solver = self.meta.get("solver")
        if solver is None and isinstance(train, dict):
            solver = train.get("solver")
        preset = self.meta.get("preset", self.config.get("preset"))
        return RunSummary(
            path=self.path, name=self.path.name, status=status,
            preset=None if preset is None else str(preset),
            solver=None if solver is None else str(solver),
            steps=int(last[0]), t=last[1], final_loss=last[2], max_lambda=max_lambda,
            max_P1=max_p1, started=self.meta.get("created") or stored.get("created"),
            message=message,
        )


def open_run(path: Path | str, *, stale_after: float = DEFAULT_STALE_AFTER) -> Run:
    """Open a run directory for reading (see :class:`Run`)."""
    return Run(path, stale_after=stale_after)
