"""The series of a run as panels and figures show them: one definition for the UI and the figures.

A :class:`RunView` is a run's step and snapshot columns (dicts of numpy arrays, as
:meth:`engine.store.Run.steps` and :meth:`~engine.store.Run.snapshots` return them) with its
metadata. The live UI builds one from its growing buffers (``eos_tui.app.series.RunData.view``),
``eos-tui plot`` reads one from the store (:func:`load_view`). What is drawn is computed here —
the x axis (step, or gradient-flow time ``t`` with snapshot steps mapped to ``t`` through the step
table), the playhead's range (:meth:`RunView.until`), the five factors of ``E‖K_i‖²``, the compare
view's quantities on ``t`` — so a figure and the terminal panel it mirrors show the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.analysis.downsample import finite_xy
from engine.analysis.powerlaw import TRANSIENT_STEPS, find_runs
from engine.errors import RunStoreError
from engine.store import open_run

__all__ = [
    "RunView", "load_view", "load_views", "five_factors", "snapshots_until", "snapshot_x",
    "solver_of", "threshold_label", "depth_of", "dig", "XAXES", "XLABEL", "TRANSIENT_STEPS", "CONVERGED_SUFFIX",
]

XAXES = ("step", "t")
XLABEL = {"step": "step", "t": "t (gradient-flow time)"}
CONVERGED_SUFFIX = "_converged"  # NAME_converged (1/0) qualifies the eigenvalue column NAME
_EMPTY = np.empty(0)


def dig(d: Any, *keys: str) -> Any:
    """``d[k1][k2]...`` through nested mappings; ``None`` where a level is missing."""
    for k in keys:
        if not isinstance(d, Mapping):
            return None
        d = d.get(k)
    return d


def solver_of(meta: Mapping, config: Mapping | None = None) -> str:
    """``gd``, ``ee`` or ``rk4``: the run's solver (``run.json``, else the config; ``gd`` if neither)."""
    solver = meta.get("solver") or dig(config or {}, "train", "solver")
    return str(solver or "gd")


def threshold_label(solver: str) -> str:
    """The name of the ``threshold`` column for a solver: 2/η (GD) or 2/τ (the step taken)."""
    return "2/τ" if solver == "ee" else "2/η"


def depth_of(meta: Mapping, snapshot_names) -> int:
    """Layers L of a run: ``run.json``'s ``depth``, else the number of stored ``P_i`` (at least 1)."""
    d = meta.get("depth")
    if d:
        return int(d)
    return sum(1 for n in snapshot_names if n.startswith("P_") and n[2:].isdigit()) or 1


def snapshots_until(snaps: Mapping[str, np.ndarray], last_step: float | None) -> dict[str, np.ndarray]:
    """Snapshot columns of the snapshots taken at or before ``last_step`` (all when ``None``)."""
    steps = snaps.get("step")
    if last_step is None or steps is None:
        return dict(snaps)
    k = int(np.searchsorted(steps, last_step, side="right"))
    return {name: col[:k] for name, col in snaps.items()}


def snapshot_x(snap_steps: np.ndarray, step: np.ndarray, t: np.ndarray, xaxis: str) -> np.ndarray:
    """Snapshot steps on the x axis: themselves, or ``t`` interpolated through the step table."""
    if xaxis == "step" or len(snap_steps) == 0:
        return snap_steps
    st, tt = finite_xy(step, t)
    if len(st) == 0:
        return snap_steps * np.nan
    return np.interp(snap_steps, st, tt)


@dataclass(frozen=True, eq=False)
class RunView:
    """A run's columns up to some row (read-only views; nothing here copies a whole column)."""

    steps: Mapping[str, np.ndarray]
    snaps: Mapping[str, np.ndarray]
    meta: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None
    label: str | None = None  # how figures name the run among others (e.g. size=468/init=0/subset=1)

    # -- what the run is ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        return str(self.meta.get("name") or (self.path.name if self.path is not None else "run"))

    @property
    def solver(self) -> str:
        return solver_of(self.meta, self.config)

    @property
    def threshold_label(self) -> str:
        return threshold_label(self.solver)

    @property
    def num_eigs(self) -> int:
        return int(self.meta.get("num_eigs") or sum(1 for c in self.steps if c.startswith("lambda_H_")
                                                    and not c.endswith(CONVERGED_SUFFIX)) or 1)

    @property
    def depth(self) -> int:
        """Layers L (``run.json``; else counted from the stored ``P_i``; at least 1)."""
        return depth_of(self.meta, self.snaps)

    @property
    def n_train(self) -> int | None:
        """The dataset size D (training samples), ``None`` if not recorded."""
        n = self.meta.get("n_train")
        return int(n) if n else None

    @property
    def dataset(self) -> str | None:
        return self.meta.get("dataset") or dig(self.config, "data", "name")

    @property
    def criterion(self) -> str | None:
        return self.meta.get("criterion") or dig(self.config, "train", "criterion")

    # -- columns -----------------------------------------------------------------------------

    def step_col(self, name: str) -> np.ndarray:
        """A step column (all NaN when the run has no such column)."""
        col = self.steps.get(name)
        return col if col is not None else np.full(len(self.steps.get("step", _EMPTY)), np.nan)

    def snap_col(self, name: str) -> np.ndarray:
        """A snapshot column (all NaN when no snapshot recorded it)."""
        col = self.snaps.get(name)
        return col if col is not None else np.full(len(self.snaps.get("step", _EMPTY)), np.nan)

    def has(self, name: str) -> bool:
        """Whether the step or snapshot column ``name`` holds at least one finite value."""
        col = self.steps.get(name)
        if col is None:
            col = self.snaps.get(name)
        return col is not None and bool(np.isfinite(col).any())

    def converged(self, name: str) -> np.ndarray | None:
        """The ``NAME_converged`` flags of a step or snapshot column as booleans (NaN counts as
        converged: no flag recorded), aligned with the column; ``None`` when the run has none."""
        for table in (self.steps, self.snaps):
            if name in table:
                flags = table.get(name + CONVERGED_SUFFIX)
                return None if flags is None else ~(np.asarray(flags) == 0)
        return None

    def snapshots(self) -> dict[str, np.ndarray]:
        """The snapshot columns (the :meth:`engine.store.Run.snapshots` interface, so the
        analysis functions that read an open run read a view too)."""
        return dict(self.snaps)

    # -- axes --------------------------------------------------------------------------------

    def x(self, xaxis: str) -> np.ndarray:
        """The x values of the step rows: ``step`` or ``t``."""
        return self.steps.get(xaxis, self.steps.get("step", _EMPTY))

    def snap_x(self, xaxis: str) -> np.ndarray:
        """The x values of the snapshots (``t`` interpolated through the step table)."""
        return snapshot_x(self.snaps.get("step", _EMPTY), self.step_col("step"), self.step_col("t"), xaxis)

    def x_at_step(self, step: float, xaxis: str) -> float:
        """Where step ``step`` lies on the x axis (NaN outside the recorded steps)."""
        if xaxis == "step":
            return float(step)
        st, tt = finite_xy(self.step_col("step"), self.step_col("t"))
        if len(st) == 0 or step > st[-1]:
            return math.nan
        return float(np.interp(step, st, tt))

    def until(self, stop: int | None) -> "RunView":
        """The run as shown by a playhead at row ``stop`` (rows ``0..stop-1``; ``None``: all),
        with the snapshots taken up to the last shown step."""
        if stop is None:
            return self
        steps = {k: v[:stop] for k, v in self.steps.items()}
        last = steps.get("step", _EMPTY)
        if len(last) == 0:
            snaps = {k: v[:0] for k, v in self.snaps.items()}
        else:
            snaps = snapshots_until(self.snaps, last[-1])
        return RunView(steps, snaps, self.meta, self.config, self.path, self.label)

    def quantity(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(t, values)`` of ``loss``, ``lambda`` (λ1(H)) or ``P1`` (P^1, at snapshots): the
        quantities compared at equal gradient-flow time."""
        if name == "P1":
            return self.snap_x("t"), self.snap_col("P_1")
        return self.step_col("t"), self.step_col({"loss": "loss", "lambda": "lambda_H_1"}[name])


def five_factors(view: RunView, i: int = 1) -> list[tuple[str, str, np.ndarray]]:
    """``(key, label, values)`` at the snapshots of the five factors of ``E‖K_i‖²`` (spec §4,
    docs/metrics.md §3.3) and of their product ``E‖K_i‖²``:
    ``a_L · Π_{j=i}^{L-1} s_j · P^i · m_i · κ_i``."""
    prod_s = np.ones(len(view.snaps.get("step", _EMPTY)))
    for j in range(i, view.depth):
        prod_s = prod_s * view.snap_col(f"s_{j}")
    sup = "" if i == 1 else f"_{i}"
    return [
        ("a_L", "a_L", view.snap_col("a_L")),
        (f"prod_s{sup}", "Π s_j", prod_s),
        (f"P_{i}", f"P^{i}", view.snap_col(f"P_{i}")),
        (f"m_{i}", f"m_{i}", view.snap_col(f"m_{i}")),
        (f"kappa_{i}", f"κ_{i}", view.snap_col(f"kappa_{i}")),
        (f"EK2_layer_{i}", f"E‖K_{i}‖²", view.snap_col(f"EK2_layer_{i}")),
    ]


def load_view(path: Path | str, label: str | None = None) -> RunView:
    """Read a whole run from its store (every step and snapshot column)."""
    with open_run(path) as run:
        meta = dict(run.meta)
        meta.setdefault("num_eigs", run.num_eigs)
        meta.setdefault("name", run.path.name)
        return RunView(run.steps(), run.snapshots(), meta, dict(run.config), run.path, label)


def load_views(targets: Sequence[Path | str]) -> list[RunView]:
    """Every run at or below the targets (runs, folders of runs, sweep directories), in order,
    each once, labelled by its path below its target (``size=468/init=0/subset=1`` in a sweep)
    or, for a run given itself, by its name. A target that does not exist or holds no run is a
    :class:`RunStoreError`."""
    found: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for target in targets:
        root = Path(target).expanduser()
        if not root.exists():
            raise RunStoreError(f"{root} does not exist")
        paths = find_runs(root)
        if not paths:
            raise RunStoreError(f"no eos-tui run at or below {root}")
        for p in paths:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                found.append((p, p.name if p == root else p.relative_to(root).as_posix()))
    labels = [label for _, label in found]
    if len(set(labels)) < len(labels):  # the same names under different targets: full paths
        labels = [str(p) for p, _ in found]
    return [load_view(p, label) for (p, _), label in zip(found, labels)]
