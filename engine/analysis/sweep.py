"""A sweep's analysis (``eos-tui analyze``, the live sweep screen): the power law over its runs.

Per run, max P^1 after the first 10 steps (:func:`engine.analysis.powerlaw.max_p1`); over the
runs that finished, the least-squares fit of ``log max P^1`` on ``log D`` with R² and bootstrap
95% intervals of ``c1`` and ``c2`` (:func:`~engine.analysis.powerlaw.fit_power_law`), the median
per dataset size, and the paper's Table-2 row of the same data set and criterion. Runs that did
not finish (failed, diverged, interrupted, still running) or have no snapshot after the
transient are excluded from the fit and counted by reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.analysis.powerlaw import TRANSIENT_STEPS, PowerLawFit, fit_power_law, max_p1, paper_row
from engine.errors import EosError
from engine.store import open_run

INCLUDED_STATUS = "finished"


@dataclass
class RunResult:
    """One run's line of the analysis."""

    label: str                  # its path relative to the sweep (``size=468/init=0/subset=1``)
    path: Path
    status: str                 # the store's status, or ``pending`` / ``corrupt``
    n_train: int = 0
    init_seed: int | None = None
    subset_seed: int | None = None
    max_P1: float = math.nan
    dataset: str | None = None
    criterion: str | None = None
    message: str = ""

    @property
    def excluded_because(self) -> str | None:
        """Why the run is not in the fit (``None``: it is)."""
        if self.status != INCLUDED_STATUS:
            return self.status
        if not (math.isfinite(self.max_P1) and self.max_P1 > 0):
            return f"no snapshot after step {TRANSIENT_STEPS}"
        return None


def read_run_result(path: Path, label: str) -> RunResult:
    """:class:`RunResult` of the run at ``path`` through the store (``corrupt`` if unreadable,
    ``pending`` if it does not exist yet)."""
    path = Path(path)
    if not (path / "run.json").is_file():
        return RunResult(label=label, path=path, status="pending")
    try:
        with open_run(path) as run:
            return RunResult(
                label=label, path=path, status=run.status, n_train=int(run.meta.get("n_train", 0)),
                init_seed=run.config.get("train", {}).get("seed"),
                subset_seed=run.config.get("data", {}).get("subset_seed"),
                max_P1=max_p1(run), dataset=run.meta.get("dataset"),
                criterion=run.meta.get("criterion"), message=run.status_message or "")
    except EosError as exc:
        return RunResult(label=label, path=path, status="corrupt", message=str(exc))


@dataclass
class SweepAnalysis:
    """The analysis of a set of runs (see the module docstring)."""

    root: Path
    runs: list[RunResult]
    fit: PowerLawFit | None
    fit_error: str | None
    medians: list[tuple[int, float, int]]          # (D, median max P^1, runs)
    paper: tuple[str, tuple[float, float, float]] | None
    excluded: dict[str, int] = field(default_factory=dict)

    @property
    def included(self) -> list[RunResult]:
        return [r for r in self.runs if r.excluded_because is None]

    def to_json(self) -> dict:
        """JSON-able dict; the fit comes first (``c1``, ``c2``, ``r2`` and their intervals)."""
        def num(x):
            return None if x is None or not math.isfinite(float(x)) else float(x)

        fit = None
        if self.fit is not None:
            f = self.fit
            fit = {"c1": num(f.c1), "c2": num(f.c2), "r2": num(f.r2),
                   "c1_ci95": [num(v) for v in f.c1_ci], "c2_ci95": [num(v) for v in f.c2_ci],
                   "runs": f.n, "sizes": f.sizes, "bootstrap": f.bootstrap}
        paper = None
        if self.paper is not None:
            name, (c1, c2, r2) = self.paper
            paper = {"row": name, "c1": c1, "c2": c2, "r2": r2}
        return {
            "sweep": str(self.root),
            "fit": fit,
            "fit_error": self.fit_error,
            "paper_table2": paper,
            "per_size": [{"size": d, "median_max_P1": num(m), "runs": n} for d, m, n in self.medians],
            "counts": {"runs": len(self.runs), "included": len(self.included), "excluded": dict(self.excluded)},
            "runs": [{"run": r.label, "size": r.n_train, "init_seed": r.init_seed,
                      "subset_seed": r.subset_seed, "status": r.status, "max_P1": num(r.max_P1),
                      "included": r.excluded_because is None, "excluded_because": r.excluded_because}
                     for r in self.runs],
        }

    def csv_rows(self) -> tuple[list[str], list[list]]:
        """One long table: ``kind`` = run | median | fit | paper, blanks where a column does not apply."""
        cols = ["kind", "run", "size", "init_seed", "subset_seed", "status", "included", "max_P1",
                "c1", "c1_lo", "c1_hi", "c2", "c2_lo", "c2_hi", "r2", "runs"]
        rows: list[list] = []
        for r in self.runs:
            rows.append(["run", r.label, r.n_train, r.init_seed, r.subset_seed, r.status,
                         int(r.excluded_because is None), r.max_P1] + [None] * 8)
        for d, m, n in self.medians:
            rows.append(["median", None, d, None, None, None, None, m] + [None] * 7 + [n])
        if self.fit is not None:
            f = self.fit
            rows.append(["fit"] + [None] * 7 + [f.c1, *f.c1_ci, f.c2, *f.c2_ci, f.r2, f.n])
        if self.paper is not None:
            name, (c1, c2, r2) = self.paper
            rows.append(["paper", name] + [None] * 6 + [c1, None, None, c2, None, None, r2, None])
        return cols, rows


def summarize(root: Path | str, runs: list[RunResult], *, bootstrap: int = 1000,
              seed: int = 0) -> SweepAnalysis:
    """Fit, medians, paper row and exclusion counts of ``runs``."""
    included = [r for r in runs if r.excluded_because is None]
    excluded: dict[str, int] = {}
    for r in runs:
        reason = r.excluded_because
        if reason is not None:
            excluded[reason] = excluded.get(reason, 0) + 1
    fit, error = None, None
    if included:
        try:
            fit = fit_power_law([r.n_train for r in included], [r.max_P1 for r in included],
                                bootstrap=bootstrap, seed=seed)
        except EosError as exc:
            error = str(exc)
    else:
        error = "no finished run with a snapshot after the transient yet"
    by_size: dict[int, list[float]] = {}
    for r in included:
        by_size.setdefault(r.n_train, []).append(r.max_P1)
    medians = [(d, float(np.median(v)), len(v)) for d, v in sorted(by_size.items())]
    known = next((r for r in runs if r.dataset), None)
    paper = paper_row(known.dataset, known.criterion) if known is not None else None
    return SweepAnalysis(root=Path(root), runs=runs, fit=fit, fit_error=error, medians=medians,
                         paper=paper, excluded=excluded)


def analyze_runs(root: Path | str, paths: list[Path] | None = None, *, bootstrap: int = 1000,
                 seed: int = 0) -> SweepAnalysis:
    """The analysis of the runs at ``paths`` (default: every run below ``root``)."""
    from engine.analysis.powerlaw import find_runs

    root = Path(root).expanduser()
    paths = find_runs(root) if paths is None else [Path(p) for p in paths]
    results = []
    for p in paths:
        try:
            label = p.relative_to(root).as_posix()
        except ValueError:
            label = str(p)
        results.append(read_run_result(p, label or p.name))
    return summarize(root, results, bootstrap=bootstrap, seed=seed)
