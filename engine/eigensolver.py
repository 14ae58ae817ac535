"""Top-k eigenpairs of a symmetric operator given only by block products (spec §5).

:func:`subspace_iteration` is warm-started block subspace (orthogonal) iteration with
Rayleigh–Ritz. The operator is a callable ``matmat(V) -> A V`` on blocks ``V`` of shape
``(P, b)``; ``b >= k`` and ``b − k`` is the oversampling (the caller chooses it: convergence of
the j-th Ritz pair goes like ``|λ_{b+1}/λ_j|`` per iteration).

One iteration::

    W = A V                          (b products; none on the first iteration if `first_product`)
    T = Vᵀ W  (symmetrized),  T = S Λ Sᵀ
    Ritz pairs: Λ, U = V S, A U = W S,  ordered by |λ| descending
    stop if max_j |λ_j − λ_j^prev| / |λ_j| < tol over the top k   (prev: last iteration, or
         `prev_values` on the first one — a warm start with nothing changed stops at once)
    V ← orth(W S)

Ordering **[choice]**: the top-k is selected by **magnitude** (the method converges to the
largest-|λ| eigenvalues, which may be negative), and the k values are then returned in
**descending algebraic order**. Negative values are returned as they are; callers record them
as NaN (spec §2). ``EigResult.block`` is the next block to warm-start from (all ``b`` columns,
including the oversampling ones): ``orth(A U)``, i.e. one free power step further than ``U``.

:func:`top_eigenpairs` is the cold start from a seeded random block; :func:`lanczos_top` is an
implicitly restarted Lanczos baseline (scipy ``eigsh``) for benchmarks and checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from engine.blas import mm

MatMat = Callable[[torch.Tensor], torch.Tensor]


class NonFiniteError(FloatingPointError):
    """An operator product was NaN or infinite: the parameters have left the finite range.

    The trainer ends such a run ``diverged`` with this message."""

# A column of a QR factor whose |R_jj| falls below this fraction of the largest is treated as
# numerically dependent and replaced by a random direction.
_RANK_TOL = 1e-10


class RitzVectors:
    """Ritz vectors kept factored as ``basis @ coeffs`` (``(P, b)`` orthonormal, ``(b, k)``).

    A solver step needs only ``Uᵀ g`` and ``U c``; both cost one pass over the basis, so the
    ``(P, k)`` product is formed only when :meth:`dense` is asked for (then cached).
    ``coeffs=None`` stands for the identity (``basis`` is already the vectors).
    """

    def __init__(self, basis: torch.Tensor, coeffs: torch.Tensor | None = None) -> None:
        self.basis = basis
        self.coeffs = coeffs
        self._dense: torch.Tensor | None = basis if coeffs is None else None

    @property
    def shape(self) -> tuple[int, int]:
        return (self.basis.shape[0], self.basis.shape[1] if self.coeffs is None else self.coeffs.shape[1])

    def dense(self) -> torch.Tensor:
        if self._dense is None:
            self._dense = mm(self.basis, self.coeffs)
        return self._dense

    def to(self, dtype: torch.dtype) -> "RitzVectors":
        """The same vectors in ``dtype`` (one pass over the basis; ``self`` if unchanged)."""
        if self.basis.dtype == dtype:
            return self
        return RitzVectors(self.basis.to(dtype), None if self.coeffs is None else self.coeffs.to(dtype))

    def select(self, index: torch.Tensor) -> "RitzVectors":
        """The vectors ``index`` (a column selection or permutation), still factored."""
        if self.coeffs is None:
            return RitzVectors(self.basis[:, index])
        return RitzVectors(self.basis, self.coeffs[:, index])

    def project(self, g: torch.Tensor) -> torch.Tensor:
        """``Uᵀ g``."""
        h = mm(self.basis.T, g)
        return h if self.coeffs is None else self.coeffs.T @ h

    def combine(self, c: torch.Tensor) -> torch.Tensor:
        """``U c``."""
        return mm(self.basis, c if self.coeffs is None else self.coeffs @ c)


@dataclass
class EigResult:
    """Ritz approximation of the top-k (by magnitude) eigenpairs of a symmetric operator."""

    values: torch.Tensor  # (k,) Ritz values: top-k by |λ|, in descending algebraic order
    ritz: RitzVectors  # the matching orthonormal Ritz vectors, factored; `vectors` is (P, k)
    iterations: int  # Rayleigh–Ritz steps performed
    matvecs: int  # operator-vector products (columns) spent in this call (not `first_product`)
    converged: bool
    block: torch.Tensor  # (P, b) orthonormal block to warm-start the next call from
    residuals: torch.Tensor | None = None  # (k,) ‖A u − λ u‖ / |λ| per pair (free to compute)
    subspace: tuple[torch.Tensor, torch.Tensor] | None = None  # refine_ritz: all b Ritz vectors, A times them

    @property
    def vectors(self) -> torch.Tensor:
        """``(P, k)`` orthonormal Ritz vectors matching ``values`` (formed on first use)."""
        return self.ritz.dense()


def orthonormalize(W: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Orthonormal basis of ``W`` ``(P, b)`` with ``b`` columns, robust to rank deficiency.

    QR; columns with a negligible ``|R_jj|`` (numerically dependent on the previous ones, or
    zero) are replaced by random directions; a second QR pass restores orthogonality to working
    precision (classical "twice is enough").
    """
    P, b = W.shape
    if b > P:
        raise ValueError(f"block of {b} columns exceeds the dimension {P}")
    fast = _cholesky_qr2(W)
    if fast is not None:
        return fast
    Q, R = torch.linalg.qr(W)
    diag = R.diagonal().abs()
    scale = float(diag.max()) if diag.numel() else 0.0
    bad = diag <= _RANK_TOL * scale if scale > 0 else torch.ones_like(diag, dtype=torch.bool)
    if bool(bad.any()):
        good = Q[:, ~bad]
        fill = torch.randn(P, int(bad.sum()), dtype=W.dtype, device="cpu", generator=generator).to(W.device)
        fill -= good @ (good.T @ fill)
        Q = torch.linalg.qr(torch.cat([good, fill], dim=1)).Q
    return torch.linalg.qr(Q).Q


def _inverse_cholesky(gram: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, float] | None:
    """``(L⁻ᵀ, κ)`` for the Gram ``gram = L Lᵀ`` of a block of ``dtype`` with column condition ``κ``.

    ``None`` when the factorization fails or the block is too ill-conditioned for CholeskyQR
    (``κ`` beyond ``1e5`` in float64, ``1e2`` in float32).
    """
    L, info = torch.linalg.cholesky_ex(0.5 * (gram + gram.T))
    if int(info) != 0:
        return None
    d = L.diagonal()
    min_ratio = 1e-5 if dtype == torch.float64 else 1e-2
    if not bool(torch.isfinite(d).all()) or float(d.min()) <= min_ratio * float(d.max()):
        return None
    eye = torch.eye(L.shape[0], dtype=L.dtype, device=L.device)
    return torch.linalg.solve_triangular(L, eye, upper=False).T, float(d.max()) / float(d.min())


def _cholesky_qr2(W: torch.Tensor, passes: int = 2) -> torch.Tensor | None:
    """Orthonormal basis by CholeskyQR2 (two passes of ``Q = W L⁻ᵀ``, ``WᵀW = L Lᵀ``).

    For tall, skinny, well-conditioned blocks this costs two Gram products ``QᵀQ`` and two
    tall products ``Q L⁻ᵀ``; ``None`` if the block is too ill-conditioned for it (the caller
    falls back to Householder QR).
    """
    Q = W
    for _ in range(passes):
        factor = _inverse_cholesky(mm(Q.T, Q), W.dtype)
        if factor is None:
            return None
        Q = mm(Q, factor[0])
    return Q


def _rayleigh_ritz(V: torch.Tensor, W: torch.Tensor):
    """Rayleigh–Ritz on ``V`` (orthonormal) with ``W = A V``, in coefficient space.

    Returns the Ritz values ordered by |λ| descending, their coefficients ``S`` (Ritz vectors
    ``V S``, images ``W S``) and the Gram matrix ``G = WᵀW``, from which the residuals and the
    next block's orthonormalization follow without touching the tall blocks again.
    """
    T = mm(V.T, W)
    T = 0.5 * (T + T.T)
    G = mm(W.T, W)
    G = 0.5 * (G + G.T)
    if not (bool(torch.isfinite(T).all()) and bool(torch.isfinite(G).all())):
        raise NonFiniteError("a Hessian-vector (operator) product is NaN or infinite")
    lam, S = torch.linalg.eigh(T)
    order = torch.argsort(lam.abs(), descending=True, stable=True)
    return lam[order], S[:, order], G


def _top_k(lam: torch.Tensor, S: torch.Tensor, k: int):
    """The k largest-|λ| Ritz values and coefficients, reordered to descending algebraic order."""
    lam, S = lam[:k], S[:, :k]
    order = torch.argsort(lam, descending=True, stable=True)
    return lam[order], S[:, order]


def _gram_residuals(lam: torch.Tensor, S: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """Relative residuals ``‖A u − λ u‖ / |λ|`` of Ritz pairs ``u = V s`` from ``G = (AV)ᵀ(AV)``.

    ``‖W s − λ V s‖² = sᵀ G s − λ²`` since ``Vᵀ W s = λ s`` and ``VᵀV = I``. The difference
    cancels down to about ``√ε · ‖A‖``, ample for a stopping test.
    """
    sq = (S * (G @ S)).sum(0) - lam * lam
    return sq.clamp_min(0).sqrt() / lam.abs().clamp_min(torch.finfo(lam.dtype).tiny)


def _next_block(W: torch.Tensor, S: torch.Tensor, G: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``orth(W S)`` using the known Gram ``G = WᵀW``: one pass over ``W`` when well conditioned.

    CholeskyQR from ``(WS)ᵀ(WS) = Sᵀ G S``: its loss of orthogonality is about ``κ(W)² ε``; a
    second CholeskyQR pass follows when that estimate exceeds ``1e-13``, and the robust
    :func:`orthonormalize` handles blocks too ill-conditioned for Cholesky.
    """
    factor = _inverse_cholesky(S.T @ G @ S, W.dtype)
    if factor is not None:
        inv_t, kappa = factor
        Q = mm(W, S @ inv_t)
        if kappa**2 * torch.finfo(W.dtype).eps > 1e-13:
            Q = _cholesky_qr2(Q, passes=1)
        if Q is not None:
            return Q
    return orthonormalize(W @ S, generator=generator)


def _relative_change(new: torch.Tensor, old: torch.Tensor | None) -> float:
    if old is None or old.shape != new.shape:
        return float("inf")
    old = old.to(device=new.device, dtype=new.dtype)
    if not bool(torch.isfinite(old).all()):
        return float("inf")
    # floor the denominator so that (near-)zero eigenvalues do not stall the criterion
    floor = torch.finfo(new.dtype).eps * float(new.abs().max())
    denom = torch.clamp(new.abs(), min=max(floor, torch.finfo(new.dtype).tiny))
    return float(((new - old).abs() / denom).max())


def subspace_iteration(
    matmat: MatMat,
    V0: torch.Tensor,
    *,
    k: int,
    tol: float = 1e-6,
    max_iters: int = 100,
    first_product: torch.Tensor | None = None,
    prev_values: torch.Tensor | None = None,
    seed: int = 0,
    residual_tol: float | None = None,
    assume_orthonormal: bool = False,
) -> EigResult:
    """Top-k eigenpairs of the symmetric operator ``matmat`` by block subspace iteration.

    ``V0`` ``(P, b)``, ``b >= k``: the starting block (e.g. the previous call's ``block``).
    ``first_product``: ``A V0`` if already computed (fused pass); the first iteration then costs
    no products (if ``V0`` is not orthonormal it is orthonormalized, ``V0 = Q R``, and
    ``A Q = A V0 R⁻¹``; an ill-conditioned ``R`` falls back to recomputing the product).
    ``prev_values``: top-k values of the previous call, compared with the first iteration's.
    ``seed``: seeds the random columns that replace numerically dependent ones.
    ``assume_orthonormal``: ``V0`` is known to be orthonormal (a previous call's ``block``), so
    ``first_product`` is used as ``A V0`` directly, without re-factoring ``V0``.
    ``residual_tol``: also stop when every top-k relative residual ``‖A u − λ u‖ / |λ|`` is
    below it. The residual costs no products, so a warm start that is already accurate stops
    after one iteration even when the operator moved (Ritz values err by about
    ``‖r‖² / gap``, quadratically in the residual).
    """
    if V0.ndim != 2:
        raise ValueError(f"V0 must be a (P, b) block, got shape {tuple(V0.shape)}")
    P, b = V0.shape
    if not 1 <= k <= b:
        raise ValueError(f"need 1 <= k <= b, got k={k}, b={b}")
    if max_iters < 1:
        raise ValueError(f"max_iters must be >= 1, got {max_iters}")
    gen = torch.Generator().manual_seed(int(seed))
    matvecs = 0

    V, W = None, None
    if first_product is not None:
        if first_product.shape != V0.shape:
            raise ValueError(f"first_product must have shape {tuple(V0.shape)}, got {tuple(first_product.shape)}")
        if assume_orthonormal:
            V, W = V0, first_product
    if first_product is not None and V is None:
        Q, R = torch.linalg.qr(V0)
        d = R.diagonal().abs()
        if float(d.min()) > 1e-8 * float(d.max()):
            V = Q
            # A Q = A V0 R⁻¹  ⇔  Rᵀ (A Q)ᵀ = (A V0)ᵀ
            W = torch.linalg.solve_triangular(R, first_product, upper=True, left=False)
    if V is None:
        V = orthonormalize(V0, generator=gen)

    prev = prev_values
    converged = False
    iterations = 0
    for it in range(max_iters):
        if W is None:
            W = matmat(V)
            matvecs += b
        lam, S, G = _rayleigh_ritz(V, W)
        iterations += 1
        top, topS = _top_k(lam, S, k)
        change = _relative_change(top, prev)
        prev = top
        resid = _gram_residuals(top, topS, G)
        basis = V
        V = _next_block(W, S, G, gen)
        if change < tol or (residual_tol is not None and float(resid.max()) < residual_tol):
            converged = True
            break
        W = None

    return EigResult(
        values=top,
        ritz=RitzVectors(basis, topS),
        iterations=iterations,
        matvecs=matvecs,
        converged=converged,
        block=V,
        residuals=resid,
    )


def refine_ritz(
    matmat: MatMat,
    V: torch.Tensor,
    W: torch.Tensor,
    *,
    k: int,
    residual_tol: float,
    max_iters: int,
    seed: int = 0,
    block_size: int | None = None,
) -> EigResult:
    """Rayleigh–Ritz on ``V`` (``(P, b)`` orthonormal, ``W = A V`` already computed), then
    refinements until the top-k (by ``|θ|``) relative residuals are at most ``residual_tol``.

    Without refinement this is one :func:`subspace_iteration` iteration on a known product: the
    residuals come from the Gram matrices, the Ritz vectors stay factored and ``block`` is
    ``orth(W S)``. Each refinement is a block Davidson step restricted to the pairs still above
    the tolerance: their residuals ``r_j = A u_j − θ_j u_j`` (orthogonal to the Ritz block) are
    orthonormalized into ``Z``, ``A Z`` costs one product per such pair, and Rayleigh–Ritz on
    ``[U, Z]`` keeps the top-b by ``|θ|``. It spans ``u_j`` and ``A u_j`` (a block Krylov step,
    not a power step), and a pair that is already converged costs nothing: on the paper net at
    width 128 it took about half the products of continued subspace iteration. At most
    ``max_iters`` refinements (``iterations`` counts them); ``converged`` tells whether the
    tolerance was met; ``subspace`` holds the final ``b`` Ritz vectors and their images, from
    which a later call can refine further (the search space keeps up to ``2 · block_size``
    columns, default ``2b``, so that pairs at the edge of the block converge instead of
    swapping with their neighbours; ``block`` has ``block_size`` columns).
    """
    b = V.shape[1] if block_size is None else block_size
    lam, S, G = _rayleigh_ritz(V, W)
    resid = _gram_residuals(lam[:k], S[:, :k], G)
    if float(resid.max()) <= residual_tol or max_iters < 1:
        top, topS = _top_k(lam, S, k)
        order = torch.argsort(lam[:k], descending=True, stable=True)
        gen = torch.Generator().manual_seed(int(seed))
        return EigResult(values=top, ritz=RitzVectors(V, topS), iterations=0, matvecs=0,
                         converged=float(resid.max()) <= residual_tol,
                         block=_next_block(W, S[:, :b], G, gen),
                         residuals=resid[order], subspace=(V, W))
    X, HX = mm(V, S), mm(W, S)
    iterations = matvecs = 0
    while True:
        R = HX - X * lam
        resid = R.norm(dim=0) / lam.abs().clamp_min(torch.finfo(lam.dtype).tiny)
        bad = torch.nonzero(resid[:k] > residual_tol).squeeze(1)
        if bad.numel() == 0 or iterations >= max_iters:
            break
        Z = R[:, bad]
        for _ in range(2):
            Z = Z - mm(X, mm(X.T, Z))
        Q, Rq = torch.linalg.qr(Z)
        d = Rq.diagonal().abs()
        keep = d > _RANK_TOL * float(d.max())
        Q = Q[:, keep]
        HQ = matmat(Q)
        matvecs += Q.shape[1]
        iterations += 1
        m = X.shape[1]
        lam, S, _ = _rayleigh_ritz(torch.cat([X, Q], 1), torch.cat([HX, HQ], 1))
        keep = min(S.shape[1], 2 * b)  # a thicker search space than b: the pairs at the edge of
        S, lam = S[:, :keep], lam[:keep]  # the block (λ_b ≈ λ_{b+1}) converge instead of swapping
        X = mm(X, S[:m]) + mm(Q, S[m:])
        HX = mm(HX, S[:m]) + mm(HQ, S[m:])
    order = torch.argsort(lam[:k], descending=True, stable=True)
    return EigResult(values=lam[:k][order], ritz=RitzVectors(X[:, :k][:, order]), iterations=iterations,
                     matvecs=matvecs, converged=bad.numel() == 0, block=orthonormalize(HX[:, :b]),
                     residuals=resid[:k][order], subspace=(X, HX))


def top_eigenpairs(
    matmat: MatMat,
    P: int,
    k: int,
    *,
    oversample: int = 2,
    tol: float = 1e-6,
    max_iters: int = 100,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> EigResult:
    """Cold start: subspace iteration from a seeded random block of ``k + oversample`` columns."""
    b = min(k + max(int(oversample), 0), P)
    gen = torch.Generator().manual_seed(int(seed))
    V0 = torch.randn(P, b, dtype=torch.float64, generator=gen).to(dtype=dtype, device=device)
    return subspace_iteration(matmat, V0, k=k, tol=tol, max_iters=max_iters, seed=seed + 1)


def _orthogonalize(basis: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``w`` minus its projection on the orthonormal ``basis``, twice (twice is enough)."""
    for _ in range(2):
        w = w - mm(basis, mm(basis.T, w))
    return w


def _tridiagonal_ritz(alpha: torch.Tensor, beta: torch.Tensor, k: int, which: str = "LM"):
    """Selected Ritz pairs of the Lanczos tridiagonal ``T_m`` and their error bounds.

    ``alpha`` (m,) is its diagonal, ``beta[:m-1]`` its off-diagonal and ``beta[m-1]`` the next
    coefficient. ``which="LM"``: the top-k by ``|θ|``; ``"BE"`` (both ends, k = 2): the largest
    and the smallest algebraic Ritz value. Returns the values, their eigenvectors ``S`` in
    ``T_m``'s basis, the bound ``min(r²/(|θ|·gap), r/|θ|)`` on each relative eigenvalue error
    and the relative residual ``r/|θ|``, where ``r = β_m |s_{m,i}|``.
    """
    m = alpha.shape[0]
    tiny = torch.finfo(torch.float64).tiny
    T = torch.diag(alpha) + torch.diag(beta[: m - 1], 1) + torch.diag(beta[: m - 1], -1)
    theta, Y = torch.linalg.eigh(T)
    if which == "BE":
        order = torch.tensor([m - 1, 0])  # eigh is ascending: largest, then smallest
    else:
        order = torch.argsort(theta.abs(), descending=True, stable=True)[:k]
    k = order.shape[0]
    resid = beta[m - 1] * Y[m - 1, order].abs()
    others = theta.unsqueeze(0) - theta[order].unsqueeze(1)
    others[torch.arange(k), order] = float("inf")
    gap = others.abs().min(dim=1).values if m > 1 else torch.full((k,), float("inf"), dtype=torch.float64)
    lam_abs = theta[order].abs().clamp_min(tiny)
    rel_resid = resid / lam_abs
    bound = torch.minimum(resid**2 / (lam_abs * gap.clamp_min(tiny)), rel_resid)
    return theta[order], Y[:, order], bound, rel_resid


def lanczos(
    matmat: MatMat,
    start: torch.Tensor,
    k: int,
    *,
    tol: float = 1e-6,
    max_steps: int = 200,
    seed: int = 0,
    stop: Callable[[torch.Tensor], bool] | None = None,
    which: str = "LM",
    residual_tol: float | None = None,
) -> EigResult:
    """Top-k (by magnitude) eigenpairs by Lanczos with full reorthogonalization.

    ``start``: the starting vector ``(P,)``, or a block ``(P, b)`` whose column sum starts the
    recurrence — a warm start from the previous Ritz vectors puts the whole top-k invariant
    subspace into the first Krylov vector, so about k steps span it again and the rest polish.
    One product per step (``matmat`` on a ``(P, 1)`` block). After step ``m ≥ k`` the Ritz pairs
    of the tridiagonal ``T_m`` are checked: it stops when every top-k pair's error bound
    ``r_i² / (|θ_i| · gap_i)`` is below ``tol`` (``r_i = β_m |s_{m,i}|`` is the residual norm,
    ``gap_i`` the distance to the nearest other Ritz value), i.e. a relative eigenvalue error
    of about ``tol`` (Ritz values of a symmetric operator err by at most ``r²/gap``).
    ``stop``: also stop when it returns True for the current top-k Ritz values (descending
    order), e.g. an accuracy oracle in a benchmark. ``EigResult.block`` holds the k Ritz
    vectors, the warm start of the next call.

    ``which="BE"`` (with ``k = 2``): the largest and the smallest algebraic eigenvalue instead
    (both ends of an indefinite spectrum; Lanczos converges at both at once).
    ``residual_tol``: stop instead when every selected pair's relative residual
    ``‖A u − θ u‖/|θ| = β_m |s_m|/|θ|`` is at most this (a certificate of each pair rather than
    a bound on the eigenvalue error); ``converged`` tells whether that happened within
    ``max_steps`` (or the Krylov space became invariant, when the pairs are exact).
    ``EigResult.residuals`` holds the relative residuals of the returned pairs.
    """
    if which not in ("LM", "BE"):
        raise ValueError(f"which must be 'LM' or 'BE', got {which!r}")
    if which == "BE":
        k = 2
    v = start.reshape(start.shape[0], -1).sum(1) if start.ndim == 2 else start.clone()
    P = v.shape[0]
    if not 1 <= k <= P:
        raise ValueError(f"need 1 <= k <= P, got k={k}, P={P}")
    steps = min(int(max_steps), P)
    if steps < k:
        raise ValueError(f"max_steps={max_steps} is fewer than k={k}")
    gen = torch.Generator().manual_seed(int(seed))
    # Lanczos vectors stored column-major, capacity doubled as needed (not P × max_steps upfront)
    Q = torch.empty(min(steps + 1, 2 * k + 2), P, dtype=v.dtype, device=v.device).T
    norm = float(v.norm())
    if not norm > 0:
        v = torch.randn(P, dtype=torch.float64, generator=gen).to(dtype=Q.dtype, device=Q.device)
        norm = float(v.norm())
    Q[:, 0] = v / norm
    alpha = torch.zeros(steps, dtype=torch.float64)
    beta = torch.zeros(steps, dtype=torch.float64)
    converged, m = False, 0  # steps >= k: the Ritz pairs below are formed at least once
    for j in range(steps):
        w = matmat(Q[:, j : j + 1])[:, 0]
        basis = Q[:, : j + 1]
        alpha[j] = float(mm(basis[:, j], w))
        w = _orthogonalize(basis, w)  # full reorthogonalization
        beta[j] = float(w.norm())
        m = j + 1
        if m >= k:  # ("BE": both ends need two Ritz pairs, never one read twice)
            top, S, bound, rel_resid = _tridiagonal_ritz(alpha[:m], beta[:m], k, which)
            if not bool(torch.isfinite(top).all()):
                raise NonFiniteError(f"a non-finite operator product in Lanczos step {m}")
            done = (float(rel_resid.max()) <= residual_tol if residual_tol is not None
                    else float(bound.max()) < tol)
            if done or (m == steps and m == P):  # the whole space: the pairs are exact
                converged = True
                break
            if stop is not None and stop(torch.sort(top, descending=True).values):
                break
        if j + 1 == steps:
            break
        if j + 1 == Q.shape[1]:
            grown = torch.empty(min(steps + 1, 2 * Q.shape[1]), P, dtype=Q.dtype, device=Q.device).T
            grown[:, : j + 1] = Q[:, : j + 1]
            Q = grown
            basis = Q[:, : j + 1]
        if beta[j] <= 1e-12 * max(float(alpha[: j + 1].abs().max()), 1e-300):
            # invariant subspace found: continue from a fresh direction orthogonal to it
            beta[j] = 0.0
            w = torch.randn(P, dtype=torch.float64, generator=gen).to(dtype=Q.dtype, device=Q.device)
            w = _orthogonalize(basis, w)
            w = w / w.norm()
            Q[:, j + 1] = w
        else:
            Q[:, j + 1] = w / beta[j]
    order = torch.arange(top.shape[0]) if which == "BE" else torch.argsort(top, descending=True, stable=True)
    values = top[order].to(Q.dtype)
    coeffs = S[:, order].to(Q.dtype)
    ritz = RitzVectors(Q[:, :m], coeffs)
    return EigResult(values=values, ritz=ritz, iterations=m, matvecs=m, converged=converged,
                     block=ritz.dense(), residuals=rel_resid[order].to(Q.dtype))


def lanczos_top(
    matmat: MatMat,
    P: int,
    k: int,
    *,
    tol: float = 0.0,
    max_iters: int | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    ncv: int | None = None,
) -> EigResult:
    """Top-k by magnitude via scipy's implicitly restarted Lanczos (``eigsh``, ``which="LM"``).

    A cold baseline: products one vector at a time through a ``LinearOperator``. ``tol`` is
    ARPACK's relative accuracy of the Ritz values (0: machine precision). ``iterations`` reports
    the number of operator applications (calls), ``matvecs`` the vectors.
    """
    from scipy.sparse.linalg import LinearOperator, eigsh

    counter = {"calls": 0, "vecs": 0}

    def _apply(x: np.ndarray) -> np.ndarray:
        X = torch.as_tensor(np.asarray(x).reshape(P, -1), dtype=dtype, device=device)
        counter["calls"] += 1
        counter["vecs"] += X.shape[1]
        out = matmat(X).detach().to("cpu", torch.float64).numpy()
        return out.reshape(x.shape) if np.ndim(x) == 1 else out

    np_dtype = np.float64
    op = LinearOperator((P, P), matvec=_apply, matmat=_apply, dtype=np_dtype)
    v0 = np.random.default_rng(seed).standard_normal(P)
    lam, U = eigsh(op, k=k, which="LM", tol=tol, maxiter=max_iters, v0=v0, ncv=ncv)
    order = np.argsort(-lam, kind="stable")
    lam, U = lam[order], U[:, order]
    values = torch.as_tensor(lam.copy(), dtype=dtype, device=device)
    vectors = torch.as_tensor(U.copy(), dtype=dtype, device=device)
    return EigResult(
        values=values,
        ritz=RitzVectors(vectors),
        iterations=counter["calls"],
        matvecs=counter["vecs"],
        converged=True,
        block=vectors,
    )
