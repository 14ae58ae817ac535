"""Pure helpers of the compare view: common time axis, values and gaps at equal t."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .downsample import finite_xy, interp_at
from .series import RunData

__all__ = ["common_range", "quantity", "Gap", "gap_rows", "QUANTITIES"]

QUANTITIES = (("loss", "loss"), ("lambda", "λ1"), ("P1", "P^1"))


def quantity(data: RunData, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(t, values)`` of ``loss``, ``lambda`` (λ1(H)) or ``P1`` (snapshots): the engine's
    :meth:`~engine.analysis.series.RunView.quantity`, which the ``compare`` figure draws too."""
    return data.view().quantity(name)


def common_range(a: RunData, b: RunData) -> tuple[float, float] | None:
    """The interval of t covered by both runs (``None`` when one has no rows yet)."""
    ta, _ = finite_xy(a.steps.column("t"), a.steps.column("t"))
    tb, _ = finite_xy(b.steps.column("t"), b.steps.column("t"))
    if not len(ta) or not len(tb):
        return None
    lo, hi = max(ta[0], tb[0]), min(ta[-1], tb[-1])
    if hi < lo:  # no overlap: use the union so the cursor still moves
        lo, hi = min(ta[0], tb[0]), max(ta[-1], tb[-1])
    return float(lo), float(hi)


@dataclass
class Gap:
    t: float
    a: dict[str, float]
    b: dict[str, float]

    def diff(self, name: str) -> float:
        return self.b[name] - self.a[name]


def values_at(data: RunData, ts: np.ndarray) -> dict[str, np.ndarray]:
    return {name: np.atleast_1d(interp_at(*quantity(data, name), ts)) for name, _ in QUANTITIES}


def gap_rows(a: RunData, b: RunData, ts: np.ndarray) -> list[Gap]:
    """Values of both runs interpolated onto the same times ``ts`` (NaN outside a run's data)."""
    ts = np.asarray(ts, dtype=float)
    va, vb = values_at(a, ts), values_at(b, ts)
    return [Gap(float(t), {k: float(v[i]) for k, v in va.items()}, {k: float(v[i]) for k, v in vb.items()})
            for i, t in enumerate(ts)]
