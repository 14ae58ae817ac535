"""Learning rates by rule: ``train.lr = "auto"`` resolves η = factor · 2/λ1(θ0) at initialisation.

GD is stable on a quadratic while λ1(H) < 2/η. Setting η = ``train.lr_factor`` · 2/λ1(θ0)
(e.g. factor 0.5) makes every run start below the edge by the same margin, whatever the data,
width or init gain: to reach 2/η the sharpness must grow by 1/factor, which is the progressive
sharpening a GD run is there to show. A fixed η instead starts some nets already past the edge.

λ1(θ0) comes from a **certified** solve: Lanczos with full reorthogonalization
(:func:`engine.eigensolver.lanczos`) on Hessian-vector products, top 2 by magnitude, stopped
when the error bound ``r²/(|θ|·gap)`` of both Ritz values is below ``TOL``; the Ritz vector's
residual ``‖Hu − λu‖/λ`` is then recomputed with one more explicit product and must be below
``RESIDUAL_TOL``. A solve that does not converge within ``MAX_STEPS`` products, or a λ1 that is
not positive, is a :class:`~engine.errors.ConfigError` (one line; the user can set a number).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from engine.config import AUTO_LR, lr_is_auto
from engine.eigensolver import lanczos
from engine.errors import ConfigError
from engine.products import LossProblem

TOL = 1e-6
"""Lanczos stop: error bound of the top-2 Ritz values, relative (≈ relative eigenvalue error)."""
RESIDUAL_TOL = 1e-3
"""The certificate: the explicit relative residual ‖Hu − λu‖/λ of the returned pair."""
MAX_STEPS = 400
"""Products allowed to the Lanczos solve before it counts as not converged."""


@dataclass(frozen=True)
class LrResolution:
    """How ``lr = "auto"`` was resolved (recorded in the run's ``run.json`` as ``lr_rule``)."""

    lr: float  # the resolved η
    factor: float
    lambda1: float  # λ1(H(θ0))
    residual: float  # ‖Hu − λ1 u‖ / λ1, recomputed with an explicit product
    matvecs: int
    tol: float = TOL
    residual_tol: float = RESIDUAL_TOL
    rule: str = "lr = factor * 2 / lambda1(H(theta0))"

    def as_dict(self) -> dict:
        return {"setting": AUTO_LR, **asdict(self)}


def certified_sharpness(problem: LossProblem, theta: torch.Tensor, *, tol: float = TOL,
                        residual_tol: float = RESIDUAL_TOL, max_steps: int = MAX_STEPS,
                        seed: int = 0) -> tuple[float, float, int]:
    """``(λ1(H(θ)), relative residual, products)`` or a one-line ConfigError.

    The residual bounds the error: some eigenvalue of H lies within ``residual · λ1`` of the
    returned value (the Lanczos stop already bounds the relative error by about ``tol``).

    Raises when Lanczos does not converge to ``tol`` in ``max_steps`` products, when the
    recomputed residual exceeds ``residual_tol``, or when the top eigenvalue is not positive.
    """
    gen = torch.Generator().manual_seed(seed + 104729)
    start = torch.randn(problem.P, generator=gen, dtype=torch.float64).to(theta.dtype)
    result = lanczos(lambda V: problem.hvp(theta, V), start.to(theta.device), 2, tol=tol,
                     max_steps=max_steps)
    values = result.values
    lam = float(values.max())
    if not result.converged:
        raise ConfigError(
            f'train.lr = "{AUTO_LR}": the eigen-solve for λ1(θ0) did not converge to {tol:g} '
            f"in {result.matvecs} Hessian-vector products; set train.lr to a number")
    if not (math.isfinite(lam) and lam > 0):
        raise ConfigError(
            f'train.lr = "{AUTO_LR}": λ1(θ0) = {lam:.4g} is not positive, so 2/λ1 gives no step '
            "size; set train.lr to a number")
    u = result.vectors[:, int(torch.argmax(values))]
    Hu = problem.hvp(theta, u[:, None])[:, 0]
    residual = float((Hu - lam * u).norm() / (lam * u.norm()))
    if not residual <= residual_tol:
        raise ConfigError(
            f'train.lr = "{AUTO_LR}": the eigen-solve for λ1(θ0) = {lam:.6g} has residual '
            f"{residual:.2g} > {residual_tol:g}; set train.lr to a number")
    return lam, residual, result.matvecs + 1


def resolve_lr(cfg: dict, problem: LossProblem, theta: torch.Tensor) -> LrResolution | None:
    """Resolve ``train.lr = "auto"`` at ``θ0``; None when the config fixes a number."""
    if not lr_is_auto(cfg):
        return None
    factor = float(cfg["train"]["lr_factor"])
    lam, residual, matvecs = certified_sharpness(problem, theta, tol=TOL, residual_tol=RESIDUAL_TOL,
                                                 max_steps=MAX_STEPS, seed=cfg["train"]["seed"])
    return LrResolution(lr=factor * 2.0 / lam, factor=factor, lambda1=lam, residual=residual,
                        matvecs=matvecs)
