"""What each panel shows: pure functions from a :class:`RunData` (up to a row) to a Panel.

``stop`` is the number of step rows to show (replay playhead; ``None`` = all). Snapshots are
shown up to the step of the last shown row. The x axis is ``"step"`` or ``"t"``
(gradient-flow time); snapshot steps are mapped to ``t`` through the step table. The series come
from the engine's :class:`~engine.analysis.series.RunView` (``data.view(stop)``), which the
static figures read too; the ``p`` key draws these very panels with matplotlib.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.analysis.series import TRANSIENT_STEPS, XLABEL, five_factors

from .series import RunData
from .widgets.plot import Line, Panel

__all__ = [
    "sharpness_figure", "loss_figure", "stepsize_figure", "layer_figure",
    "curvature_figure", "factor_rows", "FactorRow", "EIG_COLORS", "TRANSIENT_STEPS",
]

EIG_COLORS = ["red", "orange", "yellow", "green", "cyan", "blue", "magenta", "white"]


def sharpness_figure(data: RunData, stop, xaxis: str, extra_eigs: bool, vline=None) -> Panel:
    rv = data.view(stop)
    v, x = rv.steps, rv.x(xaxis)
    lines = []
    k = data.num_eigs if extra_eigs else 1
    for i in range(k, 0, -1):  # draw λ1 last so it is on top
        y = v.get(f"lambda_H_{i}")
        if y is not None:
            lines.append(Line(x, y, f"λ{i}(H)", EIG_COLORS[(i - 1) % len(EIG_COLORS)],
                              converged=rv.converged(f"lambda_H_{i}")))
    if "threshold" in v:
        lines.append(Line(x, v["threshold"], data.threshold_label, "white", dashed=True))
    title = f"sharpness λ1(H) vs {data.threshold_label}"
    if extra_eigs and data.num_eigs > 1:
        title = f"top-{data.num_eigs} eigenvalues of H vs {data.threshold_label}"
    return Panel(title=title, xlabel=XLABEL[xaxis], lines=lines, vline=vline)


def loss_figure(data: RunData, stop, xaxis: str, ylog: bool, vline=None) -> Panel:
    rv = data.view(stop)
    v, x = rv.steps, rv.x(xaxis)
    lines = []
    if "loss" in v:
        lines.append(Line(x, v["loss"], "loss", "cyan"))
    if "accuracy" in v:
        lines.append(Line(x, v["accuracy"], "accuracy (right)", "green", right=True))
    target = data.target_loss()
    if "loss" in v and len(x):
        lines.append(Line(x[[0, -1]], np.array([target, target]), "target", "gray", dashed=True))
    scale = "log" if ylog else "linear"
    return Panel(title=f"training loss ({scale}) and accuracy", xlabel=XLABEL[xaxis], lines=lines,
                 ylog=ylog, vline=vline)


def stepsize_figure(data: RunData, stop, vline=None) -> Panel:
    rv = data.view(stop)
    v, x = rv.steps, rv.x("t")
    lines = []
    if "tau" in v:
        lines.append(Line(x, v["tau"], "τ taken" if data.solver == "ee" else "η", "yellow"))
    if data.solver == "ee" and "lr" in v:
        lines.append(Line(x, v["lr"], "η max", "gray", dashed=True))
    sym = "τ" if data.solver == "ee" else "η"
    return Panel(title=f"step size {sym} against t", xlabel=XLABEL["t"], lines=lines, vline=vline)


def layer_figure(data: RunData, stop, xaxis: str, layer: int, vline=None) -> Panel:
    rv = data.view(stop)
    s, x = rv.snaps, rv.snap_x(xaxis)
    L = data.depth
    lines = []
    for name, label, color in (
        (f"EK2_layer_{layer}", f"E‖K{layer}‖²", "red"),
        (f"s_{layer}", f"s{layer}", "yellow"),
        (f"r_{layer}", f"r{layer}", "green"),
        (f"P_{layer}", f"P^{layer}", "cyan"),
    ):
        if name in s:
            lines.append(Line(x, s[name], label, color))
    note = "" if layer < L else f" (layer {L} is the output layer: no s, r; P^{L}=1)"
    return Panel(title=f"layer {layer}/{L} alignment (log){note}", xlabel=XLABEL[xaxis], lines=lines,
                 ylog=True, vline=vline, message="no snapshot yet")


def curvature_figure(data: RunData, stop, xaxis: str, vline=None) -> Panel:
    rv = data.view(stop)
    s, x = rv.snaps, rv.snap_x(xaxis)
    lines = []
    for name, label, color, right in (
        ("lambda_G1", "λ1(G)", "magenta", False),
        ("lambda_HmG1", "λ1(H−G)", "blue", False),
        ("overlap_ratio", "overlap ρ (right)", "green", True),
    ):
        if name in s:
            lines.append(Line(x, s[name], label, color, right=right, converged=rv.converged(name)))
    return Panel(title="Gauss–Newton λ1(G), λ1(H−G) and overlap ratio", xlabel=XLABEL[xaxis], lines=lines,
                 vline=vline, message="no snapshot yet")


@dataclass
class FactorRow:
    name: str
    first: float
    now: float

    @property
    def growth(self) -> float:
        if not (math.isfinite(self.first) and math.isfinite(self.now)) or self.first == 0:
            return float("nan")
        return self.now / self.first


def factor_rows(data: RunData, stop=None) -> tuple[list[FactorRow], int | None, int | None]:
    """The five factors of E‖K_1‖² (and their product) at the first non-transient and last snapshot.

    Returns ``(rows, first_step, last_step)``.
    """
    rv = data.view(stop)
    steps = rv.snaps.get("step", np.empty(0))
    if len(steps) == 0:
        return [], None, None
    later = np.flatnonzero(steps >= TRANSIENT_STEPS)
    i0 = int(later[0]) if len(later) else 0
    i1 = len(steps) - 1
    series = [(label, y) for _, label, y in five_factors(rv, 1)]
    rows = [FactorRow(name, float(y[i0]), float(y[i1])) for name, y in series]
    return rows, int(steps[i0]), int(steps[i1])
