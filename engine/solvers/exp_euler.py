"""The exponential Euler solver of Lowell & Kastner §7.2, as specified in spec §6.

Each step takes the top ``k+1`` eigenpairs ``(λ_j, v_j)`` of H (by magnitude, warm-started),
splits the gradient ``g = Σ_{j≤k} g_j v_j + w``, chooses ``τ = min(η, 1/|λ_{k+1}|)`` (η scaled by
``warmup_factor`` for the first ``warmup_iters`` steps) and updates

    θ ← θ − Σ_{j≤k} g_j φ_j v_j − τ w,    φ_j = min((1 − e^{−λ_j τ}) / λ_j, τ).

This is the exact gradient flow of the local quadratic model along the top-k eigenvectors
plus an Euler step on the rest, so it stays stable while λ1(H) ≫ 2/τ. The rule matches the
reference implementation (``stable-solvers``' ``ExponentialEulerSolver``).
"""

from __future__ import annotations

import torch

from engine.eigensolver import RitzVectors
from engine.products import LossProblem
from engine.solvers.base import EigTracker, Solver, StepInfo, by_magnitude


def flow_factors(lam: torch.Tensor, tau: float) -> torch.Tensor:
    """``φ(λ) = min((1 − e^{−λτ})/λ, τ)``, computed stably (``τ`` itself where ``|λ|τ`` is tiny)."""
    x = lam * tau
    tiny = x.abs() < 1e-12
    safe = torch.where(tiny, torch.ones_like(lam), lam)
    phi = torch.where(tiny, torch.full_like(lam, tau), -torch.expm1(-x) / safe)
    return torch.clamp(phi, max=tau)


def exp_euler_update(theta: torch.Tensor, grad: torch.Tensor, values: torch.Tensor,
                     vectors: torch.Tensor | RitzVectors, max_step: float) -> tuple[torch.Tensor, float]:
    """One exponential Euler update from ``k+1`` eigenpairs sorted by decreasing |λ|.

    ``vectors``: ``(P, k+1)`` orthonormal, or factored :class:`RitzVectors` (then the update
    costs one pass over the basis for ``Uᵀg`` and one for ``U c``, never forming ``U``).
    Returns the new parameters and τ.

    ``θ − τ(g − U Uᵀg) − U(φ ∘ Uᵀg) = θ − τ g − U((φ − τ) ∘ Uᵀg)`` over the k stiff vectors.
    """
    lam_last = float(values[-1].abs())
    tau = max_step if lam_last == 0.0 else min(max_step, 1.0 / lam_last)
    if not isinstance(vectors, RitzVectors):
        vectors = RitzVectors(vectors)
    k = values.shape[0] - 1
    stiff = vectors.select(torch.arange(k, device=values.device))
    proj = stiff.project(grad)
    correction = stiff.combine((flow_factors(values[:-1], tau) - tau) * proj)
    return theta - tau * grad - correction, tau


class ExponentialEuler(Solver):
    name = "ee"

    def __init__(self, problem: LossProblem, tracker: EigTracker, lr: float, *,
                 warmup_iters: int = 0, warmup_factor: float = 1.0) -> None:
        super().__init__(problem, tracker, lr)
        if tracker.num < 2:
            raise ValueError("exponential Euler needs at least k+1 = 2 eigenpairs")
        self.warmup_iters = warmup_iters
        self.warmup_factor = warmup_factor

    def max_step(self) -> float:
        scale = self.warmup_factor if self.steps_taken < self.warmup_iters else 1.0
        return scale * self.lr

    @classmethod
    def from_config(cls, cfg: dict, problem: LossProblem, tracker: EigTracker) -> "ExponentialEuler":
        return cls(problem, tracker, cfg["train"]["lr"], warmup_iters=cfg["ee"]["warmup_iters"],
                   warmup_factor=cfg["ee"]["warmup_factor"])

    def step(self, theta: torch.Tensor) -> tuple[torch.Tensor, StepInfo]:
        loss, grad, HV = self.grad_and_block_product(theta)
        accuracy = self.problem.last_accuracy
        result = self.tracker.update(theta, first_product=HV)
        # (eig.dtype = float32: the pairs come in float32; the update is done in θ's precision)
        values, vectors = by_magnitude(result.values.to(theta.dtype), result.ritz.to(theta.dtype))
        new_theta, tau = exp_euler_update(theta, grad, values, vectors, self.max_step())
        self.steps_taken += 1
        info = StepInfo(loss=float(loss), grad_norm=float(grad.norm()), step_size=tau,
                        eigenvalues=values, eig_iterations=result.iterations, accuracy=accuracy)
        return new_theta, info
