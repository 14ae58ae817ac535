"""λ1(G), λ1(H − G) and the overlap ratio (spec §2, §5).

* :func:`gram_top_eigenvalue` — the c×c route: ``λ1(G) = λ1(E KᵀK)`` equals the top eigenvalue of
  the ``n·c × n·c`` Gram matrix ``K Kᵀ / n`` (same nonzero spectrum), built from the layer
  structure (spec §3) without any P-sized object::

      K_n K_mᵀ = Σ_i (A_{i,n} A_{i,m}ᵀ) (x_{i−1,n}ᵀ x_{i−1,m} + 1)     (c×c blocks),

  with ``A_i = Hℓ^{1/2} Δ_i`` from :func:`engine.layer_metrics.weighted_preactivation_jacobians`.
  Cost ``O(n² c² Σ d_i)`` (symmetric blocks computed once) and memory ``O((n c)² + n c Σ d_i)``,
  so it is meant for moderate ``n·c`` (the snapshot uses it up to a few thousand); above that use
  :func:`ggn_top_eigenvalue`.
* :func:`ggn_top_eigenvalue` — warm-started Lanczos on Gauss–Newton-vector products, stopped by
  the relative residual of its Ritz pair (a :class:`Certified` value).
* :func:`residual_eigenvalues` — warm-started Lanczos on ``(H − G) v`` (one pass,
  ``LossProblem.residual_hvp``), converging at both ends of the indefinite spectrum: the
  largest algebraic eigenvalue and the largest in magnitude (with its sign), each certified.
* :func:`overlap_ratio` — ``ρ(K) = λ1(G) / E‖K‖²_op``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from engine.criteria import Criterion
from engine.eigensolver import EigResult, lanczos
from engine.errors import ConfigError
from engine.layer_metrics import weighted_preactivation_jacobians
from engine.model import MLPSpec

# n·c up to which the Gram matrix is diagonalized densely (eigvalsh); above, scipy's eigsh (ARPACK
# Lanczos on the stored matrix) finds the top eigenvalue only.
DENSE_EIG_MAX = 1500
# refuse to build a Gram matrix larger than this (n·c); 16384² float64 = 2 GiB
GRAM_DIM_LIMIT = 16384
# samples per block of the Gram matrix (temporaries of (GRAM_BLOCK·c)² entries)
GRAM_BLOCK = 256


def gram_matrix(
    spec: MLPSpec,
    criterion: Criterion,
    theta: torch.Tensor,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    chunk_size: int | None = None,
    max_dim: int = GRAM_DIM_LIMIT,
) -> torch.Tensor:
    """The ``n·c × n·c`` Gram matrix ``K Kᵀ / n`` (rows ordered sample-major: ``n·c + a``).

    ``A_i`` are computed chunk by chunk (``chunk_size`` samples) and kept for all samples; the
    Gram is filled block by block over pairs of sample blocks ``(p, q)``, ``q >= p`` (at most
    ``GRAM_BLOCK`` samples each), and mirrored.
    """
    theta = theta.detach()
    n, c, L = int(X.shape[0]), spec.num_outputs, spec.depth
    if n * c > max_dim:
        raise ConfigError(
            f"the Gram matrix would be {n * c}×{n * c} (n·c > {max_dim}); use ggn_top_eigenvalue instead"
        )
    chunk = n if chunk_size is None else max(1, min(int(chunk_size), n))
    A_all: list[list[torch.Tensor]] = [[] for _ in range(L)]
    Xt_all: list[list[torch.Tensor]] = [[] for _ in range(L)]
    for start in range(0, n, chunk):
        A, inter = weighted_preactivation_jacobians(spec, criterion, theta, X[start : start + chunk], y[start : start + chunk])
        for i in range(L):
            A_all[i].append(A[i])
            Xt_all[i].append(inter.xs[i])
    A_cat = [torch.cat(a, dim=0) for a in A_all]  # (n, c, d_i)
    X_cat = [torch.cat(x, dim=0) for x in Xt_all]  # (n, d_{i-1})
    Gm = torch.empty(n * c, n * c, dtype=theta.dtype, device=theta.device)
    blk_n = min(chunk, GRAM_BLOCK)  # samples per Gram block: bounds the temporaries
    bounds = [(s, min(s + blk_n, n)) for s in range(0, n, blk_n)]
    for p, (s0, e0) in enumerate(bounds):
        for s1, e1 in bounds[p:]:
            blk = None
            for i in range(L):
                Ap = A_cat[i][s0:e0].reshape(-1, A_cat[i].shape[-1])  # ((e0-s0)·c, d_i)
                Aq = A_cat[i][s1:e1].reshape(-1, A_cat[i].shape[-1])
                AA = (Ap @ Aq.T).view(e0 - s0, c, e1 - s1, c)
                xx = X_cat[i][s0:e0] @ X_cat[i][s1:e1].T + 1.0  # (x_{i−1,n}ᵀ x_{i−1,m} + 1)
                term = AA * xx[:, None, :, None]
                blk = term if blk is None else blk + term
            blk = blk.reshape((e0 - s0) * c, (e1 - s1) * c) / n
            Gm[s0 * c : e0 * c, s1 * c : e1 * c] = blk
            if s1 != s0:
                Gm[s1 * c : e1 * c, s0 * c : e0 * c] = blk.T
    return 0.5 * (Gm + Gm.T)


def gram_top_eigenvalue(
    spec: MLPSpec,
    criterion: Criterion,
    theta: torch.Tensor,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    chunk_size: int | None = None,
    dense_max_dim: int = DENSE_EIG_MAX,
    max_dim: int = GRAM_DIM_LIMIT,
) -> float:
    """``λ1(G)`` as the top eigenvalue of the Gram matrix ``K Kᵀ / n`` (spec §5, c×c route).

    Dense ``eigvalsh`` for ``n·c <= dense_max_dim``, else ``scipy.sparse.linalg.eigsh`` (top
    algebraic eigenvalue, machine-precision tolerance, fixed start vector) on the dense Gram.
    Raises :class:`ConfigError` if ``n·c > max_dim``.
    """
    Gm = gram_matrix(spec, criterion, theta, X, y, chunk_size=chunk_size, max_dim=max_dim)
    N = Gm.shape[0]
    if N <= dense_max_dim:
        return float(torch.linalg.eigvalsh(Gm)[-1])
    from scipy.sparse.linalg import eigsh

    M = Gm.detach().to("cpu", torch.float64).numpy()
    v0 = np.random.default_rng(0).standard_normal(N)
    lam = eigsh(M, k=1, which="LA", tol=0.0, v0=v0, return_eigenvectors=False)
    return float(lam[0])


@dataclass
class Certified:
    """An eigenvalue with its certificate: the relative residual ``‖A u − θ u‖/|θ|`` of its Ritz
    pair (0 where the route is exact) and whether that met the tolerance within the cap."""

    value: float
    residual: float
    converged: bool

    @classmethod
    def exact(cls, value: float) -> "Certified":
        return cls(float(value), 0.0, True)


OPERATORS = {
    "G": lambda problem, theta: (lambda V: problem.ggnvp(theta, V)),
    "H-G": lambda problem, theta: (lambda V: problem.residual_hvp(theta, V)),
}


def _start(start: torch.Tensor | None, theta: torch.Tensor, seed: int) -> torch.Tensor:
    """A warm start (a previous block, if it fits) or a seeded random vector."""
    if start is not None and start.ndim == 2 and start.shape[0] == theta.numel() and start.dtype == theta.dtype:
        v = start.sum(1)
        if bool(torch.isfinite(v).all()) and float(v.norm()) > 0:
            return v
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(theta.numel(), dtype=torch.float64, generator=gen).to(dtype=theta.dtype, device=theta.device)


def _certified(res: EigResult, i: int, tol: float) -> Certified:
    resid = float(res.residuals[i])
    return Certified(float(res.values[i]), resid, bool(resid <= tol))


def ggn_top_eigenvalue(problem, theta: torch.Tensor, *, start: torch.Tensor | None = None, tol: float = 1e-3,
                       max_steps: int = 100, seed: int = 0) -> tuple[Certified, torch.Tensor]:
    """``λ1(G)`` by Lanczos on ``problem.ggnvp`` (spec §5, GGN route), certified: it stops when
    the relative residual of the top Ritz pair is at most ``tol``, or after ``max_steps``
    products (then ``converged`` is False). ``start``: the block returned by the previous call
    (warm start); ``None``: a seeded random vector. Returns the value and the block to pass back.
    ``G`` is PSD, so the top-magnitude eigenvalue is the top one."""
    theta = theta.detach()
    res = lanczos(OPERATORS["G"](problem, theta), _start(start, theta, seed), 1, max_steps=max_steps,
                  residual_tol=tol, seed=seed)
    return _certified(res, 0, tol), res.block


def residual_eigenvalues(problem, theta: torch.Tensor, *, start: torch.Tensor | None = None, tol: float = 1e-3,
                         max_steps: int = 100, seed: int = 1) -> tuple[Certified, Certified, torch.Tensor]:
    """The two top eigenvalues of the indefinite ``H − G`` (spec §2), certified as in
    :func:`ggn_top_eigenvalue`: the largest **algebraic** one ``λ_max(H − G)`` and the one of
    largest **magnitude**, with its sign (``λ_max`` or ``λ_min``, whichever has the larger
    ``|λ|``). Lanczos on ``problem.residual_hvp`` converges at both ends of the spectrum at once;
    it stops when both extreme pairs have a relative residual ``≤ tol``. Returns
    ``(algebraic, magnitude, block)``."""
    theta = theta.detach()
    res = lanczos(OPERATORS["H-G"](problem, theta), _start(start, theta, seed), 2, max_steps=max_steps,
                  residual_tol=tol, seed=seed, which="BE")
    top, bottom = _certified(res, 0, tol), _certified(res, 1, tol)
    return top, (top if abs(top.value) >= abs(bottom.value) else bottom), res.block


def overlap_ratio(lambda_G1: float, EK2: float) -> float:
    """``ρ(K) = λ1(G) / E‖K‖²_op ∈ (0, 1]`` (spec §2); NaN if undefined (EK2 <= 0 or NaN input)."""
    lam, ek = float(lambda_G1), float(EK2)
    if not (math.isfinite(lam) and math.isfinite(ek)) or ek <= 0:
        return math.nan
    return lam / ek
