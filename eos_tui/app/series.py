"""The UI-side data model of one run: growing columnar buffers filled by a reader thread.

A :class:`RunData` is written by exactly one reader thread (see :mod:`eos_tui.app.reader`)
and read by the UI thread. Appends never move data that a reader already holds: buffers grow
by reallocation and a :meth:`Columns.view` is a set of read-only slices taken under a lock,
so the UI can draw from a view while the reader appends.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.analysis.series import RunView, depth_of, dig, solver_of, threshold_label

__all__ = ["Columns", "RunData", "TERMINAL_STATUSES"]

TERMINAL_STATUSES = frozenset({"finished", "diverged", "interrupted", "failed"})


class Columns:
    """Append-only numeric columns with amortised O(1) appends and lock-protected views."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bufs: dict[str, np.ndarray] = {}
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def names(self) -> list[str]:
        with self._lock:
            return list(self._bufs)

    def append(self, chunk: dict[str, np.ndarray]) -> int:
        """Append equal-length columns; returns the number of rows added."""
        if not chunk:
            return 0
        arrays = {k: np.asarray(v) for k, v in chunk.items()}
        m = max((len(a) for a in arrays.values()), default=0)
        if m == 0:
            return 0
        with self._lock:
            n = self._n
            cap = len(next(iter(self._bufs.values()))) if self._bufs else 0
            if n + m > cap:
                new_cap = max(2 * cap, n + m, 256)
                for k, buf in list(self._bufs.items()):
                    grown = np.full(new_cap, np.nan, dtype=float)
                    grown[:n] = buf[:n]
                    self._bufs[k] = grown
                cap = new_cap
            for k, a in arrays.items():
                if k not in self._bufs:
                    self._bufs[k] = np.full(cap, np.nan, dtype=float)
                col = self._bufs[k]
                vals = np.asarray(a, dtype=float) if a.dtype != object else np.array(
                    [np.nan if v is None else v for v in a], dtype=float
                )
                col[n : n + len(vals)] = vals
            self._n = n + m
            return m

    def view(self, stop: int | None = None) -> dict[str, np.ndarray]:
        """Read-only column slices of the first ``stop`` rows (all rows by default)."""
        with self._lock:
            n = self._n if stop is None else max(0, min(stop, self._n))
            out = {}
            for k, buf in self._bufs.items():
                v = buf[:n]
                v.flags.writeable = False
                out[k] = v
            return out

    def column(self, name: str, stop: int | None = None) -> np.ndarray:
        """One column (all NaN if the run has no such column)."""
        with self._lock:
            n = self._n if stop is None else max(0, min(stop, self._n))
            buf = self._bufs.get(name)
            return buf[:n] if buf is not None else np.full(n, np.nan)

    def last(self, name: str) -> float:
        """The last finite value of a column (NaN if none)."""
        col = self.column(name)
        finite = np.flatnonzero(np.isfinite(col))
        return float(col[finite[-1]]) if len(finite) else float("nan")


@dataclass
class RunData:
    """Everything the UI knows about one run; ``version`` grows whenever anything changes."""

    key: str
    path: Any
    meta: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    status: str = "unknown"
    status_message: str = ""
    crashed: bool = False
    control: str = "run"  # the control word in effect (run/pause/stop)
    steps: Columns = field(default_factory=Columns)
    snaps: Columns = field(default_factory=Columns)
    version: int = 0
    error: str = ""
    loaded: bool = False
    preload_thread: Any = None  # a thread reading the store before the app has started

    # -- convenience accessors (UI thread) -------------------------------------------------
    def view(self, stop: int | None = None) -> RunView:
        """The engine's view of the rows read so far (up to row ``stop``): what the panels and
        the saved figures draw (:mod:`engine.analysis.series`). Read-only slices, no copies."""
        meta = dict(self.meta, name=self.name)
        return RunView(self.steps.view(), self.snaps.view(), meta, self.config, self.path).until(stop)

    @property
    def solver(self) -> str:
        return solver_of(self.meta)

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or getattr(self.path, "name", self.key))

    @property
    def num_eigs(self) -> int:
        return int(self.meta.get("num_eigs") or 1)

    @property
    def depth(self) -> int:
        return depth_of(self.meta, self.snaps.names)

    @property
    def display_status(self) -> str:
        """Status for people: ``crashed/interrupted`` for a killed writer, ``paused`` when paused."""
        if self.crashed:
            return f"crashed/{self.status}"
        if self.status == "running" and self.control == "pause":
            return "paused"
        if self.status == "running" and self.control == "stop":
            return "stopping"
        return self.status

    @property
    def live(self) -> bool:
        return self.status not in TERMINAL_STATUSES

    @property
    def threshold_label(self) -> str:
        return threshold_label(self.solver)

    def target_loss(self) -> float:
        for value in (self.meta.get("target_loss"), dig(self.config, "train", "target_loss")):
            try:
                if value is not None and float(value) > 0:
                    return float(value)
            except (TypeError, ValueError):
                pass
        return 0.02 if self.meta.get("criterion") == "mse" else 0.01
