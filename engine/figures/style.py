"""What every figure shares: options, a fresh Agg figure, colours by dataset size, the transient,
smoothing, long-series envelopes, unconverged points drawn hollow, and the record of every
plotted series (written beside the image as CSV by :mod:`engine.figures.output`).

Only matplotlib's object-oriented API is used (``matplotlib.figure.Figure`` with its own Agg
canvas): no ``pyplot``, no global figure state, so figures can be built in any thread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from engine.analysis.downsample import minmax_downsample
from engine.analysis.series import TRANSIENT_STEPS, XAXES, RunView
from engine.errors import EosError

__all__ = [
    "FigureError", "FigureOptions", "PlottedSeries", "plotted", "new_figure", "RunColors",
    "draw_series", "shade_transient", "smooth", "legend", "finish", "style_axes", "plain_log_ticks", "Curve", "sub", "sup",
    "has_data",
    "TRANSIENT_LABEL",
]

TRANSIENT_LABEL = f"transient (first {TRANSIENT_STEPS} steps)"
TRANSIENT_COLOR = "0.90"
SNAPSHOT_MARKERS = 60  # snapshot series with at most this many points are drawn with markers


class FigureError(EosError):
    """A figure cannot be drawn from these runs (missing columns, too few sizes ...), or cannot
    be written where asked. One line; the CLI prints it and exits 2."""


@dataclass(frozen=True)
class FigureOptions:
    """How a figure is drawn (``eos-tui plot`` options; the ``p`` key uses the defaults)."""

    xaxis: str = "step"                 # "step" or "t" (``compare`` always uses t)
    logy: bool | None = None            # None: each panel's own default scale
    smooth: int = 0                     # moving average over this many points (raw kept faint)
    layers: tuple[int, ...] | None = None  # layers of ``alignment``/``layers``/``factors``
    size: tuple[float, float] | None = None  # inches (width, height); None: from the panels
    dpi: int = 150
    max_points: int = 4000              # a drawn line longer than this is its min/max envelope

    def __post_init__(self) -> None:
        if self.xaxis not in XAXES:
            raise FigureError(f"unknown x axis {self.xaxis!r}; use one of {', '.join(XAXES)}")
        if self.smooth < 0:
            raise FigureError(f"--smooth must be >= 0 points, got {self.smooth}")
        if self.dpi < 10 or self.dpi > 2400:
            raise FigureError(f"--dpi must be between 10 and 2400, got {self.dpi}")
        if self.size is not None and not (0 < self.size[0] <= 100 and 0 < self.size[1] <= 100):
            raise FigureError(f"--size must be two positive numbers of inches up to 100, got {self.size}")
        if self.layers is not None and (not self.layers or min(self.layers) < 1):
            raise FigureError(f"--layers must be positive layer numbers (1-based), got {self.layers}")

    def log(self, default: bool) -> bool:
        """The y scale of a panel whose own default is ``default`` (``--logy``/``--linear`` win)."""
        return default if self.logy is None else self.logy


@dataclass
class PlottedSeries:
    """One series exactly as plotted (every point; the drawn line may be its envelope)."""

    panel: str
    series: str                     # the store's column name (or a derived name: prod_s, fit ...)
    run: str
    x: np.ndarray
    y: np.ndarray
    xname: str
    solver: str = ""
    D: int | None = None
    converged: np.ndarray | None = None


def plotted(fig: Figure) -> list[PlottedSeries]:
    """The series recorded while ``fig`` was drawn (what its CSV holds)."""
    return fig.__dict__.setdefault("eos_series", [])


# fixed margins in inches: matplotlib's constrained layout measured every tick label and took
# two thirds of the time of a figure (1.9 of 3 s for a six-panel one)
MARGIN = {"left": 0.62, "right": 0.2, "bottom": 0.48, "top": 0.52, "wgap": 0.62, "hgap": 0.62}
COLORBAR_WIDTH = 1.0  # inches kept on the right for a colour bar and its labels


def new_figure(opts: FigureOptions, n_panels: int, *, ncols: int = 3, panel_size=(3.9, 2.9),
               colorbar: bool = False, wgap: float | None = None,
               right: float | None = None) -> tuple[Figure, list[Axes]]:
    """A fresh figure on its own Agg canvas with ``n_panels`` axes in rows of ``ncols`` (and room
    on the right for a colour bar, see :meth:`RunColors.colorbar`). ``wgap`` and ``right`` (inches)
    widen the gaps for right-hand axes."""
    ncols = max(1, min(ncols, n_panels))
    nrows = max(1, math.ceil(n_panels / ncols))
    right = (MARGIN["right"] if right is None else right) + (COLORBAR_WIDTH if colorbar else 0.0)
    wgap = MARGIN["wgap"] if wgap is None else wgap
    width, height = opts.size or (panel_size[0] * ncols + right, panel_size[1] * nrows + 0.2)
    fig = Figure(figsize=(width, height), dpi=opts.dpi)
    FigureCanvasAgg(fig)
    left, bottom, top = (MARGIN[k] for k in ("left", "bottom", "top"))
    ax_w = max((width - left - right - wgap * (ncols - 1)) / ncols, 0.3)
    ax_h = max((height - bottom - top - MARGIN["hgap"] * (nrows - 1)) / nrows, 0.3)
    grid = fig.subplots(nrows, ncols, squeeze=False, gridspec_kw=dict(
        left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
        wspace=wgap / ax_w, hspace=MARGIN["hgap"] / ax_h))
    axes = list(grid.ravel())
    for ax in axes[n_panels:]:
        ax.remove()
    plotted(fig)
    return fig, axes[:n_panels]


def style_axes(ax: Axes, *, title: str, xlabel: str) -> None:
    """Small ticks, a light grid and plain numbers on log axes (no 10^x mathtext per tick),
    minor ticks labelled when the axis spans less than about a decade. Call after drawing."""
    # an explicit title height: matplotlib otherwise measures every tick label to place it
    ax.set_title(title, fontsize="small", y=1.0, pad=4)
    ax.set_xlabel(xlabel, fontsize="small")
    ax.tick_params(which="both", labelsize="x-small")
    ax.grid(True, which="major", lw=0.4, alpha=0.4)
    for axis in (ax.xaxis, ax.yaxis):  # at most 6 major ticks: each tick is costly to draw
        if axis.get_scale() == "linear":
            axis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    if ax.get_yscale() == "log":
        plain_log_ticks(ax.yaxis, *ax.get_ylim())


def plain_log_ticks(axis, lo: float, hi: float) -> None:
    """Plain numbers on a log axis spanning ``lo..hi``, minor ticks labelled where the major
    ones alone would be one or two numbers, and only at 2 and 5 on wider axes (each tick costs
    time to draw; eight a decade add up)."""
    axis.set_major_formatter(_PLAIN)
    span = hi / lo if lo > 0 else math.inf
    if span >= 3:  # below that, matplotlib's own minor ticks are the readable ones
        axis.set_minor_locator(LogLocator(subs=(2.0, 5.0) if span >= 10 else (2.0, 3.0, 5.0)))
    axis.set_minor_formatter(_PLAIN if span < 300 else NullFormatter())


def sub(i: int) -> str:
    """``i`` in subscript digits (``12`` → ``₁₂``): labels without mathtext, whose parser alone
    took a tenth of a figure's time."""
    return str(i).translate(_SUB)


def sup(i: int) -> str:
    """``i`` in superscript digits (``1`` → ``¹``)."""
    return str(i).translate(_SUP)


_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
_SUP = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
_PLAIN = FuncFormatter(lambda v, _pos: f"{v:.4g}" if v < 1e4 else f"{v:.0e}")  # 1000, not 1e+03


class RunColors:
    """One colour per run: by dataset size D on a log colour scale (with a colour bar) when the
    runs differ in size, else distinct colours (named in a legend when there are several)."""

    def __init__(self, runs: Sequence[RunView]) -> None:
        self.runs = list(runs)
        sizes = sorted({r.n_train for r in self.runs if r.n_train})
        self.sizes = sizes
        self.by_size = len(sizes) > 1
        self.cmap = colormaps["viridis"]
        self.norm = LogNorm(sizes[0], sizes[-1]) if self.by_size else Normalize(0, 1)

    def color(self, i: int):
        run = self.runs[i]
        if self.by_size and run.n_train:
            return self.cmap(0.92 * float(self.norm(run.n_train)))
        if len(self.runs) == 1:
            return "tab:blue"
        return colormaps["tab10"](i % 10)

    @property
    def named(self) -> bool:
        """Whether runs are told apart by a legend (same size, a few runs)."""
        return not self.by_size and 1 < len(self.runs) <= 10

    def colorbar(self, fig: Figure) -> None:
        """The colour bar of dataset sizes, in the room :func:`new_figure` kept on the right."""
        if not self.by_size:
            return
        width, height = fig.get_size_inches()
        bottom, top = MARGIN["bottom"] / height, 1 - MARGIN["top"] / height
        cax = fig.add_axes((1 - (COLORBAR_WIDTH - 0.12) / width, bottom, 0.14 / width, top - bottom))
        mappable = ScalarMappable(norm=self.norm, cmap=self.cmap.resampled(256))
        cb = fig.colorbar(mappable, cax=cax, label="dataset size D")
        cb.set_ticks(self.sizes, labels=[str(s) for s in self.sizes])
        cb.ax.tick_params(which="both", labelsize="x-small")
        cb.minorticks_off()


def smooth(y: np.ndarray, n: int) -> np.ndarray:
    """Centred moving average over ``n`` points (windows shrink at the ends; length kept)."""
    y = np.asarray(y, dtype=float)
    if n <= 1 or len(y) < 2:
        return y.copy()
    half_lo, half_hi = (n - 1) // 2, n // 2
    c = np.concatenate([[0.0], np.cumsum(y)])
    i = np.arange(len(y))
    lo = np.maximum(i - half_lo, 0)
    hi = np.minimum(i + half_hi + 1, len(y))
    return (c[hi] - c[lo]) / (hi - lo)


def draw_series(fig: Figure, ax: Axes, opts: FigureOptions, *, panel: str, series: str, run: RunView | None,
                x, y, xname: str, color, log: bool, label: str | None = None, dashed: bool = False,
                snapshot: bool = False, converged: np.ndarray | None = None, smoothable: bool = True,
                lw: float = 1.4, alpha: float = 1.0, points: bool = False) -> Line2D | None:
    """Draw one series of one run and record it; returns the (main) line, ``None`` if empty.

    Non-finite points (and non-positive ones on a log axis) are left out of both the drawing and
    the record. With ``opts.smooth`` the raw curve stays faint under its moving average and both
    are recorded. A line of more than ``opts.max_points`` points is drawn as its min/max
    envelope (spikes stay); the record keeps every point. Points whose ``converged`` flag is
    false are drawn hollow. ``points``: unconnected markers (a scatter, e.g. one point per run).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n = min(len(x), len(y))
    keep = np.isfinite(x[:n]) & np.isfinite(y[:n])
    if log:
        keep &= y[:n] > 0
    x, y = x[:n][keep], y[:n][keep]
    conv = None if converged is None else np.asarray(converged, dtype=bool)[:n][keep]
    if len(x) == 0:
        return None
    name = "" if run is None else run.name
    solver = "" if run is None else run.solver
    D = None if run is None else run.n_train

    def record(s: str, yy: np.ndarray, c: np.ndarray | None = None) -> None:
        plotted(fig).append(PlottedSeries(panel, s, name, x, yy, xname, solver, D, c))

    gid = f"{panel}|{series}|{name}"
    style = dict(color=color, lw=lw, alpha=alpha, ls="--" if dashed else "-")
    if snapshot and len(x) <= SNAPSHOT_MARKERS:
        style.update(marker="o", ms=3.2)
    if points:
        style.update(ls="none", marker="o", ms=4.0)
        smoothable = False
    main_y = y
    if opts.smooth > 1 and smoothable and not dashed and len(x) > 2:
        _plot(ax, x, y, opts, dict(style, alpha=0.25 * alpha, lw=0.9, marker=None), gid + "|raw", log)
        record(series, y, conv)
        main_y = smooth(y, opts.smooth)
        series = f"{series} (smoothed {opts.smooth})"
        gid = f"{panel}|{series}|{name}"
    if conv is not None and not conv.all() and style.get("marker"):
        style["markevery"] = list(np.flatnonzero(conv))
    line = _plot(ax, x, main_y, opts, dict(style, label=label), gid, log)
    record(series, main_y, conv)
    if conv is not None and not conv.all():
        ax.plot(x[~conv], y[~conv], ls="none", marker="o", ms=4.5, mfc="none", mec=color, mew=1.1,
                gid=gid + "|unconverged")
    return line


def _plot(ax: Axes, x, y, opts: FigureOptions, style: dict, gid: str, log: bool) -> Line2D:
    if len(x) > opts.max_points:
        x, y = minmax_downsample(x, y, max((opts.max_points - 2) // 2, 1), positive=log)  # + first, last
        style = dict(style, marker=None)
    return ax.plot(x, y, gid=gid, **style)[0]


def shade_transient(ax: Axes, runs: Sequence[RunView], xaxis: str) -> None:
    """Shade the first ``TRANSIENT_STEPS`` steps (on ``t``: up to the latest run's t there)."""
    starts, ends = [], []
    for r in runs:
        steps = r.step_col("step")
        if len(steps) == 0:
            continue
        starts.append(r.x_at_step(float(np.nanmin(steps)), xaxis))
        ends.append(r.x_at_step(min(TRANSIENT_STEPS, float(np.nanmax(steps))), xaxis))
    x0, x1 = _nanreduce(min, starts), _nanreduce(max, ends)
    if math.isfinite(x0) and math.isfinite(x1) and x1 > x0:
        ax.axvspan(x0, x1, color=TRANSIENT_COLOR, lw=0, zorder=0, gid="transient")


def _nanreduce(fn, xs) -> float:
    xs = [x for x in xs if math.isfinite(x)]
    return fn(xs) if xs else math.nan


def legend(ax: Axes, colors: RunColors | None, *, threshold: str | None = None, transient: bool = True,
           unconverged: bool = False, extra: Sequence[tuple[str, dict]] = ()) -> None:
    """The first panel's legend: the runs (when named), the transient, a threshold's dashes,
    hollow points, and ``extra`` ``(label, Line2D style)`` entries."""
    handles: list = []
    if colors is not None and colors.named:
        handles += [Line2D([], [], color=colors.color(i), lw=1.6, label=r.name) for i, r in enumerate(colors.runs)]
    if threshold:
        handles.append(Line2D([], [], color="0.25", ls="--", lw=1.2, label=threshold))
    handles += [Line2D([], [], label=label, **style) for label, style in extra]
    if unconverged:
        handles.append(Line2D([], [], ls="none", marker="o", mfc="none", mec="0.25", label="not converged"))
    if transient:
        handles.append(Patch(color=TRANSIENT_COLOR, label=TRANSIENT_LABEL))
    if handles:
        ax.legend(handles=handles, fontsize="x-small", frameon=False, loc="best")


def finish(fig: Figure, title: str, runs: Sequence[RunView]) -> Figure:
    """The figure's title: what it shows and of which runs."""
    if len(runs) == 1:
        r = runs[0]
        bits = [r.solver.upper() if r.solver in ("gd", "ee") else r.solver]
        if r.dataset:
            bits.append(str(r.dataset))
        if r.n_train:
            bits.append(f"D = {r.n_train}")
        title = f"{title} — {r.name} ({', '.join(bits)})"
    else:
        title = f"{title} — {len(runs)} runs"
    fig.suptitle(title, fontsize="medium")
    return fig


@dataclass(frozen=True)
class Curve:
    """A panel of a time-series figure: one curve per run of a step or snapshot quantity."""

    key: str                  # the store's column name (or a derived name)
    title: str                # the panel's title (mathtext allowed)
    snapshot: bool            # a snapshot quantity (x: snapshot steps) or a per-step one
    log: bool                 # the panel's default y scale
    values: object = None     # RunView -> array aligned with the x values; default: the column
    threshold: bool = False   # also draw each GD run's 2/η dashed

    def of(self, run: RunView) -> np.ndarray:
        if self.values is not None:
            return self.values(run)
        return run.snap_col(self.key) if self.snapshot else run.step_col(self.key)

    def converged(self, run: RunView) -> np.ndarray | None:
        return None if self.values is not None else run.converged(self.key)


def has_data(runs: Sequence[RunView], curve: Curve) -> bool:
    return any(np.isfinite(curve.of(r)).any() for r in runs)
