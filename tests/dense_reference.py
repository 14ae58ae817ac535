"""Brute-force dense curvature for tiny float64 MLPs, by ``torch.autograd.functional`` only.

These helpers are the independent reference for the product and metric tests: they never use
``engine.products`` (nor the layer structure), only the flat-parameter forward pass and the
criterion's differentiable per-sample loss / closed-form ``Hℓ``. Dense objects are ``P × P``:
use them only for networks with a few hundred parameters.
"""

from __future__ import annotations

import torch
from torch.autograd.functional import hessian, jacobian

from engine.model import MLPSpec, forward


def full_loss(spec: MLPSpec, criterion, X: torch.Tensor, y: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``L(θ) = mean_n ℓ(f(x_n; θ), y_n)`` as a differentiable 0-d tensor."""
    return criterion.per_sample_loss(forward(spec, theta, X), y).mean()


def dense_hessian(problem, theta: torch.Tensor) -> torch.Tensor:
    """Dense ``H = ∇²L(θ)``, shape ``(P, P)``. ``problem`` needs ``spec, criterion, X, y``."""
    fn = lambda t: full_loss(problem.spec, problem.criterion, problem.X, problem.y, t)  # noqa: E731
    H = hessian(fn, theta.detach(), vectorize=True)
    return 0.5 * (H + H.T)


def dense_gradient(problem, theta: torch.Tensor) -> tuple[float, torch.Tensor]:
    """``(L(θ), ∇L(θ))`` by plain reverse-mode autograd."""
    t = theta.detach().clone().requires_grad_(True)
    loss = full_loss(problem.spec, problem.criterion, problem.X, problem.y, t)
    (g,) = torch.autograd.grad(loss, t)
    return float(loss.detach()), g


def per_sample_jacobians(spec: MLPSpec, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """``J_n = ∂f(x_n)/∂θ`` for every sample, shape ``(n, c, P)``."""
    return jacobian(lambda t: forward(spec, t, X), theta.detach(), vectorize=True)


def dense_ggn(problem, theta: torch.Tensor) -> torch.Tensor:
    """Dense Gauss–Newton ``G = (1/n) Σ_n J_nᵀ Hℓ,n J_n``, shape ``(P, P)``."""
    J = per_sample_jacobians(problem.spec, theta, problem.X)
    z = forward(problem.spec, theta.detach(), problem.X)
    Hl = problem.criterion.hessian(z, problem.y)
    G = torch.einsum("ncp,ncd,ndq->pq", J, Hl, J) / J.shape[0]
    return 0.5 * (G + G.T)
