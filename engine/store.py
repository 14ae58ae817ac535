"""Run directory: the append-only, crash-safe record of one training run.

A run directory is written by exactly one :class:`RunWriter` (the training engine, usually a
separate process) and read concurrently by any number of :class:`Run` readers (the live UI in
follow mode, replay, export, ``eos-tui runs``). Killing the writer with ``kill -9`` loses at most
the step in flight; the run still opens, replays and reports itself ``interrupted``.

Layout of ``RUN/``
==================

``config.toml``
    The resolved configuration (nested tables ``[model]``, ``[data]``, ``[train]`` ..., plus a
    top-level ``preset`` string), written once at creation by :func:`dumps_toml`. ``None``
    values are omitted. Read back with :mod:`tomllib` as :attr:`Run.config`.
``run.json``
    Static metadata passed to :meth:`RunWriter.create` (preset, solver, device, ``num_eigs``,
    depth, ``num_params``, ``created`` ISO time, versions ...). ``num_eigs`` is always present.
    Read back as :attr:`Run.meta`.
``metrics.sqlite``
    SQLite in WAL mode (``journal_mode=WAL``, ``synchronous=NORMAL``: every commit survives a
    crash of the process). One transaction per appended step. Tables:

    ``steps`` -- one row per recorded training step::

        step INTEGER PRIMARY KEY, t REAL, loss REAL, accuracy REAL, grad_norm REAL, lr REAL,
        tau REAL, threshold REAL, wall_s REAL, hvp_count INTEGER, transient INTEGER,
        neg_eigs INTEGER, lambda_H_1 REAL, ..., lambda_H_K REAL, packed BLOB

      ``K = num_eigs`` is fixed at creation. SQLite cannot store NaN (it becomes NULL), so
      every NaN or missing value is stored as NULL and read back as ``nan``. For eigenvalues
      the two cases stay distinguishable through ``neg_eigs``: the number of top eigenvalues
      recorded as NaN (negative) that step; ``NULL`` when no spectrum was computed. Steps are
      strictly increasing. ``transient = 1`` flags the initial transient (spec section 7):
      stored, but excluded from :class:`RunSummary`. ``packed`` is a read accelerator
      redundant with the typed columns: the row's ``12 + K`` values in column order as
      little-endian float64 (NULL -> NaN), so :meth:`Run.steps` decodes 100k rows with one
      ``numpy.frombuffer`` instead of building millions of Python floats. Other tools should
      query the typed columns; rows without a valid ``packed`` fall back to them.
    ``snapshots`` -- long format ``(step INTEGER, name TEXT, value REAL, PRIMARY KEY(step,
      name))``; names as in spec section 7 with 1-based layer suffixes: ``lambda_G1``,
      ``lambda_HmG1``, ``overlap_ratio``, ``EK2``, ``a_L``, ``EK2_layer_1``, ``s_1``, ``r_1``,
      ``P_1``, ``m_1``, ``kappa_1`` ... NaN is stored as NULL.
    ``events`` -- ``(id INTEGER PRIMARY KEY, step INTEGER, wall REAL, kind TEXT, message
      TEXT)``: the run's log lines (``wall`` is unix time, ``step`` may be NULL).
    ``meta`` -- ``(key TEXT PRIMARY KEY, value TEXT)``: ``schema_version``, ``num_eigs``,
      ``created``, ``status``, ``status_message``, ``pid``, ``hostname``, ``heartbeat`` (unix
      time of the writer's last sign of life), ``finished_at`` (ISO, set with a final status).
``checkpoints/step_00000100.safetensors``
    Weight checkpoints (e.g. ``{"theta": flat params, "eigvecs": (P, k)}``), step zero-padded
    to 8 digits. Written to a ``*.tmp`` file, fsynced and renamed, so a checkpoint appears
    under its final name only when complete; leftover ``*.tmp`` files are ignored.
``data.safetensors``
    The exact training tensors of the run: ``X`` ``(n, d_0)``, ``y`` ``(n,)``, ``indices``
    (int64 indices into the full training set). Written atomically.
``control``
    One word, ``run``, ``pause`` or ``stop``, written atomically by :func:`send_control` (the
    UI) and polled by the engine with :meth:`RunWriter.poll_control`. Missing means ``run``.

Status
======

``status`` is one of :data:`STATUSES`. A run whose stored status is ``running`` but whose
writer is gone (its pid is not alive on this host, or its heartbeat is older than
``stale_after`` seconds, default 30) is reported as ``interrupted`` with
:attr:`Run.crashed` true; readers never modify the store. The writer refreshes the heartbeat
from a background thread (every 5 s by default) and on :meth:`RunWriter.heartbeat`, so long
steps do not look like crashes. :func:`list_runs` reports unreadable runs as ``corrupt``.

Errors
======

Problems a user can cause (missing or corrupt run, non-empty output directory, bad control
command, missing checkpoint) raise :class:`engine.errors.RunStoreError` with a one-line
message. Programming errors (unknown step field, non-increasing step, bad status) raise
``ValueError`` or ``TypeError``.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import socket
import sqlite3
import struct
import threading
import time
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from engine.errors import EosError, RunStoreError

if TYPE_CHECKING:
    import torch

__all__ = [
    "STATUSES",
    "FINAL_STATUSES",
    "CONTROL_COMMANDS",
    "SCALAR_COLUMNS",
    "DEFAULT_STALE_AFTER",
    "RunWriter",
    "Run",
    "RunSummary",
    "open_run",
    "list_runs",
    "is_run_dir",
    "send_control",
    "dumps_toml",
]

STATUSES = ("running", "finished", "diverged", "interrupted", "failed")
FINAL_STATUSES = ("finished", "diverged", "interrupted", "failed")
CONTROL_COMMANDS = ("run", "pause", "stop")
SCALAR_COLUMNS = (
    "step", "t", "loss", "accuracy", "grad_norm", "lr", "tau", "threshold", "wall_s",
    "hvp_count", "transient", "neg_eigs",
)
INTEGER_COLUMNS = frozenset({"step", "hvp_count", "transient", "neg_eigs"})
_SCALAR_SPECS = tuple((c, c in INTEGER_COLUMNS) for c in SCALAR_COLUMNS[1:])
PACKED_COLUMN = "packed"
_PACKED_DTYPE = np.dtype("<f8")
DEFAULT_STALE_AFTER = 30.0
SCHEMA_VERSION = 1

CONFIG_FILE = "config.toml"
RUN_FILE = "run.json"
METRICS_FILE = "metrics.sqlite"
CHECKPOINT_DIR = "checkpoints"
DATA_FILE = "data.safetensors"
CONTROL_FILE = "control"

_CHECKPOINT_RE = re.compile(r"^step_(\d+)\.safetensors$")
_HEARTBEAT_MIN_INTERVAL = 1.0
_BUSY_TIMEOUT_MS = 10_000


def _lambda_columns(k: int) -> list[str]:
    return [f"lambda_H_{i}" for i in range(1, k + 1)]


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------
# Atomic files
# --------------------------------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (best effort; not possible on every OS)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a fsynced ``*.tmp`` file and ``os.replace``."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RunStoreError(f"cannot write {path}: {_one_line(exc)}") from exc
    _fsync_dir(path.parent)


# --------------------------------------------------------------------------------------------
# TOML writer
# --------------------------------------------------------------------------------------------

_BARE_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
                 "\r": "\\r"}


def _toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"TOML keys must be strings, got {key!r}")
    return key if _BARE_KEY_RE.match(key) else _toml_string(key)


def _toml_value(value: Any, where: str) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        x = float(value)
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return repr(x)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, os.PathLike):
        return _toml_string(os.fspath(value))
    if isinstance(value, Mapping):
        items = [f"{_toml_key(k)} = {_toml_value(v, f'{where}.{k}')}"
                 for k, v in value.items() if v is not None]
        return "{" + ", ".join(items) + "}"
    if isinstance(value, (list, tuple)):
        if any(v is None for v in value):
            raise TypeError(f"cannot write None inside the list at {where} to TOML")
        return "[" + ", ".join(_toml_value(v, f"{where}[]") for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} value at {where} to TOML")


def _emit_table(lines: list[str], prefix: tuple[str, ...], table: Mapping[str, Any]) -> None:
    scalars = [(k, v) for k, v in table.items() if v is not None and not isinstance(v, Mapping)]
    tables = [(k, v) for k, v in table.items() if isinstance(v, Mapping)]
    if prefix and (scalars or not tables):
        lines.append("")
        lines.append("[" + ".".join(_toml_key(k) for k in prefix) + "]")
    for key, value in scalars:
        lines.append(f"{_toml_key(key)} = {_toml_value(value, '.'.join(prefix + (key,)))}")
    for key, value in tables:
        _emit_table(lines, prefix + (key,), value)


def dumps_toml(data: Mapping[str, Any], header: str | None = None) -> str:
    """Serialise a nested dict of str/int/float/bool/list/dict to TOML; ``None`` is omitted.

    ``tomllib.loads(dumps_toml(d))`` equals ``d`` without its ``None`` values (tuples come back
    as lists, paths as strings). ``header`` is written as leading ``#`` comment lines.
    """
    lines = [f"# {line}".rstrip() for line in header.splitlines()] if header else []
    _emit_table(lines, (), data)
    while lines and lines[0] == "":
        lines.pop(0)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Tensors
# --------------------------------------------------------------------------------------------


def _is_torch_tensor(value: Any) -> bool:
    return hasattr(value, "detach") and hasattr(value, "untyped_storage")


def _encode_tensors(tensors: Mapping[str, Any], metadata: dict[str, str] | None) -> bytes:
    """Serialise torch tensors or numpy arrays to safetensors bytes.

    All-numpy input is written without importing torch (cheap writers and tests); anything
    else goes through torch. Tensors are moved to the CPU and copied so that views that share
    storage can be saved.
    """
    if not tensors:
        raise ValueError("cannot save an empty set of tensors")
    if not all(isinstance(v, np.ndarray) for v in tensors.values()):
        import torch
        from safetensors.torch import save

        prepared = {}
        for name, value in tensors.items():
            t = value.detach() if _is_torch_tensor(value) else torch.as_tensor(value)
            t = t.cpu() if t.device.type != "cpu" else t.clone()
            prepared[name] = t.contiguous()
        return save(prepared, metadata=metadata)
    from safetensors.numpy import save as save_numpy

    return save_numpy({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=metadata)


def _load_tensors(path: Path, what: str) -> dict[str, "torch.Tensor"]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except FileNotFoundError as exc:
        raise RunStoreError(f"{what} {path} does not exist") from exc
    except Exception as exc:  # safetensors raises its own error type for corrupt headers
        raise RunStoreError(f"{what} {path} is unreadable: {_one_line(exc)}") from exc


# --------------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------------


def _real(value: Any) -> float | None:
    """A float for SQLite; NaN and None become NULL."""
    if value is None:
        return None
    x = float(value)
    return None if math.isnan(x) else x


def _connect(db: Path, *, create: bool) -> sqlite3.Connection:
    mode = "rwc" if create else "rw"
    uri = f"{db.resolve().as_uri()}?mode={mode}"
    conn = sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_MS / 1000,
                           isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    return conn


class _HeartbeatThread(threading.Thread):
    """Refreshes ``meta.heartbeat`` every ``interval`` seconds through its own connection."""

    def __init__(self, db: Path, interval: float) -> None:
        super().__init__(name="eos-run-heartbeat", daemon=True)
        self._db = db
        self._interval = interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            conn = _connect(self._db, create=False)
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
        self._lambda_names = _lambda_columns(num_eigs)
        self._allowed_keys = frozenset(SCALAR_COLUMNS) | {"lambda_H"} | set(self._lambda_names)
        self._packer = struct.Struct(f"<{len(SCALAR_COLUMNS) + num_eigs}d")
        columns = list(SCALAR_COLUMNS) + self._lambda_names + [PACKED_COLUMN]
        self._insert_step_sql = (f"INSERT INTO steps ({', '.join(columns)}) "
                                 f"VALUES ({', '.join('?' * len(columns))})")
        self._heartbeat_thread: _HeartbeatThread | None = None
        if heartbeat_interval is not None:
            self._heartbeat_thread = _HeartbeatThread(path / METRICS_FILE, heartbeat_interval)
            self._heartbeat_thread.start()

    @classmethod
    def create(cls, run_dir: Path | str, *, config: Mapping[str, Any], meta: Mapping[str, Any],
               num_eigs: int, heartbeat_interval: float | None = 5.0) -> "RunWriter":
        """Create a new run directory and return its writer (status ``running``).

        ``run_dir`` may not exist yet (parents are created) or must be an empty directory.
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
            if any(run_dir.iterdir()):
                raise RunStoreError(
                    f"cannot create run: {run_dir} already exists and is not empty")
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / CHECKPOINT_DIR).mkdir(exist_ok=True)
        except OSError as exc:
            raise RunStoreError(f"cannot create run directory {run_dir}: {_one_line(exc)}") from exc
        _atomic_write(run_dir / CONFIG_FILE, config_text.encode("utf-8"))

        db = run_dir / METRICS_FILE
        try:
            conn = _connect(db, create=True)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            lambda_defs = "".join(f", {name} REAL" for name in _lambda_columns(num_eigs))
            now = time.time()
            rows = {
                "schema_version": str(SCHEMA_VERSION), "num_eigs": str(num_eigs),
                "created": str(meta.get("created") or _now_iso()), "status": "running",
                "status_message": None, "pid": str(os.getpid()),
                "hostname": socket.gethostname(), "heartbeat": repr(now), "finished_at": None,
            }
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "CREATE TABLE steps (step INTEGER PRIMARY KEY, t REAL, loss REAL, accuracy REAL,"
                " grad_norm REAL, lr REAL, tau REAL, threshold REAL, wall_s REAL,"
                f" hvp_count INTEGER, transient INTEGER, neg_eigs INTEGER{lambda_defs},"
                f" {PACKED_COLUMN} BLOB)")
            conn.execute("CREATE TABLE snapshots (step INTEGER NOT NULL, name TEXT NOT NULL,"
                         " value REAL, PRIMARY KEY (step, name))")
            conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, step INTEGER,"
                         " wall REAL NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL)")
            conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", rows.items())
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise RunStoreError(f"cannot create {db}: {_one_line(exc)}") from exc
        _atomic_write(run_dir / RUN_FILE, meta_text.encode("utf-8"))
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
            self.close("failed", f"{exc_type.__name__}: {_one_line(exc)}")

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
                                     f"{_one_line(exc)}") from exc
                if isinstance(exc, sqlite3.Error):
                    raise RunStoreError(f"cannot write {self.path / METRICS_FILE}: "
                                        f"{_one_line(exc)}") from exc
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
        for col, is_int in _SCALAR_SPECS:
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
            if _is_torch_tensor(spectrum):
                spectrum = spectrum.detach().cpu().reshape(-1).tolist()
            elif isinstance(spectrum, np.ndarray):
                spectrum = spectrum.reshape(-1).tolist()
            seq = [float(x) for x in spectrum]
            if len(seq) > self.num_eigs:
                raise ValueError(f"{len(seq)} eigenvalues given, the run records {self.num_eigs}")
            lambdas[: len(seq)] = [None if x != x else x for x in seq]
            if values[-1] is None:  # neg_eigs defaults to the NaN count of lambda_H
                values[-1] = sum(1 for x in seq if x != x)
        for i, name in enumerate(self._lambda_names):
            if name in row:
                lambdas[i] = _real(row[name])
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
            rows.append((int(step), name, _real(value)))
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
        step = int(step)
        if step < 0:
            raise ValueError(f"checkpoint step must be >= 0, got {step}")
        data = _encode_tensors(tensors, {"step": str(step)})
        path = self.path / CHECKPOINT_DIR / f"step_{step:08d}.safetensors"
        _atomic_write(path, data)
        return path

    def save_training_data(self, X: Any, y: Any, indices: Any) -> None:
        """Atomically write ``data.safetensors`` with ``X``, ``y`` and int64 ``indices``."""
        if _is_torch_tensor(indices):
            import torch

            indices = indices.detach().to(torch.int64)
        else:
            indices = np.asarray(indices, dtype=np.int64)
        _atomic_write(self.path / DATA_FILE, _encode_tensors({"X": X, "y": y, "indices": indices},
                                                             None))

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
            self._control = _read_control(path)
        return self._control

    def set_status(self, status: str, message: str | None = None) -> None:
        """Store ``status`` (one of :data:`STATUSES`) and an optional one-line message."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}")
        final = status in FINAL_STATUSES
        with self._transaction() as conn:
            conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [
                ("status", status), ("status_message", message),
                ("finished_at", _now_iso() if final else None),
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
                self.set_status(status, message)
        finally:
            with self._lock:
                self._closed = True
                self._conn.close()


def _read_control(path: Path) -> str:
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
    _atomic_write(run_dir / CONTROL_FILE, f"{command}\n".encode("ascii"))


# --------------------------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------------------------


def is_run_dir(path: Path | str) -> bool:
    """True if ``path`` is a directory holding ``metrics.sqlite`` and ``run.json``."""
    p = Path(path)
    return p.is_dir() and (p / METRICS_FILE).is_file() and (p / RUN_FILE).is_file()


def _pid_alive(pid: int) -> bool:
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


def _format_steps(steps: Sequence[int]) -> str:
    if not steps:
        return "none"
    if len(steps) <= 10:
        return ", ".join(str(s) for s in steps)
    head = ", ".join(str(s) for s in steps[:5])
    tail = ", ".join(str(s) for s in steps[-3:])
    return f"{head}, ..., {tail} ({len(steps)} in all)"


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
            conn = _connect(db, create=False)
            conn.execute("PRAGMA query_only=ON")
            table_columns = [r[1] for r in conn.execute("PRAGMA table_info(steps)").fetchall()]
            conn.execute("SELECT key FROM meta LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            raise RunStoreError(f"{db} is corrupt or unreadable: {_one_line(exc)}") from exc
        self._conn = conn
        columns = [c for c in table_columns if c != PACKED_COLUMN]
        self._has_packed = PACKED_COLUMN in table_columns
        if columns[: len(SCALAR_COLUMNS)] != list(SCALAR_COLUMNS):
            self._conn.close()
            raise RunStoreError(f"{db} is not an eos-tui metric store (unexpected steps table)")
        self._step_columns = columns
        self.num_eigs = sum(1 for c in columns if c.startswith("lambda_H_"))

    def _read_meta_json(self) -> dict[str, Any]:
        path = self.path / RUN_FILE
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise RunStoreError(f"{path} is unreadable: {_one_line(exc)}") from exc
        if not isinstance(meta, dict):
            raise RunStoreError(f"{path} does not hold a JSON object")
        return meta

    def _read_config(self) -> dict[str, Any]:
        path = self.path / CONFIG_FILE
        try:
            return tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise RunStoreError(f"config {path} is unreadable: {_one_line(exc)}") from exc

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
                                    f"{_one_line(exc)}") from exc

    def _meta_table(self) -> dict[str, str | None]:
        return dict(self._query("SELECT key, value FROM meta"))

    def _state(self) -> tuple[str, bool, str | None]:
        """(status, crashed, message) from one read of the ``meta`` table."""
        meta = self._meta_table()
        status = meta.get("status") or "failed"
        message = meta.get("status_message")
        if status == "running" and self._writer_gone(meta):
            return "interrupted", True, message or "the writer stopped without a final status"
        return status, False, message

    def _writer_gone(self, meta: Mapping[str, str | None]) -> bool:
        try:
            heartbeat = float(meta.get("heartbeat") or "nan")
        except ValueError:
            heartbeat = math.nan
        if not time.time() - heartbeat <= self.stale_after:  # also true for a NaN heartbeat
            return True
        try:
            pid = int(meta.get("pid") or 0)
        except ValueError:
            pid = 0
        return (pid > 0 and meta.get("hostname") == socket.gethostname()
                and not _pid_alive(pid))

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
        return _read_control(self.path / CONTROL_FILE)

    # -- steps -------------------------------------------------------------------------------

    @property
    def step_columns(self) -> list[str]:
        """All columns of the ``steps`` table, ``step`` first."""
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
        table = self._packed_steps(cols, where, params) if self._has_packed else None
        if table is None:
            rows = self._query(f"SELECT {', '.join(cols)} FROM steps{where} ORDER BY step", params)
            table = (np.array(rows, dtype=np.float64).T.copy() if rows
                     else np.empty((len(cols), 0), dtype=np.float64))
        out = {c: table[i] for i, c in enumerate(cols)}
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
        width = len(self._step_columns)
        data = b"".join(blobs)
        if len(data) != len(blobs) * width * _PACKED_DTYPE.itemsize:
            return None
        wide = np.frombuffer(data, dtype=_PACKED_DTYPE).reshape(len(blobs), width)
        idx = [self._step_columns.index(c) for c in cols]
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
                                f"steps {_format_steps(self.snapshot_steps().tolist())}")
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
        try:
            names = os.listdir(self.path / CHECKPOINT_DIR)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise RunStoreError(f"cannot list checkpoints of {self.path}: {_one_line(exc)}") from exc
        return sorted(int(m.group(1)) for m in map(_CHECKPOINT_RE.match, names) if m)

    def checkpoint(self, step: int | None = None) -> dict[str, "torch.Tensor"]:
        """Tensors of the checkpoint at ``step`` (``None``: the latest)."""
        steps = self.checkpoint_steps()
        if not steps:
            raise RunStoreError(f"run {self.path} has no checkpoints")
        if step is None:
            step = steps[-1]
        elif int(step) not in steps:
            raise RunStoreError(f"no checkpoint at step {step} in {self.path}; checkpoints exist "
                                f"at steps {_format_steps(steps)}")
        path = self.path / CHECKPOINT_DIR / f"step_{int(step):08d}.safetensors"
        return _load_tensors(path, "checkpoint")

    def training_data(self) -> dict[str, "torch.Tensor"]:
        """The exact training tensors ``X``, ``y``, ``indices`` of the run."""
        path = self.path / DATA_FILE
        if not path.is_file():
            raise RunStoreError(f"run {self.path} has no training data ({DATA_FILE} is missing)")
        return _load_tensors(path, "training data")

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


def _looks_like_run(path: Path) -> bool:
    return path.is_dir() and any((path / f).exists() for f in (METRICS_FILE, RUN_FILE))


def _sort_key(summary: RunSummary) -> float:
    if summary.started:
        try:
            return datetime.fromisoformat(summary.started).timestamp()
        except ValueError:
            pass
    try:
        return summary.path.stat().st_mtime
    except OSError:
        return 0.0


def _corrupt_summary(path: Path, exc: BaseException) -> RunSummary:
    """Listing entry for a run that cannot be opened; keeps what ``run.json`` still tells."""
    try:
        meta = json.loads((path / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        meta = {}
    meta = meta if isinstance(meta, dict) else {}
    text = {k: None if meta.get(k) is None else str(meta[k]) for k in ("preset", "solver",
                                                                        "created")}
    return RunSummary(path=path, name=path.name, status="corrupt", preset=text["preset"],
                      solver=text["solver"], steps=0, t=None, final_loss=None, max_lambda=None,
                      max_P1=None, started=text["created"], message=_one_line(exc))


def list_runs(root: Path | str) -> list[RunSummary]:
    """Summaries of ``root`` (if it is a run) and of every run directly under it, newest first.

    Directories that are not runs are skipped; runs that cannot be read are listed with status
    ``corrupt`` and the reason in ``message``.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise RunStoreError(f"runs folder {root} does not exist")
    if not root.is_dir():
        raise RunStoreError(f"runs folder {root} is not a directory")
    candidates = [root] if _looks_like_run(root) else []
    candidates += sorted(p for p in root.iterdir() if _looks_like_run(p))
    summaries = []
    for path in candidates:
        try:
            with open_run(path) as run:
                summaries.append(run.summary())
        except (EosError, OSError, sqlite3.Error) as exc:
            summaries.append(_corrupt_summary(path, exc))
    summaries.sort(key=_sort_key, reverse=True)
    return summaries
