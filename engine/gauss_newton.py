"""λ1(G), λ1(H − G) and the overlap ratio (spec §2, §5).

* :func:`gram_top_eigenvalue` — the c×c route: ``λ1(G) = λ1(E KᵀK)`` equals the top eigenvalue of
  the ``n·c × n·c`` Gram matrix ``K Kᵀ / n`` (same nonzero spectrum), built from the layer
  structure (spec §3) without any P-sized object::

      K_n K_mᵀ = Σ_i (A_{i,n} A_{i,m}ᵀ) (x_{i−1,n}ᵀ x_{i−1,m} + 1)     (c×c blocks),

  with ``A_i = Hℓ^{1/2} Δ_i`` from :func:`engine.layer_metrics.weighted_preactivation_jacobians`.
  Cost ``O(n² c² Σ d_i)`` (symmetric blocks computed once) and memory ``O((n c)² + n c Σ d_i)``,
  so it is meant for moderate ``n·c`` (the snapshot uses it up to a few thousand); above that use
  :func:`ggn_top_eigenvalue`.
* :func:`ggn_top_eigenvalue` — warm-started subspace iteration on Gauss–Newton-vector products.
* :func:`residual_top_eigenvalue` — subspace iteration on ``(H − G) V = H V − G V``. The method is
  magnitude-based: it converges to the largest-``|λ|`` eigenvalue. **[spec §2]** If that one is
  negative, the result is recorded as NaN (the top *positive* eigenvalue is not what the method
  found, and is not reported), never silently dropped — callers count the NaNs.
* :func:`overlap_ratio` — ``ρ(K) = λ1(G) / E‖K‖²_op``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from engine.criteria import Criterion
from engine.eigensolver import EigResult, subspace_iteration, top_eigenpairs
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


def _run(matmat, problem, theta, V0, *, tol, max_iters, oversample) -> EigResult:
    if V0 is not None:
        return subspace_iteration(matmat, V0, k=1, tol=tol, max_iters=max_iters)
    return top_eigenpairs(
        matmat, problem.P if hasattr(problem, "P") else theta.numel(), 1,
        oversample=oversample, tol=tol, max_iters=max_iters, dtype=theta.dtype, device=theta.device,
    )


def _check_block(V0, theta, oversample):
    if V0 is None:
        return None
    if V0.ndim != 2 or V0.shape[0] != theta.numel() or V0.dtype != theta.dtype:
        return None  # stale warm start (other model or dtype): cold start instead
    return V0


OPERATORS = {
    "G": lambda problem, theta: (lambda V: problem.ggnvp(theta, V)),
    "H-G": lambda problem, theta: (lambda V: problem.hvp(theta, V) - problem.ggnvp(theta, V)),
}


def operator_top_eigenvalue(
    problem,
    theta: torch.Tensor,
    operator: str,
    *,
    V0: torch.Tensor | None = None,
    tol: float = 1e-6,
    max_iters: int = 100,
    oversample: int = 2,
) -> tuple[float, torch.Tensor]:
    """The top eigenvalue of ``operator`` (``"G"`` or ``"H-G"``) by subspace iteration.

    ``V0``: the block returned by the previous call (warm start); ``None``: seeded random block of
    ``1 + oversample`` columns. Returns ``(value or NaN, block)``; pass the block back next time.
    Magnitude-based (spec §2): if the largest-``|λ|`` Ritz value is negative the result is NaN
    (recorded and counted by the caller).
    """
    theta = theta.detach()
    matmat = OPERATORS[operator](problem, theta)
    res = _run(matmat, problem, theta, _check_block(V0, theta, oversample), tol=tol,
               max_iters=max_iters, oversample=oversample)
    return _top_or_nan(res), res.block


def ggn_top_eigenvalue(problem, theta: torch.Tensor, **options) -> tuple[float, torch.Tensor]:
    """``λ1(G)`` by subspace iteration on ``problem.ggnvp`` (spec §5, GGN route); options and
    result as :func:`operator_top_eigenvalue`. ``G`` is PSD, so the top-magnitude eigenvalue is
    the top one (a negative value would be round-off around 0 and is returned as NaN)."""
    return operator_top_eigenvalue(problem, theta, "G", **options)


def residual_top_eigenvalue(problem, theta: torch.Tensor, **options) -> tuple[float, torch.Tensor]:
    """``λ1(H − G)`` by subspace iteration on ``V ↦ problem.hvp(θ, V) − problem.ggnvp(θ, V)``;
    options and result as :func:`operator_top_eigenvalue` (NaN when the top-magnitude eigenvalue
    is negative)."""
    return operator_top_eigenvalue(problem, theta, "H-G", **options)


def _top_or_nan(res: EigResult) -> float:
    """The largest-magnitude Ritz value, or NaN if it is negative (spec §2)."""
    vals = res.values.detach().to("cpu", torch.float64)
    top = float(vals[int(torch.argmax(vals.abs()))])
    return top if top >= 0 else math.nan


def overlap_ratio(lambda_G1: float, EK2: float) -> float:
    """``ρ(K) = λ1(G) / E‖K‖²_op ∈ (0, 1]`` (spec §2); NaN if undefined (EK2 <= 0 or NaN input)."""
    lam, ek = float(lambda_G1), float(EK2)
    if not (math.isfinite(lam) and math.isfinite(ek)) or ek <= 0:
        return math.nan
    return lam / ek
