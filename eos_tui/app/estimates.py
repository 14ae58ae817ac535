"""Pure estimates shown in the status bar: throughput, ETA to the target loss, formatting."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["steps_per_second", "eta_steps_to_target", "eta_seconds", "fmt_duration", "fmt_num"]


def steps_per_second(step: np.ndarray, wall_s: np.ndarray, window: int = 50) -> float:
    """Recent throughput: steps per wall-clock second over the last ``window`` rows (NaN if unknown)."""
    step = np.asarray(step, dtype=float)
    wall = np.asarray(wall_s, dtype=float)
    n = min(len(step), len(wall))
    if n < 2:
        return float("nan")
    i0 = max(0, n - 1 - window)
    dt = wall[n - 1] - wall[i0]
    ds = step[n - 1] - step[i0]
    if not (math.isfinite(dt) and dt > 0 and ds > 0):
        return float("nan")
    return float(ds / dt)


def eta_steps_to_target(
    step: np.ndarray,
    loss: np.ndarray,
    target: float,
    *,
    window: int = 100,
    skip: int = 10,
) -> float:
    """Steps left until ``loss`` reaches ``target``, extrapolating the recent slope of log(loss).

    Fits ``log(loss) = a + b * step`` by least squares over the last ``window`` finite rows
    (ignoring the first ``skip`` rows, the initial transient, when there are enough others).
    Returns 0 if the last loss is already at or below the target, and NaN if the loss is not
    falling (slope >= 0) or there are fewer than 3 usable points.
    """
    step = np.asarray(step, dtype=float)
    loss = np.asarray(loss, dtype=float)
    n = min(len(step), len(loss))
    step, loss = step[:n], loss[:n]
    if not (target and target > 0):
        return float("nan")
    ok = np.isfinite(step) & np.isfinite(loss) & (loss > 0)
    if ok.sum() - skip >= 3:
        ok[:skip] = False
    s, lo = step[ok][-window:], loss[ok][-window:]
    if len(s) == 0:
        return float("nan")
    if lo[-1] <= target:
        return 0.0
    if len(s) < 3 or np.ptp(s) == 0:
        return float("nan")
    slope = np.polyfit(s - s[-1], np.log(lo), 1)[0]
    if not (math.isfinite(slope) and slope < 0):
        return float("nan")
    return float((math.log(target) - math.log(lo[-1])) / slope)


def eta_seconds(steps_left: float, rate: float) -> float:
    """Seconds for ``steps_left`` steps at ``rate`` steps/s (NaN if either is unknown)."""
    if not (math.isfinite(steps_left) and math.isfinite(rate) and rate > 0):
        return float("nan")
    return steps_left / rate


def fmt_duration(seconds: float) -> str:
    """``"—"``, ``"42s"``, ``"3m04s"``, ``"2h05m"``, ``"3d04h"``."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "—"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def fmt_num(value: float | None, digits: int = 4) -> str:
    """Compact number: ``"—"`` for missing/NaN, 4 significant digits otherwise."""
    if value is None:
        return "—"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "—"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e5:
        return f"{v:.{digits}g}"
    return f"{v:.{max(digits - 1, 1)}e}".replace("e+0", "e+").replace("e-0", "e-")
