"""The layout of a run directory and the schema of its metric store (and its migrations).

Everything that names a file of ``RUN/`` or a column of ``metrics.sqlite`` lives here, so that the
writer, the reader and the listing agree on one definition. See :mod:`engine.store` for the
layout as a whole.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import RunStoreError

STATUSES = ("running", "finished", "diverged", "interrupted", "failed")
FINAL_STATUSES = ("finished", "diverged", "interrupted", "failed")
CONTROL_COMMANDS = ("run", "pause", "stop")
V1_SCALAR_COLUMNS = (
    "step", "t", "loss", "accuracy", "grad_norm", "lr", "tau", "threshold", "wall_s",
    "hvp_count", "transient", "neg_eigs",
)
# schema 2: the certificate of each step (docs/metrics.md §2.4): the largest relative residual
# of the tracked Ritz pairs, the Rayleigh–Ritz iterations and refinements, and the exponential
# Euler step control (rejected trials, relative local error estimate of the accepted step)
CERTIFICATE_COLUMNS = ("eig_resid", "eig_iters", "eig_refinements", "ee_rejections", "ee_err")
SCALAR_COLUMNS = V1_SCALAR_COLUMNS + CERTIFICATE_COLUMNS
INTEGER_COLUMNS = frozenset({"step", "hvp_count", "transient", "neg_eigs", "eig_iters",
                             "eig_refinements", "ee_rejections"})
SCALAR_SPECS = tuple((c, c in INTEGER_COLUMNS) for c in SCALAR_COLUMNS[1:])
PACKED_COLUMN = "packed"
PACKED_DTYPE = np.dtype("<f8")
DEFAULT_STALE_AFTER = 30.0
SCHEMA_VERSION = 2

CONFIG_FILE = "config.toml"
RUN_FILE = "run.json"
METRICS_FILE = "metrics.sqlite"
CHECKPOINT_DIR = "checkpoints"
DATA_FILE = "data.safetensors"
CONTROL_FILE = "control"

BUSY_TIMEOUT_MS = 10_000


def lambda_columns(k: int) -> list[str]:
    """The eigenvalue columns ``lambda_H_1..k`` of the ``steps`` table."""
    return [f"lambda_H_{i}" for i in range(1, k + 1)]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (its type name when it has none)."""
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def real(value: Any) -> float | None:
    """A float for SQLite; NaN and None become NULL."""
    if value is None:
        return None
    x = float(value)
    return None if x != x else x


def is_run_dir(path: Path | str) -> bool:
    """True if ``path`` is a directory holding ``metrics.sqlite`` and ``run.json``."""
    p = Path(path)
    return p.is_dir() and (p / METRICS_FILE).is_file() and (p / RUN_FILE).is_file()


def connect(db: Path, *, create: bool) -> sqlite3.Connection:
    """An autocommit connection to ``db`` usable from any thread, with a busy timeout."""
    mode = "rwc" if create else "rw"
    uri = f"{db.resolve().as_uri()}?mode={mode}"
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                           isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn


def create_schema(conn: sqlite3.Connection, num_eigs: int, meta: dict[str, str | None]) -> None:
    """Create the tables of a new store (current :data:`SCHEMA_VERSION`) in one transaction.

    ``meta`` holds the initial rows of the ``meta`` table; ``schema_version`` is added here.
    """
    scalar_defs = "".join(f", {name} {'INTEGER' if is_int else 'REAL'}" for name, is_int in SCALAR_SPECS)
    lambda_defs = "".join(f", {name} REAL" for name in lambda_columns(num_eigs))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(f"CREATE TABLE steps (step INTEGER PRIMARY KEY{scalar_defs}{lambda_defs},"
                 f" {PACKED_COLUMN} BLOB)")
    conn.execute("CREATE TABLE snapshots (step INTEGER NOT NULL, name TEXT NOT NULL,"
                 " value REAL, PRIMARY KEY (step, name))")
    conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, step INTEGER,"
                 " wall REAL NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL)")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    rows = {"schema_version": str(SCHEMA_VERSION), **meta}
    conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", rows.items())
    conn.execute("COMMIT")


def read_step_columns(conn: sqlite3.Connection, db: Path) -> tuple[list[str], bool]:
    """The typed columns of an existing store's ``steps`` table and whether it has ``packed``.

    Checks that the store is one this version can read (its ``schema_version`` is not newer
    than :data:`SCHEMA_VERSION`; stores of every older version are read as they are, since
    each version only adds columns). Raises :class:`RunStoreError` otherwise.
    """
    table_columns = [r[1] for r in conn.execute("PRAGMA table_info(steps)").fetchall()]
    version_row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
    try:
        version = int(version_row[0][0]) if version_row else 1
    except (TypeError, ValueError):
        raise RunStoreError(f"{db} has an unreadable schema_version {version_row[0][0]!r}") from None
    if version > SCHEMA_VERSION:
        raise RunStoreError(f"{db} was written by a newer eos-tui (store schema {version}, this "
                            f"version reads up to {SCHEMA_VERSION}); upgrade eos-tui to read it")
    columns = [c for c in table_columns if c != PACKED_COLUMN]
    if columns[: len(V1_SCALAR_COLUMNS)] != list(V1_SCALAR_COLUMNS):
        raise RunStoreError(f"{db} is not an eos-tui metric store (unexpected steps table)")
    return columns, PACKED_COLUMN in table_columns


def logical_step_columns(stored: list[str]) -> list[str]:
    """The columns a reader presents for a ``steps`` table with columns ``stored``: every column
    of the current schema (those an older store lacks read as NaN), then the store's others
    (``lambda_H_1..K``) in their order."""
    return list(SCALAR_COLUMNS) + [c for c in stored if c not in SCALAR_COLUMNS]
