"""What each panel shows: pure functions from a :class:`RunData` (up to a row) to a Figure.

``stop`` is the number of step rows to show (replay playhead; ``None`` = all). Snapshots are
shown up to the step of the last shown row. The x axis is ``"step"`` or ``"t"``
(gradient-flow time); snapshot steps are mapped to ``t`` through the step table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .downsample import finite_xy
from .series import RunData
from .widgets.plot import Figure, Line

__all__ = [
    "certified_lines", "step_converged", "UNCONVERGED", "snap_view", "snap_x", "sharpness_figure", "loss_figure", "stepsize_figure", "layer_figure",
    "curvature_figure", "factor_rows", "FactorRow", "EIG_COLORS", "TRANSIENT_STEPS",
]

TRANSIENT_STEPS = 10
UNCONVERGED = "○"  # the marker of a value whose eigen-solve did not reach its tolerance (dimmed)
EIG_COLORS = ["red", "orange", "yellow", "green", "cyan", "blue", "magenta", "white"]
XLABEL = {"step": "step", "t": "t (gradient-flow time)"}


def snap_view(data: RunData, stop: int | None) -> dict[str, np.ndarray]:
    """Snapshot columns up to the step of row ``stop - 1``."""
    snaps = data.snaps.view()
    if stop is None or "step" not in snaps:
        return snaps
    steps = data.steps.column("step", stop)
    if len(steps) == 0:
        return {k: v[:0] for k, v in snaps.items()}
    k = int(np.searchsorted(snaps["step"], steps[-1], side="right"))
    return {name: col[:k] for name, col in snaps.items()}


def snap_x(data: RunData, snaps: dict[str, np.ndarray], xaxis: str) -> np.ndarray:
    s = snaps.get("step", np.empty(0))
    if xaxis == "step" or len(s) == 0:
        return s
    st, t = finite_xy(data.steps.column("step"), data.steps.column("t"))
    if len(st) == 0:
        return s * np.nan
    return np.interp(s, st, t)


def _x(v: dict[str, np.ndarray], xaxis: str) -> np.ndarray:
    return v.get(xaxis, v.get("step", np.empty(0)))


def certified_lines(x: np.ndarray, y: np.ndarray, converged: np.ndarray | None, label: str, color: str,
                    right: bool = False) -> list[Line]:
    """A series as a line through its converged points plus hollow dimmed markers at the others
    (``converged`` 0; NaN or missing: no certificate recorded, drawn as converged)."""
    if converged is None or not (converged == 0).any():
        return [Line(x, y, label, color, right=right)]
    bad = converged == 0
    return [Line(x, np.where(bad, np.nan, y), label, color, right=right),
            Line(x, np.where(bad, y, np.nan), f"{label} unconverged", "gray", right=right, marker=UNCONVERGED)]


def step_converged(data: RunData, v: dict[str, np.ndarray]) -> np.ndarray | None:
    """Per step: 1 where the tracked Ritz pairs met ``eig.residual_tol``, 0 where not, NaN where
    the run recorded no certificate (an older store, or no spectrum that step)."""
    resid = v.get("eig_resid")
    tol = _residual_tol(data)
    if resid is None or tol is None:
        return None
    return np.where(np.isnan(resid), np.nan, (resid <= tol).astype(float))


def _residual_tol(data: RunData) -> float | None:
    eig = data.config.get("eig") if isinstance(data.config, dict) else None
    try:
        tol = float(eig["residual_tol"]) if isinstance(eig, dict) else None
    except (KeyError, TypeError, ValueError):
        return None
    return tol if tol and tol > 0 else None


def sharpness_figure(data: RunData, stop, xaxis: str, extra_eigs: bool, vline=None) -> Figure:
    v = data.steps.view(stop)
    x = _x(v, xaxis)
    lines = []
    k = data.num_eigs if extra_eigs else 1
    converged = step_converged(data, v)
    for i in range(k, 0, -1):  # draw λ1 last so it is on top
        y = v.get(f"lambda_H_{i}")
        if y is not None:
            lines += certified_lines(x, y, converged, f"λ{i}(H)", EIG_COLORS[(i - 1) % len(EIG_COLORS)])
    if "threshold" in v:
        lines.append(Line(x, v["threshold"], data.threshold_label, "white", dashed=True))
    title = f"sharpness λ1(H) vs {data.threshold_label}"
    if extra_eigs and data.num_eigs > 1:
        title = f"top-{data.num_eigs} eigenvalues of H vs {data.threshold_label}"
    return Figure(title=title, xlabel=XLABEL[xaxis], lines=lines, vline=vline)


def loss_figure(data: RunData, stop, xaxis: str, ylog: bool, vline=None) -> Figure:
    v = data.steps.view(stop)
    x = _x(v, xaxis)
    lines = []
    if "loss" in v:
        lines.append(Line(x, v["loss"], "loss", "cyan"))
    if "accuracy" in v:
        lines.append(Line(x, v["accuracy"], "accuracy (right)", "green", right=True))
    target = data.target_loss()
    if "loss" in v and len(x):
        lines.append(Line(x[[0, -1]], np.array([target, target]), "target", "gray", dashed=True))
    scale = "log" if ylog else "linear"
    return Figure(title=f"training loss ({scale}) and accuracy", xlabel=XLABEL[xaxis], lines=lines,
                  ylog=ylog, vline=vline)


def stepsize_figure(data: RunData, stop, vline=None) -> Figure:
    v = data.steps.view(stop)
    x = _x(v, "t")
    lines = []
    if "tau" in v:
        lines.append(Line(x, v["tau"], "τ taken" if data.solver == "ee" else "η", "yellow"))
    if data.solver == "ee" and "lr" in v:
        lines.append(Line(x, v["lr"], "η max", "gray", dashed=True))
    err = v.get("ee_err")
    if data.solver == "ee" and err is not None and np.isfinite(err).any():
        lines.append(Line(x, err, "local error (right)", "cyan", right=True))
        rejected = v.get("ee_rejections")
        if rejected is not None and "tau" in v:
            lines.append(Line(x, np.where(rejected > 0, v["tau"], np.nan), "after a rejection", "red", marker="x"))
    sym = "τ" if data.solver == "ee" else "η"
    title = f"step size {sym} against t"
    if data.solver == "ee" and err is not None and np.isfinite(err).any():
        title += " and the local error estimate"
    ee = data.solver == "ee"  # τ spans decades under step-size control: log scales
    return Figure(title=title, xlabel=XLABEL["t"], lines=lines, vline=vline, ylog=ee, ylog_right=ee)


def layer_figure(data: RunData, stop, xaxis: str, layer: int, vline=None) -> Figure:
    s = snap_view(data, stop)
    x = snap_x(data, s, xaxis)
    L = data.depth
    lines = []
    converged = s.get(f"s_{layer}_converged")  # s_i, and r_i, P^i through it, carry its certificate
    for name, label, color, certified in (
        (f"EK2_layer_{layer}", f"E‖K{layer}‖²", "red", False),
        (f"s_{layer}", f"s{layer}", "yellow", True),
        (f"r_{layer}", f"r{layer}", "green", True),
        (f"P_{layer}", f"P^{layer}", "cyan", True),
    ):
        if name in s:
            lines += certified_lines(x, s[name], converged if certified else None, label, color)
    note = "" if layer < L else f" (layer {L} is the output layer: no s, r; P^{L}=1)"
    return Figure(title=f"layer {layer}/{L} alignment (log){note}", xlabel=XLABEL[xaxis], lines=lines,
                  ylog=True, vline=vline, message="no snapshot yet")


def curvature_figure(data: RunData, stop, xaxis: str, vline=None) -> Figure:
    s = snap_view(data, stop)
    x = snap_x(data, s, xaxis)
    lines = []
    for name, label, color, right, flag in (
        ("lambda_G1", "λ1(G)", "magenta", False, "lambda_G1_converged"),
        ("lambda_HmG1", "λ1(H−G)", "blue", False, "lambda_HmG1_converged"),
        ("overlap_ratio", "overlap ρ (right)", "green", True, "lambda_G1_converged"),
    ):
        if name in s:
            lines += certified_lines(x, s[name], s.get(flag), label, color, right=right)
    return Figure(title="Gauss–Newton λ1(G), λ1(H−G) and overlap ratio", xlabel=XLABEL[xaxis], lines=lines,
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
    s = snap_view(data, stop)
    steps = s.get("step", np.empty(0))
    if len(steps) == 0:
        return [], None, None
    later = np.flatnonzero(steps >= TRANSIENT_STEPS)
    i0 = int(later[0]) if len(later) else 0
    i1 = len(steps) - 1
    L = data.depth

    def col(name):
        return s.get(name, np.full(len(steps), np.nan))

    prod_s = np.ones(len(steps))
    for j in range(1, L):
        prod_s = prod_s * col(f"s_{j}")
    series = [
        ("a_L", col("a_L")),
        ("Π s_j", prod_s),
        ("P^1", col("P_1")),
        ("m_1", col("m_1")),
        ("κ_1", col("kappa_1")),
        ("E‖K_1‖²", col("EK2_layer_1")),
    ]
    rows = [FactorRow(name, float(y[i0]), float(y[i1])) for name, y in series]
    return rows, int(steps[i0]), int(steps[i1])
