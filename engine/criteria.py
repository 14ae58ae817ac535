"""Training criteria with closed-form criterion Hessians (spec §1).

- Cross-entropy: ``ℓ = −log softmax(z)_y``, ``Hℓ = diag(p) − p pᵀ`` with ``p = softmax(z)``.
- MSE against one-hot targets: ``ℓ = ½‖z − y‖²`` (Cohen et al.'s convention), ``Hℓ = I``.

Labels are int64 class indices for both. ``Hℓ`` is never obtained by autograd.
"""

from __future__ import annotations

import torch

from engine.errors import ConfigError


class Criterion:
    """Interface: per-sample loss, criterion Hessian and its square root."""

    name: str = ""
    default_target_loss: float = 0.0

    def per_sample_loss(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def hessian(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def hessian_sqrt(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Symmetric PSD square root of ``Hℓ`` per sample, by a c×c eigen-decomposition."""
        evals, evecs = torch.linalg.eigh(self.hessian(z, y))
        root = torch.sqrt(torch.clamp(evals, min=0.0))
        return (evecs * root.unsqueeze(-2)) @ evecs.transpose(-1, -2)

    def hessian_top_eigenvalue(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``λ1(Hℓ)`` per sample, shape ``(n,)``."""
        return torch.linalg.eigvalsh(self.hessian(z, y))[..., -1]

    def correct(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return z.argmax(dim=-1) == y


class CrossEntropy(Criterion):
    name = "ce"
    default_target_loss = 0.01

    def per_sample_loss(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(z, y, reduction="none")

    def hessian(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(z, dim=-1)
        return torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)


class MeanSquaredError(Criterion):
    name = "mse"
    default_target_loss = 0.02

    def per_sample_loss(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        target = torch.nn.functional.one_hot(y, z.shape[-1]).to(z.dtype)
        return 0.5 * ((z - target) ** 2).sum(dim=-1)

    def hessian(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        eye = torch.eye(z.shape[-1], dtype=z.dtype, device=z.device)
        return eye.expand(*z.shape[:-1], -1, -1).clone()

    def hessian_sqrt(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.hessian(z, y)

    def hessian_top_eigenvalue(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.ones(z.shape[:-1], dtype=z.dtype, device=z.device)


CRITERIA = {"ce": CrossEntropy, "mse": MeanSquaredError}


def get_criterion(name: str) -> Criterion:
    """The criterion called ``name`` (``ce`` or ``mse``)."""
    try:
        return CRITERIA[name]()
    except KeyError:
        raise ConfigError(f"unknown criterion {name!r}; choose one of {', '.join(CRITERIA)}") from None
