"""Pure functions that bound the cost of drawing a series: min/max downsampling to a width.

Plotting cost grows with the number of points, so every series is reduced to at most
``2 * buckets`` points before it reaches a plot, whatever the length of the run. Buckets are
equal intervals of ``x`` (the x axis of the plot); each non-empty bucket keeps the point with
the smallest and the point with the largest ``y`` (in their original order), so spikes stay
visible. Non-finite ``y`` values (NaN = "not computed at this step") are dropped first.

Shared by the terminal panels (``eos_tui.app.widgets.plot``) and the static figures
(:mod:`engine.figures`), which draw long series through the same envelope.
"""

from __future__ import annotations

import numpy as np

__all__ = ["finite_xy", "minmax_downsample", "interp_at", "value_at"]


def finite_xy(x: np.ndarray, y: np.ndarray, *, positive: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(x, y)`` without points where either is non-finite (or ``y <= 0`` if ``positive``)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n = min(len(x), len(y))
    x, y = x[:n], y[:n]
    keep = np.isfinite(x) & np.isfinite(y)
    if positive:
        keep &= y > 0
    if keep.all():
        return x, y
    return x[keep], y[keep]


def minmax_downsample(
    x: np.ndarray, y: np.ndarray, buckets: int, *, positive: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Reduce ``(x, y)`` to at most ``2 * buckets`` points, keeping each bucket's min and max.

    ``x`` should be non-decreasing (step or time); if it is not, points are sorted by ``x``.
    Non-finite points (and non-positive ``y`` when ``positive``, for log axes) are dropped.
    The first and last finite points are always kept.
    """
    buckets = max(int(buckets), 1)
    x, y = finite_xy(x, y, positive=positive)
    n = len(x)
    if n <= 2 * buckets:
        return x, y
    if np.any(np.diff(x) < 0):
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
    x0, x1 = x[0], x[-1]
    span = x1 - x0
    if span <= 0:
        bucket = (np.arange(n) * buckets) // n
    else:
        bucket = np.minimum(((x - x0) / span * buckets).astype(np.int64), buckets - 1)
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    counts = np.diff(np.r_[starts, n])
    keep = [np.array([0, n - 1])]
    for reduce in (np.minimum, np.maximum):
        extreme = np.repeat(reduce.reduceat(y, starts), counts)
        hits = np.flatnonzero(y == extreme)
        _, first = np.unique(bucket[hits], return_index=True)
        keep.append(hits[first])
    keep = np.concatenate(keep)
    keep = np.unique(keep)  # sorted: original x order
    return x[keep], y[keep]


def interp_at(x: np.ndarray, y: np.ndarray, at: np.ndarray | float) -> np.ndarray | float:
    """Linear interpolation of the finite points of ``(x, y)`` at ``at``; NaN outside their range."""
    xf, yf = finite_xy(x, y)
    scalar = np.ndim(at) == 0
    at_arr = np.atleast_1d(np.asarray(at, dtype=float))
    if len(xf) == 0:
        out = np.full(at_arr.shape, np.nan)
    else:
        if np.any(np.diff(xf) < 0):
            order = np.argsort(xf, kind="stable")
            xf, yf = xf[order], yf[order]
        out = np.interp(at_arr, xf, yf, left=np.nan, right=np.nan)
    return float(out[0]) if scalar else out


def value_at(x: np.ndarray, y: np.ndarray, at: float) -> float:
    """The last finite ``y`` whose ``x <= at`` (NaN if none): the value "current" at ``at``."""
    xf, yf = finite_xy(x, y)
    i = int(np.searchsorted(xf, at, side="right")) - 1
    return float(yf[i]) if i >= 0 else float("nan")
