"""``powerlaw``: max P^1 against the dataset size D on log–log axes, with the fit and the paper's line.

The numbers are :mod:`engine.analysis.powerlaw`'s — ``max_p1`` per run (after the first 10
steps), ``fit_power_law`` over the runs (least squares in log–log space, R², bootstrap 95%
intervals with its default resamples and seed) and ``paper_row`` (Table 2) — so the figure shows
the fit that ``eos-tui analyze`` prints.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from engine.analysis.powerlaw import TRANSIENT_STEPS, fit_power_law, max_p1, paper_row
from engine.analysis.series import RunView

from .style import FigureError, FigureOptions, PlottedSeries, draw_series, finish, new_figure, plain_log_ticks, plotted

__all__ = ["powerlaw", "points"]

PANEL = "max_P1_vs_D"


def points(runs: Sequence[RunView]) -> tuple[np.ndarray, np.ndarray, list[RunView]]:
    """``(D, max P^1, runs)`` of the runs with a dataset size and a snapshot after the transient."""
    D, y, kept = [], [], []
    for r in runs:
        value = max_p1(r)
        if r.n_train and np.isfinite(value) and value > 0:
            D.append(float(r.n_train))
            y.append(value)
            kept.append(r)
    return np.array(D), np.array(y), kept


def powerlaw(runs: Sequence[RunView], opts: FigureOptions = FigureOptions()) -> Figure:
    """max P^1 per run against D (log–log), the fitted ``c1·D^c2`` with R², and the paper's line."""
    D, y, kept = points(runs)
    sizes = np.unique(D)
    if sizes.size < 2:
        raise FigureError(
            f"the powerlaw figure needs runs of at least 2 dataset sizes with a snapshot after step "
            f"{TRANSIENT_STEPS}; {len(runs)} run{'s' if len(runs) != 1 else ''} gave "
            f"{len(kept)} such point{'s' if len(kept) != 1 else ''} at "
            f"{sizes.size} size{'s' if sizes.size != 1 else ''}"
            + (f" ({', '.join(f'{s:g}' for s in sizes)})" if sizes.size else ""))
    fit = fit_power_law(D, y)
    fig, (ax,) = new_figure(opts, 1, panel_size=(5.4, 4.0))
    ax.set_xscale("log")
    ax.set_yscale("log")
    for r, d, v in zip(kept, D, y):
        ax.plot([d], [v], ls="none", marker="o", ms=5, color="tab:blue", alpha=0.75, gid=f"{PANEL}|max_P1|{r.name}")
        plotted(fig).append(PlottedSeries(PANEL, "max_P1", r.name, np.array([d]), np.array([v]), "D",
                                          r.solver, r.n_train))
    grid = np.geomspace(sizes[0] / 1.25, sizes[-1] * 1.25, 50)
    ci = ""
    if fit.bootstrap:
        ci = f" [{fit.c2_ci[0]:.2f}, {fit.c2_ci[1]:.2f}]"
    draw_series(fig, ax, opts, panel=PANEL, series="fit", run=None, x=grid, y=fit.predict(grid), xname="D",
                color="tab:red", log=True, smoothable=False, lw=1.6,
                label=f"fit: {fit.c1:.3g}·D^{fit.c2:.3f}{ci}, R² = {fit.r2:.3f} ({fit.n} runs, {fit.sizes} sizes)")
    row = _paper(kept)
    if row is not None:
        name, (c1, c2, r2) = row
        draw_series(fig, ax, opts, panel=PANEL, series=f"paper {name}", run=None, x=grid, y=c1 * grid ** c2,
                    xname="D", color="0.3", log=True, dashed=True, smoothable=False, lw=1.3,
                    label=f"paper Table 2 ({name}): {c1:g}·D^{c2:g}, R² = {r2:g}")
    ax.set_xlabel("dataset size D (training samples)", fontsize="small")
    ax.set_ylabel(f"max P¹ after step {TRANSIENT_STEPS}", fontsize="small")
    ax.set_title("alignment against dataset size: max P¹ ≈ c₁·D^c₂", fontsize="small", y=1.0, pad=4)
    ax.tick_params(which="both", labelsize="x-small")
    ax.grid(True, which="both", lw=0.4, alpha=0.35)
    plain_log_ticks(ax.xaxis, *ax.get_xlim())
    plain_log_ticks(ax.yaxis, *ax.get_ylim())
    ax.legend(fontsize="x-small", frameon=False, loc="best")
    return finish(fig, "power law", kept)


def _paper(runs: Sequence[RunView]):
    """The paper's Table-2 row when every run has the same data set and criterion (else none)."""
    keys = {(r.dataset, r.criterion) for r in runs}
    if len(keys) != 1:
        return None
    dataset, criterion = next(iter(keys))
    return paper_row(str(dataset), str(criterion)) if dataset and criterion else None
