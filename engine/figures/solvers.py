"""``compare``: gradient descent against exponential Euler on the same gradient-flow time axis t.

Three panels — the loss, λ1(H) with each run's threshold dashed (2/η for GD, 2/τ for the step
exponential Euler took), and the alignment P^1 — with the GD runs in blues and the exponential
Euler runs in reds. The quantities are :meth:`engine.analysis.series.RunView.quantity`, the ones
the compare screen overlays and tabulates at equal t.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib import colormaps
from matplotlib.figure import Figure

from engine.analysis.series import XLABEL, RunView

from .style import FigureError, FigureOptions, draw_series, finish, legend, new_figure, shade_transient, style_axes

__all__ = ["compare", "SOLVER_NAMES"]

SOLVER_NAMES = {"gd": "GD", "ee": "exp. Euler"}
PANELS = (  # (quantity, store column, title, default log)
    ("loss", "loss", "training loss", True),
    ("lambda", "lambda_H_1", "λ₁(H) (dashed: 2/η, 2/τ)", False),
    ("P1", "P_1", "alignment P¹", True),
)


def compare(runs: Sequence[RunView], opts: FigureOptions = FigureOptions()) -> Figure:
    """GD runs against exponential Euler runs (at least one of each) on t."""
    gd = [r for r in runs if r.solver == "gd"]
    ee = [r for r in runs if r.solver == "ee"]
    if not gd or not ee:
        have = ", ".join(f"{r.name} ({r.solver})" for r in runs[:4]) + (" ..." if len(runs) > 4 else "")
        raise FigureError("the compare figure needs at least one GD run and one exponential Euler run "
                          f"(e.g. the folder written by `eos-tui run compare PRESET`); got {have}")
    ordered = gd + ee
    colors = _solver_colors(gd, ee)
    panels = [p for p in PANELS if any(r.has(p[1]) for r in ordered)]
    fig, axes = new_figure(opts, len(panels), ncols=3)
    for ax, (name, column, title, default_log) in zip(axes, panels):
        log = opts.log(default_log)
        if log:
            ax.set_yscale("log")
        shade_transient(ax, ordered, "t")
        for run, color in zip(ordered, colors):
            t, y = run.quantity(name)
            draw_series(fig, ax, opts, panel=column, series=column, run=run, x=t, y=y, xname="t",
                        color=color, log=log, snapshot=name == "P1", converged=run.converged(column))
            if name == "lambda":
                draw_series(fig, ax, opts, panel=column, series="threshold", run=run, x=run.x("t"),
                            y=run.step_col("threshold"), xname="t", color=color, log=log, dashed=True,
                            lw=1.1, alpha=0.8)
        style_axes(ax, title=title, xlabel=XLABEL["t"])
    entries = [(f"{SOLVER_NAMES.get(r.solver, r.solver)}: {r.name}", {"color": c, "lw": 1.6})
               for r, c in zip(ordered, colors)]
    legend(axes[0], None, extra=entries)
    return finish(fig, "GD vs exponential Euler on gradient-flow time", ordered)


def _solver_colors(gd: list[RunView], ee: list[RunView]) -> list:
    """Blues for the GD runs, reds for the exponential Euler runs (darker = later in the list)."""
    out = []
    for group, cmap in ((gd, colormaps["Blues"]), (ee, colormaps["Reds"])):
        n = len(group)
        out += [cmap(0.75 if n == 1 else 0.45 + 0.5 * k / (n - 1)) for k in range(n)]
    return out
