"""The full metric set recorded at snapshot steps (spec §2–4, §7).

Per-layer alignment quantities come from the layer structure (``engine.layer_metrics``);
λ1(G) from the n·c Gram matrix when it is small enough to factor densely, otherwise from
warm-started Gauss–Newton-vector subspace iteration; λ1(H−G) from subspace iteration on
``H − G`` (recorded as NaN when its top-magnitude eigenvalue is negative).

Definitions, costs and accuracy of the recorded quantities: ``docs/metrics.md``.
"""

from __future__ import annotations

import time

import torch

from engine.criteria import Criterion
from engine.gauss_newton import (
    ggn_top_eigenvalue,
    gram_top_eigenvalue,
    overlap_ratio,
    residual_top_eigenvalue,
)
from engine.layer_metrics import LayerMetricsComputer
from engine.model import MLPSpec
from engine.products import LossProblem

GRAM_MAX = 6000  # largest n·c for which λ1(G) is taken from the dense Gram matrix


class SnapshotComputer:
    """Computes the snapshot metrics, keeping warm starts between snapshots."""

    def __init__(self, spec: MLPSpec, criterion: Criterion, problem: LossProblem, cfg: dict) -> None:
        self.spec = spec
        self.criterion = criterion
        self.problem = problem
        self.enabled = bool(cfg["metrics"]["layer_metrics"])
        # Warm-started between snapshots with a bounded budget per snapshot: the estimates of
        # λ1(G) and λ1(H−G) keep refining along the run instead of stalling one snapshot.
        self.tol = cfg["eig"]["tol"]
        self.max_iters = cfg["metrics"]["snapshot_eig_iters"]
        self.oversample = cfg["eig"]["oversample"]
        self.residual = bool(cfg["metrics"]["residual"])
        self.layers = LayerMetricsComputer(spec, criterion, chunk_size=problem.chunk_size,
                                           power_tol=cfg["metrics"]["norm_tol"])
        self._ggn_block: torch.Tensor | None = None
        self._residual_block: torch.Tensor | None = None

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The warm starts of λ1(G) and λ1(H−G) (``P × b`` blocks; the per-sample warm vectors
        of the layer norms, ``n × d`` per layer, are not kept: a resumed run starts them cold,
        and they converge to ``metrics.norm_tol``)."""
        blocks = {"ggn_block": self._ggn_block, "residual_block": self._residual_block}
        return {k: v for k, v in blocks.items() if v is not None}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self._ggn_block = state.get("ggn_block")
        self._residual_block = state.get("residual_block")

    def compute(self, theta: torch.Tensor) -> dict[str, float]:
        """Snapshot values by store name (``EK2``, ``P_1``, ``lambda_G1``, ...)."""
        start = time.perf_counter()
        values: dict[str, float] = {}
        if self.enabled:
            X, y = self.problem.X, self.problem.y
            lm = self.layers.compute(theta, X, y)
            values.update(lm.as_dict())
            if X.shape[0] * self.spec.num_outputs <= GRAM_MAX:
                lam_g = gram_top_eigenvalue(self.spec, self.criterion, theta, X, y,
                                            chunk_size=self.problem.chunk_size)
            else:
                lam_g, self._ggn_block = ggn_top_eigenvalue(
                    self.problem, theta, V0=self._ggn_block, tol=self.tol,
                    max_iters=self.max_iters, oversample=self.oversample)
            values["lambda_G1"] = float(lam_g)
            if self.residual:
                lam_r, self._residual_block = residual_top_eigenvalue(
                    self.problem, theta, V0=self._residual_block, tol=self.tol,
                    max_iters=self.max_iters, oversample=self.oversample)
                values["lambda_HmG1"] = float(lam_r)
            values["overlap_ratio"] = float(overlap_ratio(lam_g, lm.EK2))
        values["snapshot_seconds"] = time.perf_counter() - start
        return values
