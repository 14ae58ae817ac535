"""The paper's time-series figures: one panel per quantity, one curve per run, against step or t.

* :func:`sharpness` — λ1(H) with 2/η dashed for GD runs, λ1(G), λ1(H−G) (paper Figs 1, 6–9);
* :func:`overlap` — λ1(G) = ρ · E‖K‖²: λ1(G), E‖K‖² and the overlap ratio ρ (Figs 2, 10–13);
* :func:`alignment` — the alignment ratios r_i of chosen layers (Fig 3);
* :func:`layers` — E‖K_i‖² of every (chosen) layer (Figs 14–18);
* :func:`factors` — the five factors of E‖K_1‖²: a_L, Π s_j, P^1, m_1, κ_1, and their product (Fig 4).

Each takes :class:`~engine.analysis.series.RunView` objects and :class:`FigureOptions` and returns a
matplotlib ``Figure`` (curves coloured by dataset size with a colour bar when the runs differ in
size; the first 10 steps shaded). A figure whose quantities no run recorded raises
:class:`FigureError`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from engine.analysis.series import XLABEL, RunView, five_factors

from .style import (
    Curve, FigureError, FigureOptions, RunColors, draw_series, finish, has_data, legend, new_figure,
    shade_transient, style_axes, sub, sup,
)

__all__ = ["sharpness", "overlap", "alignment", "layers", "factors", "series_figure"]

DEFAULT = FigureOptions()


def series_figure(title: str, runs: Sequence[RunView], curves: Sequence[Curve], opts: FigureOptions, *,
                  ncols: int = 3) -> Figure:
    """One panel per curve that some run recorded, one line per run in each panel."""
    runs = list(runs)
    if not runs:
        raise FigureError(f"{title}: no runs given")
    shown = [c for c in curves if has_data(runs, c)]
    if not shown:
        names = ", ".join(c.key for c in curves)
        raise FigureError(f"no run recorded what the {title} figure shows ({names}) among "
                          f"{len(runs)} run{'s' if len(runs) != 1 else ''}: {_names(runs)}")
    colors = RunColors(runs)
    fig, axes = new_figure(opts, len(shown), ncols=ncols, colorbar=colors.by_size)
    any_unconverged = False
    threshold_label = None
    for ax, curve in zip(axes, shown):
        log = opts.log(curve.log)
        if log:
            ax.set_yscale("log")
        shade_transient(ax, runs, opts.xaxis)
        for i, run in enumerate(runs):
            x = run.snap_x(opts.xaxis) if curve.snapshot else run.x(opts.xaxis)
            conv = curve.converged(run)
            line = draw_series(fig, ax, opts, panel=curve.key, series=curve.key, run=run, x=x,
                               y=curve.of(run), xname=opts.xaxis, color=colors.color(i), log=log,
                               snapshot=curve.snapshot, converged=conv)
            any_unconverged |= line is not None and conv is not None and not conv.all()
            if curve.threshold and run.solver == "gd":
                thr = draw_series(fig, ax, opts, panel=curve.key, series="threshold", run=run,
                                  x=run.x(opts.xaxis), y=run.step_col("threshold"), xname=opts.xaxis,
                                  color=colors.color(i), log=log, dashed=True, lw=1.1, alpha=0.8)
                if thr is not None:
                    threshold_label = run.threshold_label
        style_axes(ax, title=curve.title, xlabel=XLABEL[opts.xaxis])
    legend(axes[0], colors, threshold=threshold_label, unconverged=any_unconverged)
    colors.colorbar(fig)
    return finish(fig, title, runs)


def _names(runs: Sequence[RunView], limit: int = 3) -> str:
    names = [r.name for r in runs[:limit]]
    return ", ".join(names) + (f" and {len(runs) - limit} more" if len(runs) > limit else "")


def _layers(runs: Sequence[RunView], opts: FigureOptions, last: int, what: str) -> list[int]:
    """The chosen layers (``--layers``; default 1..last), each one that some run has."""
    if opts.layers is None:
        return list(range(1, last + 1))
    bad = [i for i in opts.layers if i > last]
    if bad:
        raise FigureError(f"--layers {','.join(map(str, bad))}: {what} exists for layers 1..{last} of "
                          f"these runs (depth {max(r.depth for r in runs)})")
    return list(dict.fromkeys(opts.layers))


def sharpness(runs: Sequence[RunView], opts: FigureOptions = DEFAULT) -> Figure:
    """λ1(H) (with 2/η dashed for GD runs), λ1(G) and λ1(H−G)."""
    if not any(r.has("lambda_H_1") for r in runs):
        raise FigureError(f"the sharpness figure needs λ1(H) (lambda_H_1), which no run recorded: {_names(runs)}")
    return series_figure("sharpness", runs, [
        Curve("lambda_H_1", "λ₁(H)", False, False, threshold=True),
        Curve("lambda_G1", "λ₁(G) (Gauss–Newton)", True, False),
        Curve("lambda_HmG1", "λ₁(H−G)", True, False),
    ], opts)


def overlap(runs: Sequence[RunView], opts: FigureOptions = DEFAULT) -> Figure:
    """λ1(G) = ρ · E‖K‖²: the Gauss–Newton sharpness, E‖K‖² and the overlap ratio ρ."""
    if not any(r.has("lambda_G1") for r in runs):
        raise FigureError(f"the overlap figure needs λ1(G) (lambda_G1 at snapshots), which no run "
                          f"recorded: {_names(runs)}")
    return series_figure("overlap: λ₁(G) = ρ · E‖K‖²", runs, [
        Curve("lambda_G1", "λ₁(G)", True, True),
        Curve("EK2", "E‖K‖² (operator norm)", True, True),
        Curve("overlap_ratio", "overlap ratio ρ", True, False),
    ], opts)


def alignment(runs: Sequence[RunView], opts: FigureOptions = DEFAULT) -> Figure:
    """The alignment ratios r_i of the chosen layers (default: every layer with one, 1..L−1)."""
    last = max(r.depth for r in runs) - 1 if runs else 0
    if last < 1:
        raise FigureError("the alignment figure needs r_i, which exists only for nets of depth ≥ 2")
    chosen = _layers(runs, opts, last, "the alignment ratio r_i")
    return series_figure("alignment", runs, [
        Curve(f"r_{i}", f"alignment ratio r{sub(i)}", True, True) for i in chosen], opts)


def layers(runs: Sequence[RunView], opts: FigureOptions = DEFAULT) -> Figure:
    """E‖K_i‖² of every chosen layer (default: all layers 1..L)."""
    last = max(r.depth for r in runs) if runs else 0
    chosen = _layers(runs, opts, last, "E‖K_i‖²")
    return series_figure("layers", runs, [
        Curve(f"EK2_layer_{i}", f"E‖K{sub(i)}‖² (layer {i})", True, True) for i in chosen], opts)


def factors(runs: Sequence[RunView], opts: FigureOptions = DEFAULT) -> Figure:
    """The five factors of E‖K_i‖² = a_L · Π_{j≥i} s_j · P^i · m_i · κ_i and their product, for
    the first of ``--layers`` (default layer 1: the paper's Fig 4)."""
    i = opts.layers[0] if opts.layers else 1
    last = max(r.depth for r in runs) if runs else 0
    if i > last:
        raise FigureError(f"--layers {i}: the runs have layers 1..{last}")
    if not any(r.has(f"P_{i}") for r in runs):
        raise FigureError(f"the factors figure needs the layer metrics (P_{i} at snapshots), which no "
                          f"run recorded: {_names(runs)}")
    titles = ["a_L", f"Π s_j (j ≥ {i})", f"alignment P{sup(i)}", f"m{sub(i)}", f"κ{sub(i)}",
              f"E‖K{sub(i)}‖² (their product)"]
    curves = [Curve(key, title, True, True, values=_factor(j, i))
              for j, ((key, _, _), title) in enumerate(zip(five_factors(runs[0], i), titles))]
    return series_figure(f"five factors of E‖K{sub(i)}‖²", runs, curves, opts)


def _factor(j: int, i: int):
    def values(run: RunView) -> np.ndarray:
        return five_factors(run, i)[j][2]
    return values
