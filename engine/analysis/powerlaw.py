"""The paper's second result: alignment grows with dataset size as a power law.

Per run, ``max P^1`` after the initial transient (the paper's rule: snapshots after the first 10
steps, i.e. ``step > transient_steps``); over runs, the least-squares fit of
``log max P^1 = log c1 + c2 · log D`` with its R² (paper Table 2), and bootstrap 95% intervals
of ``c1`` and ``c2`` over runs. Data in, numbers out: the sweep screen, ``eos-tui analyze`` and the
``powerlaw`` figure all call these functions, so they show the same fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.errors import ConfigError
from engine.store import is_run_dir, open_run

TRANSIENT_STEPS = 10  # the paper's rule: max P^1 is taken after the first 10 steps

# Paper Table 2: (c1, c2, R²) of max P^1 ≈ c1 · D^c2, by preset family.
PAPER_TABLE2: dict[str, tuple[float, float, float]] = {
    "dice-ce": (0.0017, 0.23, 0.84),
    "cifar-ce": (0.0004, 0.49, 0.97),
    "cifar-mse": (0.0004, 0.20, 0.74),
    "af-ce": (0.0026, 0.45, 0.93),
    "sst-ce": (0.0001, 0.67, 0.98),
}
DATASET_ROWS = {("dice", "ce"): "dice-ce", ("cifar10", "ce"): "cifar-ce",
                ("cifar10", "mse"): "cifar-mse", ("af", "ce"): "af-ce", ("sst", "ce"): "sst-ce"}


def paper_row(dataset: str, criterion: str) -> tuple[str, tuple[float, float, float]] | None:
    """The paper's Table-2 row ``(name, (c1, c2, R²))`` for a data set and criterion, if any."""
    name = DATASET_ROWS.get((dataset, criterion))
    return None if name is None else (name, PAPER_TABLE2[name])


@dataclass(frozen=True)
class PowerLawFit:
    """``y ≈ c1 · D^c2`` fitted by least squares in log–log space."""

    c1: float
    c2: float
    r2: float
    n: int                      # points (runs) in the fit
    sizes: int                  # distinct dataset sizes
    c1_ci: tuple[float, float] = (math.nan, math.nan)   # bootstrap 95% intervals over runs
    c2_ci: tuple[float, float] = (math.nan, math.nan)
    bootstrap: int = 0

    def predict(self, D: np.ndarray | float) -> np.ndarray:
        return self.c1 * np.asarray(D, dtype=np.float64) ** self.c2


def _loglog_fit(logD: np.ndarray, logy: np.ndarray) -> tuple[float, float, float]:
    """(intercept, slope, R²) of the least-squares line through ``(logD, logy)``."""
    mx, my = logD.mean(), logy.mean()
    sxx = float(((logD - mx) ** 2).sum())
    slope = float(((logD - mx) * (logy - my)).sum()) / sxx
    intercept = my - slope * mx
    ss_res = float(((logy - intercept - slope * logD) ** 2).sum())
    ss_tot = float(((logy - my) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return float(intercept), slope, r2


def fit_power_law(D, y, *, bootstrap: int = 1000, seed: int = 0) -> PowerLawFit:
    """Fit ``y ≈ c1 · D^c2`` over points ``(D_j, y_j)`` (one per run).

    Needs at least two distinct sizes and positive finite values (a :class:`ConfigError`
    otherwise: the fit is undefined). ``bootstrap`` resamples of the runs (with replacement;
    resamples with a single size are redrawn) give percentile 95% intervals of ``c1`` and ``c2``.
    """
    D = np.asarray(D, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if D.shape != y.shape:
        raise ConfigError(f"power-law fit: {D.size} sizes but {y.size} values")
    ok = np.isfinite(D) & np.isfinite(y) & (D > 0) & (y > 0)
    if not ok.all():
        raise ConfigError(f"power-law fit: {int((~ok).sum())} of {D.size} points are not positive "
                          "and finite (exclude failed runs first)")
    sizes = np.unique(D)
    if sizes.size < 2:
        raise ConfigError(f"power-law fit needs at least 2 dataset sizes, got {sizes.size} "
                          f"({', '.join(f'{s:g}' for s in sizes) or 'none'})")
    logD, logy = np.log(D), np.log(y)
    intercept, slope, r2 = _loglog_fit(logD, logy)
    c1_ci = c2_ci = (math.nan, math.nan)
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        c1s, c2s = [], []
        while len(c2s) < bootstrap:
            idx = rng.integers(0, D.size, D.size)
            if np.unique(D[idx]).size < 2:
                continue
            b0, b1, _ = _loglog_fit(logD[idx], logy[idx])
            c1s.append(math.exp(b0))
            c2s.append(b1)
        c1_ci = tuple(float(v) for v in np.percentile(c1s, [2.5, 97.5]))
        c2_ci = tuple(float(v) for v in np.percentile(c2s, [2.5, 97.5]))
    return PowerLawFit(c1=math.exp(intercept), c2=slope, r2=r2, n=int(D.size), sizes=int(sizes.size),
                       c1_ci=c1_ci, c2_ci=c2_ci, bootstrap=int(bootstrap))


@dataclass
class RunPoint:
    """One run's contribution to the power law."""

    path: Path
    n_train: int
    max_P1: float               # NaN when the run has no snapshot after the transient
    status: str
    meta: dict = field(default_factory=dict)


def max_p1(run, transient_steps: int = TRANSIENT_STEPS) -> float:
    """``max P^1`` over the snapshots of an open :class:`engine.store.Run` after the first
    ``transient_steps`` steps (``step > transient_steps``); NaN if there is none."""
    snaps = run.snapshots()
    if "P_1" not in snaps:
        return math.nan
    after = (snaps["step"] > transient_steps) & np.isfinite(snaps["P_1"])
    return float(snaps["P_1"][after].max()) if after.any() else math.nan


def find_runs(root: Path | str) -> list[Path]:
    """Every run directory at or below ``root`` (a run, a runs folder or a sweep), sorted."""
    root = Path(root).expanduser()
    if is_run_dir(root):
        return [root]
    return sorted(p.parent for p in root.rglob("run.json") if is_run_dir(p.parent))


def run_points(root: Path | str, transient_steps: int = TRANSIENT_STEPS) -> list[RunPoint]:
    """:class:`RunPoint` of every run below ``root`` (see :func:`find_runs`)."""
    points = []
    for path in find_runs(root):
        with open_run(path) as run:
            points.append(RunPoint(path=path, n_train=int(run.meta.get("n_train", 0)),
                                   max_P1=max_p1(run, transient_steps), status=run.status,
                                   meta=dict(run.meta)))
    return points
