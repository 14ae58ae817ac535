"""The full metric set recorded at snapshot steps (spec §2–4, §7), every eigenvalue certified.

Per-layer alignment quantities come from the layer structure (``engine.layer_metrics``), with
the largest relative residual of the per-sample ``‖J_i‖²`` pairs of each layer (``s_i_resid``)
and whether it is within ``metrics.eig_tol`` (``s_i_converged``). λ1(G) comes from the n·c Gram
matrix when it is small enough to factor densely (exact: residual 0), otherwise from
warm-started Lanczos on Gauss–Newton-vector products stopped at relative residual
``metrics.eig_tol``; λ1(H−G) in both senses (largest algebraic, largest magnitude with its sign)
from warm-started Lanczos on ``(H − G)v``. Each eigenvalue ``X`` is stored with ``X_resid`` and
``X_converged`` (1/0); a tolerance not met within ``metrics.snapshot_eig_iters`` products is
recorded as unconverged, never as converged.

Definitions, costs and accuracy of the recorded quantities: ``docs/metrics.md``.
"""

from __future__ import annotations

import time

import torch

from engine.criteria import Criterion
from engine.gauss_newton import (
    Certified,
    ggn_top_eigenvalue,
    gram_top_eigenvalue,
    overlap_ratio,
    residual_eigenvalues,
)
from engine.layer_metrics import LayerMetricsComputer
from engine.model import MLPSpec
from engine.products import LossProblem

GRAM_MAX = 6000  # largest n·c for which λ1(G) is taken from the dense Gram matrix


def certified_values(name: str, value: Certified) -> dict[str, float]:
    """``{name, name_resid, name_converged}`` of one certified eigenvalue."""
    return {name: value.value, f"{name}_resid": value.residual, f"{name}_converged": float(value.converged)}


class SnapshotComputer:
    """Computes the snapshot metrics, keeping warm starts between snapshots."""

    def __init__(self, spec: MLPSpec, criterion: Criterion, problem: LossProblem, cfg: dict) -> None:
        self.spec = spec
        self.criterion = criterion
        self.problem = problem
        mc = cfg["metrics"]
        self.enabled = bool(mc["layer_metrics"])
        self.tol = mc["eig_tol"]
        self.max_steps = mc["snapshot_eig_iters"]
        self.residual = bool(mc["residual"])
        self.layers = LayerMetricsComputer(spec, criterion, chunk_size=problem.chunk_size,
                                           power_tol=mc["norm_tol"], residual_tol=self.tol)
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

    def compute(self, theta: torch.Tensor, *, full: bool = True) -> dict[str, float]:
        """Snapshot values by store name (``EK2``, ``P_1``, ``lambda_G1``, ``lambda_G1_resid``, ...).

        ``full=False``: a cheap snapshot, without λ1(H−G) (``snapshot_full`` = 0)."""
        start = time.perf_counter()
        values: dict[str, float] = {}
        if self.enabled:
            X, y = self.problem.X, self.problem.y
            lm = self.layers.compute(theta, X, y)
            values.update(lm.as_dict())
            for j, resid in enumerate(lm.norm_residual.tolist()):
                values[f"s_{j + 1}_converged"] = float(resid <= self.tol)
            if X.shape[0] * self.spec.num_outputs <= GRAM_MAX:
                lam_g = Certified.exact(gram_top_eigenvalue(self.spec, self.criterion, theta, X, y,
                                                            chunk_size=self.problem.chunk_size))
            else:
                lam_g, self._ggn_block = ggn_top_eigenvalue(
                    self.problem, theta, start=self._ggn_block, tol=self.tol, max_steps=self.max_steps)
            values.update(certified_values("lambda_G1", lam_g))
            if self.residual and full:
                top, mag, self._residual_block = residual_eigenvalues(
                    self.problem, theta, start=self._residual_block, tol=self.tol, max_steps=self.max_steps)
                values.update(certified_values("lambda_HmG1", top))
                values.update(certified_values("lambda_HmG_mag", mag))
            values["overlap_ratio"] = float(overlap_ratio(lam_g.value, lm.EK2))
        values["snapshot_full"] = float(full)
        values["snapshot_seconds"] = time.perf_counter() - start
        return values
