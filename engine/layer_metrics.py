"""Per-layer Jacobian-alignment metrics from the layer structure (spec §2–§4).

Nothing here forms a P-sized Jacobian. Per sample ``n`` (spec §3):

* the criterion-weighted pre-activation Jacobians ``A_i = Hℓ^{1/2} Δ_i`` (c×d_i), by a backward
  pass of the ``c`` rows of ``A_L = Hℓ^{1/2}`` through the layers::

      A_L = Hℓ^{1/2},      A_i = A_{i+1} W_{i+1} diag(φ'(z_i)) = A_{i+1} J_i

  (``Δ_L = I_c``, ``Δ_i = Δ_{i+1} J_i``). The identity ``A_{i+1} J_i = A_i`` is exact by this very
  recursion, so the numerator of the alignment ratio, ``E‖A_{i+1} J_i‖²_op``, is ``a_i`` and needs
  no new matrix (the tests check it against an explicit product);
* ``‖x_{i−1}‖²`` from the forward pass; the block of ``J_n`` for layer i is ``[Δ_i ⊗ x_{i−1}ᵀ, Δ_i]``,
  hence ``K_i K_iᵀ = A_i A_iᵀ (‖x_{i−1}‖² + 1)`` and ``K Kᵀ = Σ_i K_i K_iᵀ`` (c×c each);
* ``‖A_i‖²_op = λ1(A_i A_iᵀ)`` and ``‖K‖²_op = λ1(K Kᵀ)`` by batched c×c ``eigvalsh``;
  ``‖A_L‖²_op = λ1(Hℓ)`` from the criterion's closed form;
* ``‖J_i‖²_op`` with ``J_i = W_{i+1} diag(φ'(z_i))`` (d_{i+1}×d_i), by one of (see
  :class:`LayerMetricsComputer`):

  - ``"exact"``: batched ``eigvalsh`` of the smaller Gram, ``W D² Wᵀ`` (d_{i+1}×d_{i+1}) or
    ``D WᵀW D`` (d_i×d_i) — the default when ``min(d_i, d_{i+1}) <= exact_max_dim`` (e.g. the
    last Jacobian ``W_L D_{L−1}`` of a classifier, c×d);
  - ``"lanczos"`` (default for wide layers): batched Lanczos with full reorthogonalization, all
    samples at once, on ``JᵀJ = D (WᵀW) D`` with the precomputed Gram ``WᵀW`` (or on
    ``J Jᵀ = W D² Wᵀ`` in factored form when ``d_{i+1} < d_i / 2``, whichever product is cheaper);
  - ``"power"``: batched power iteration on the same operator.

  Both iterative methods run per sample until the relative change of the top Ritz value falls
  below ``power_tol``, are warm-started from the previous call's per-sample vectors (kept in the
  computer, keyed by layer, ``n`` and the vector dimension), and report their iteration counts.
  **[choice, measured]** Lanczos is the default: on the paper net (512-wide ELU hidden layers) the
  top eigenvalue of ``D WᵀW D`` has relative gaps of ~1e-2, and plain power iteration needed more
  than 3000 products per sample to reach 1e-10 (still 2e-5 off after 3000); cold-started Lanczos
  needs ~40 on average (at most 52–60 per layer), warm-started 2–12.

Then (spec §4; ``E`` = mean over the samples; layers 1-based in the formulas, 0-based arrays)::

    a_i = E‖A_i‖²_op          a_L = E λ1(Hℓ)          s_i = E‖J_i‖²_op
    r_i = E‖A_{i+1} J_i‖²_op / (a_{i+1} s_i) = a_i / (a_{i+1} s_i)
    P^L = 1,  P^i = r_i P^{i+1}      m_i = E[‖x_{i−1}‖² + 1]
    κ_i = E[‖A_i‖²_op (‖x_{i−1}‖² + 1)] / (a_i m_i)
    E‖K_i‖²_op = a_L (Π_{j=i}^{L−1} s_j) P^i m_i κ_i        (exact; :meth:`LayerMetrics.five_factor_product`)

Everything is computed in chunks of ``chunk_size`` samples with sums accumulated (in float64),
so memory is bounded by the chunk (plus the ``n × d_i`` warm-start vectors of the iterative
layers, and a ``norm_batch × krylov_dim × d_i`` Lanczos basis).

Definitions, costs and accuracy of the recorded quantities: ``docs/metrics.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from engine.criteria import Criterion
from engine.errors import ConfigError
from engine.model import Intermediates, MLPSpec, forward_intermediates, unflatten

NORM_METHODS = ("auto", "exact", "lanczos", "power")


# --------------------------------------------------------------------------------------------
# Layer structure of one chunk (spec §3)
# --------------------------------------------------------------------------------------------


def weighted_preactivation_jacobians(
    spec: MLPSpec, criterion: Criterion, theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor
) -> tuple[list[torch.Tensor], Intermediates]:
    """``A_i = Hℓ^{1/2} Δ_i`` for i = 1..L (list of ``(n, c, d_i)``) and the forward intermediates.

    One forward pass and a backward pass of the ``c`` rows of ``Hℓ^{1/2}`` (spec §3):
    ``A_L = Hℓ^{1/2}``, ``A_i = (A_{i+1} W_{i+1}) ⊙ φ'(z_i)``.
    """
    theta = theta.detach()
    X = X.to(dtype=theta.dtype, device=theta.device)
    inter = forward_intermediates(spec, theta, X)
    layers = unflatten(spec, theta)
    L = spec.depth
    A: list[torch.Tensor] = [None] * L  # type: ignore[list-item]
    A[L - 1] = criterion.hessian_sqrt(inter.output, y)
    for i in range(L - 2, -1, -1):  # 0-based layer i ↔ A_{i+1} in the 1-based text
        W_next = layers[i + 1][0]  # (d_{i+2}, d_{i+1}) 1-based: W_{i+1} of the formulas
        A[i] = torch.matmul(A[i + 1], W_next) * inter.dphi[i].unsqueeze(-2)
    return A, inter


def _top_eigvalsh(M: torch.Tensor) -> torch.Tensor:
    """Largest eigenvalue of a batch of symmetric PSD matrices, clamped at 0 (round-off)."""
    if M.shape[-1] == 1:
        return torch.clamp(M[..., 0, 0], min=0.0)
    return torch.clamp(torch.linalg.eigvalsh(M)[..., -1], min=0.0)


def _gram(A: torch.Tensor) -> torch.Tensor:
    """``A Aᵀ`` for a batch ``(n, c, d)`` → ``(n, c, c)``, symmetrized."""
    M = A @ A.transpose(-1, -2)
    return 0.5 * (M + M.transpose(-1, -2))


# --------------------------------------------------------------------------------------------
# Batched top eigenvalue of per-sample operators (for ‖J_i‖²_op)
# --------------------------------------------------------------------------------------------


@dataclass
class BatchedEig:
    """Per-sample top eigenvalue of a batch of symmetric PSD operators."""

    values: torch.Tensor  # (B,)
    vectors: torch.Tensor | None  # (B, d) unit top Ritz vectors (None for the exact method)
    iterations: torch.Tensor  # (B,) int64, operator products per sample (0: exact)
    converged: torch.Tensor  # (B,) bool
    residuals: torch.Tensor | None = None  # (B,) relative residual ‖Mv − θv‖/θ of each pair (0: exact)


def _should_check(k: int) -> bool:
    """Lanczos convergence checks: after each of the first 4 steps, then every 4th step.

    (A check costs a batched ``eigvalsh`` of the k×k tridiagonal matrices — measured on the paper
    net, for k ≈ 50 about as much as the products of one step; a converged sample wastes at most
    3 products. Warm starts typically converge within 2–12 steps, cold starts in 40–60.)
    """
    return k <= 4 or k % 4 == 0


def batched_lanczos_top(
    op,
    aux: torch.Tensor,
    V0: torch.Tensor,
    *,
    tol: float,
    max_iters: int,
    krylov_dim: int = 64,
    generator: torch.Generator | None = None,
) -> BatchedEig:
    """Top eigenvalue of ``B`` symmetric PSD operators at once, by Lanczos with full reorthogonalization.

    ``op(aux_b, U)`` applies the operators of the samples whose per-sample data is ``aux_b``
    (rows of ``aux``) to ``U`` ``(b, d)``. ``V0`` ``(B, d)``: start vectors (warm start).
    Per sample, stops when the top Ritz value changed by at most ``tol`` relative between two
    consecutive checks (:func:`_should_check`), when the Krylov space is the whole space, or after
    ``max_iters`` products (then ``converged`` is False). Finished samples are dropped from the
    batch once a quarter of it has finished. Restarts from the top Ritz vector after
    ``krylov_dim`` steps. ``iterations`` counts the products spent on each sample.
    """
    B, d = V0.shape
    dtype, device = V0.dtype, V0.device
    kmax = max(1, min(int(krylov_dim), d))
    eps = torch.finfo(dtype).eps
    tiny = torch.finfo(dtype).tiny
    values = torch.zeros(B, dtype=dtype, device=device)
    vectors = V0.clone()
    iterations = torch.zeros(B, dtype=torch.int64)
    converged = torch.zeros(B, dtype=torch.bool)
    residuals = torch.zeros(B, dtype=dtype, device=device)

    def _random(b: int) -> torch.Tensor:
        return torch.randn(b, d, dtype=torch.float64, generator=generator).to(dtype=dtype, device=device)

    def _orth(w: torch.Tensor, Qk: torch.Tensor) -> torch.Tensor:  # one classical Gram–Schmidt pass
        return w - torch.bmm(torch.bmm(w.unsqueeze(1), Qk.transpose(1, 2)), Qk).squeeze(1)

    v = V0.clone()
    norms = v.norm(dim=1)
    bad = (norms <= 0) | ~torch.isfinite(norms)
    if bool(bad.any()):
        v[bad] = _random(int(bad.sum()))
    v = v / v.norm(dim=1, keepdim=True)
    active = torch.arange(B)  # batch rows → sample indices
    live = torch.ones(B, dtype=torch.bool)  # rows not finished yet (finished rows ride along)
    aux_a = aux
    prev = torch.full((B,), float("nan"), dtype=dtype, device=device)  # Ritz value at the last check
    total = 0  # products per row so far
    cycles = 0
    while True:  # one Lanczos cycle, (re)started from v
        b = active.numel()
        Q = torch.empty(b, kmax + 1, d, dtype=dtype, device=device)
        alpha = torch.zeros(b, kmax, dtype=dtype, device=device)
        beta = torch.zeros(b, kmax, dtype=dtype, device=device)
        Q[:, 0] = v
        k = 0
        restart = False
        while True:
            w = op(aux_a, Q[:, k])
            total += 1
            alpha[:, k] = (w * Q[:, k]).sum(dim=1)
            w = w - alpha[:, k, None] * Q[:, k]  # three-term recurrence ...
            if k > 0:
                w = w - beta[:, k - 1, None] * Q[:, k - 1]
            w = _orth(w, Q[:, : k + 1])  # ... plus full reorthogonalization
            bk = w.norm(dim=1)
            k += 1
            full = k >= d  # the Krylov space is the whole space: T_k holds every eigenvalue
            out_of_budget = total >= max_iters
            cycle_end = k >= kmax
            # (after a restart, T_1 is the previous Ritz value itself: no information at k = 1)
            if (_should_check(k) and not (cycles and k == 1)) or full or out_of_budget or cycle_end:
                rows = torch.nonzero(live).squeeze(1)
                T = torch.diag_embed(alpha[rows, :k])
                if k > 1:
                    off = beta[rows, : k - 1]
                    T = T + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)
                theta_k = torch.linalg.eigvalsh(T)[:, -1]
                ok = (theta_k - prev[rows]).abs() <= tol * theta_k.abs()  # NaN prev (first check) → False
                done = ok | full
                finish = torch.ones_like(done) if out_of_budget else done
                prev[rows] = theta_k
                need = torch.ones_like(finish) if cycle_end else finish  # rows whose Ritz vector is needed
                if bool(need.any()):
                    S = torch.linalg.eigh(T[need])[1][:, :, -1]
                    # relative residual of the top Ritz pair: β_k |s_k| / θ (0 if T holds the whole space)
                    res_need = (torch.zeros_like(theta_k[need]) if full else
                                bk[rows[need]] * S[:, -1].abs() / theta_k[need].abs().clamp_min(tiny))
                    vec = torch.bmm(S.unsqueeze(1), Q[rows[need], :k]).squeeze(1)
                    vec = vec / vec.norm(dim=1, keepdim=True)
                    ritz = torch.zeros(b, d, dtype=dtype, device=device)
                    ritz[rows[need]] = vec
                if bool(finish.any()):
                    fr = rows[finish]
                    idx = active[fr]
                    values[idx] = torch.clamp(theta_k[finish], min=0.0)
                    vectors[idx] = ritz[fr]
                    iterations[idx] = total
                    converged[idx] = done[finish]
                    resid_rows = torch.zeros(rows.shape[0], dtype=dtype, device=device)
                    resid_rows[need] = res_need
                    residuals[idx] = resid_rows[finish]
                    live[fr] = False
                n_live = int(live.sum())
                if n_live == 0:
                    return BatchedEig(values=values, vectors=vectors, iterations=iterations, converged=converged,
                                      residuals=residuals)
                if cycle_end:
                    keep = live
                    v = ritz[keep]
                    active, aux_a, prev, live = active[keep], aux_a[keep], prev[keep], live[keep]
                    restart = True
                    break
                if n_live <= 0.75 * b:  # drop finished rows
                    keep = live
                    active, aux_a, prev, live = active[keep], aux_a[keep], prev[keep], live[keep]
                    Q, alpha, beta, w, bk = Q[keep], alpha[keep], beta[keep], w[keep], bk[keep]
                    b = active.numel()
            # next Lanczos vector; on (near) breakdown the Krylov space is invariant (T_k's
            # eigenvalues are exact): continue with a random direction orthogonal to it
            scale = alpha[:, k - 1].abs() + (beta[:, k - 2] if k > 1 else 0.0)
            brk = bk <= 100 * eps * torch.clamp(scale, min=tiny)
            if bool(brk.any()):
                r = _random(int(brk.sum()))
                Qb = Q[brk, :k]
                r = _orth(_orth(r, Qb), Qb)
                w[brk] = r / r.norm(dim=1, keepdim=True)
                bk = torch.where(brk, torch.zeros_like(bk), bk)
                Q[:, k] = w / torch.where(brk, torch.ones_like(bk), bk).unsqueeze(1)
            else:
                Q[:, k] = w / bk.unsqueeze(1)
            beta[:, k - 1] = bk
        if not restart:
            break
        cycles += 1
    return BatchedEig(values=values, vectors=vectors, iterations=iterations, converged=converged,
                      residuals=residuals)


def batched_power_top(
    op,
    aux: torch.Tensor,
    V0: torch.Tensor,
    *,
    tol: float,
    max_iters: int,
    generator: torch.Generator | None = None,
) -> BatchedEig:
    """Top eigenvalue of ``B`` symmetric PSD operators at once, by power iteration.

    Per sample: ``λ = vᵀ A v`` (Rayleigh quotient), ``v ← A v / ‖A v‖``; stops when ``λ`` changed
    by at most ``tol`` relative since the previous product, or after ``max_iters`` products.
    Converged samples leave the batch.
    """
    B, d = V0.shape
    dtype, device = V0.dtype, V0.device
    values = torch.zeros(B, dtype=dtype, device=device)
    vectors = V0.clone()
    iterations = torch.zeros(B, dtype=torch.int64)
    converged = torch.zeros(B, dtype=torch.bool)
    residuals = torch.zeros(B, dtype=dtype, device=device)
    v = V0.clone()
    norms = v.norm(dim=1)
    bad = (norms <= 0) | ~torch.isfinite(norms)
    if bool(bad.any()):
        v[bad] = torch.randn(int(bad.sum()), d, dtype=torch.float64, generator=generator).to(dtype=dtype, device=device)
    v = v / v.norm(dim=1, keepdim=True)
    active = torch.arange(B)
    aux_a = aux
    prev = torch.full((B,), float("nan"), dtype=dtype, device=device)
    for it in range(1, max_iters + 1):
        w = op(aux_a, v)
        lam = (w * v).sum(dim=1)
        wn = w.norm(dim=1, keepdim=True)
        zero = wn[:, 0] <= 0
        v_next = torch.where(zero.unsqueeze(1), v, w / torch.where(wn > 0, wn, torch.ones_like(wn)))
        ok = ((lam - prev).abs() <= tol * lam.abs()) | zero
        sel = ok if it < max_iters else torch.ones_like(ok)
        if bool(sel.any()):
            idx = active[sel]
            # ‖Av − λv‖² = ‖Av‖² − λ² for a unit v with λ = vᵀAv
            res = (wn[sel, 0] ** 2 - lam[sel] ** 2).clamp_min(0).sqrt()
            residuals[idx] = torch.where(lam[sel] > 0, res / lam[sel].clamp_min(torch.finfo(dtype).tiny), res)
            values[idx] = torch.clamp(lam[sel], min=0.0)
            vectors[idx] = v_next[sel]
            iterations[idx] = it
            converged[idx] = ok[sel]
            keep = ~sel
            active, aux_a, v_next, lam = active[keep], aux_a[keep], v_next[keep], lam[keep]
            if active.numel() == 0:
                break
        v, prev = v_next, lam
    return BatchedEig(values=values, vectors=vectors, iterations=iterations, converged=converged,
                      residuals=residuals)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass
class LayerMetrics:
    """Spec §2–§4 expectations (0-based arrays, layer i of the spec is index i−1)."""

    EK2: float  # E‖K_n‖²_op, K_n K_nᵀ = Σ_i A_i A_iᵀ (‖x_{i−1}‖²+1)
    EK2_layer: np.ndarray  # (L,) E‖K_i‖²_op
    a: np.ndarray  # (L,) a_i = E‖A_i‖²_op; a[L−1] = a_L = E λ1(Hℓ)
    s: np.ndarray  # (L−1,) s_i = E‖J_i‖²_op
    r: np.ndarray  # (L−1,) r_i = E‖A_{i+1}J_i‖²_op / (a_{i+1} s_i)
    P: np.ndarray  # (L,) alignment product, P[L−1] = 1
    m: np.ndarray  # (L,) m_i = E[‖x_{i−1}‖² + 1]
    kappa: np.ndarray  # (L,) coupling factor κ_i
    a_L: float
    # diagnostics (not stored): per layer i = 1..L−1, how ‖J_i‖²_op was computed
    norm_method: tuple[str, ...] = ()  # "exact" | "lanczos" | "power"
    norm_iterations: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # max per sample
    norm_mean_iterations: np.ndarray = field(default_factory=lambda: np.zeros(0))
    norm_converged: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # all samples converged
    # the certificate of s_i (stored as s_i_resid): the largest relative residual ‖Mv − θv‖/θ of
    # the per-sample top Ritz pairs of layer i (0 on the exact route)
    norm_residual: np.ndarray = field(default_factory=lambda: np.zeros(0))
    per_sample: dict[str, np.ndarray] | None = None  # see LayerMetricsComputer.compute(keep_per_sample=True)

    @property
    def depth(self) -> int:
        return int(self.EK2_layer.shape[0])

    def as_dict(self) -> dict[str, float]:
        """Values by store name (spec §7, per-layer names 1-based): ``EK2, a_L, EK2_layer_1, ...``."""
        out: dict[str, float] = {"EK2": float(self.EK2), "a_L": float(self.a_L)}
        for name, arr in (
            ("EK2_layer", self.EK2_layer),
            ("a", self.a),
            ("s", self.s),
            ("r", self.r),
            ("P", self.P),
            ("m", self.m),
            ("kappa", self.kappa),
        ):
            for j, v in enumerate(np.asarray(arr).tolist()):
                out[f"{name}_{j + 1}"] = float(v)
        for j, v in enumerate(np.asarray(self.norm_residual).tolist()):
            out[f"s_{j + 1}_resid"] = float(v)
        return out

    def five_factor_product(self, i: int) -> float:
        """``a_L · Π_{j=i}^{L−1} s_j · P^i · m_i · κ_i`` for the 1-based layer ``i`` (= ``EK2_layer[i−1]``)."""
        L = self.depth
        if not 1 <= i <= L:
            raise ValueError(f"layer index must be in 1..{L}, got {i}")
        prod_s = float(np.prod(self.s[i - 1 :])) if i < L else 1.0
        return float(self.a_L * prod_s * self.P[i - 1] * self.m[i - 1] * self.kappa[i - 1])


# --------------------------------------------------------------------------------------------
# The computer
# --------------------------------------------------------------------------------------------


class LayerMetricsComputer:
    """Computes :class:`LayerMetrics`; keeps warm-start state (per-sample iteration vectors for
    ``‖J_i‖_op``) between snapshots.

    ``norm_method``: ``"auto"`` (exact ``eigvalsh`` where ``min(d_i, d_{i+1}) <= exact_max_dim``,
    else Lanczos), or force ``"exact"``, ``"lanczos"`` or ``"power"`` for every layer.
    ``power_tol``/``power_max_iters``: per-sample stopping rule of the iterative methods (relative
    change of the top Ritz value; products per sample). ``krylov_dim``: Lanczos restart length.
    ``norm_batch``: at most this many samples iterate together (memory of the Lanczos basis:
    ``norm_batch × (krylov_dim + 1) × d_i`` numbers), independently of ``chunk_size``.
    ``seed``: the random cold-start vectors.
    """

    def __init__(
        self,
        spec: MLPSpec,
        criterion: Criterion,
        *,
        chunk_size: int | None = None,
        power_tol: float = 1e-10,
        power_max_iters: int = 500,
        norm_method: str = "auto",
        exact_max_dim: int = 64,
        krylov_dim: int = 80,
        norm_batch: int = 512,
        seed: int = 0,
    ) -> None:
        if chunk_size is not None and chunk_size < 1:
            raise ConfigError(f"chunk_size must be >= 1 or None, got {chunk_size}")
        if norm_method not in NORM_METHODS:
            raise ConfigError(f"norm_method must be one of {', '.join(NORM_METHODS)}, got {norm_method!r}")
        if power_max_iters < 1:
            raise ConfigError(f"power_max_iters must be >= 1, got {power_max_iters}")
        self.spec = spec
        self.criterion = criterion
        self.chunk_size = chunk_size
        self.power_tol = float(power_tol)
        self.power_max_iters = int(power_max_iters)
        self.norm_method = norm_method
        self.exact_max_dim = int(exact_max_dim)
        self.krylov_dim = int(krylov_dim)
        self.norm_batch = max(1, int(norm_batch))
        self.seed = int(seed)
        self._warm: dict[tuple[int, int, int], torch.Tensor] = {}  # (layer, n, dim) → (n, dim)
        self._gen = torch.Generator().manual_seed(self.seed)

    # -- how ‖J_i‖ is computed, per layer ------------------------------------------------------

    def layer_norm_plan(self) -> list[tuple[str, str]]:
        """Per Jacobian ``J_i`` (i = 1..L−1): ``(method, side)``; side ``"in"``: operator
        ``D (WᵀW) D`` on R^{d_i}; ``"out"``: ``W D² Wᵀ`` on R^{d_{i+1}}."""
        plan = []
        sizes = self.spec.sizes
        for i in range(self.spec.depth - 1):
            d_in, d_out = sizes[i + 1], sizes[i + 2]
            method = self.norm_method
            if method == "auto":
                method = "exact" if min(d_in, d_out) <= self.exact_max_dim else "lanczos"
            if method == "exact":
                side = "out" if d_out <= d_in else "in"
            else:
                # products cost d_in² with the Gram, or 2 d_in d_out factored
                side = "out" if 2 * d_out < d_in else "in"
            plan.append((method, side))
        return plan

    def reset(self) -> None:
        """Forget the warm-start vectors."""
        self._warm.clear()

    def _start_vectors(self, layer: int, n: int, dim: int, start: int, stop: int, like: torch.Tensor):
        key = (layer, n, dim)
        store = self._warm.get(key)
        if store is None or store.dtype != like.dtype or store.device != like.device:
            store = torch.randn(n, dim, dtype=torch.float64, generator=self._gen).to(dtype=like.dtype, device=like.device)
            self._warm = {k: v for k, v in self._warm.items() if k[0] != layer}
            self._warm[key] = store
        return store[start:stop]

    def _jacobian_norms(self, layer, method, side, W, G, dphi, n, start, stop) -> BatchedEig:
        """``‖J_i‖²_op`` per sample of the chunk, ``J_i = W diag(dphi)`` (0-based ``layer``)."""
        B = dphi.shape[0]
        if method == "exact":
            if side == "out":
                Wd = W.unsqueeze(0) * dphi.unsqueeze(1)  # (B, d_out, d_in)
                M = Wd @ Wd.transpose(1, 2)
            else:
                M = dphi.unsqueeze(2) * G.unsqueeze(0) * dphi.unsqueeze(1)
            M = 0.5 * (M + M.transpose(1, 2))
            vals = _top_eigvalsh(M)
            return BatchedEig(vals, None, torch.zeros(B, dtype=torch.int64), torch.ones(B, dtype=torch.bool),
                              torch.zeros(B, dtype=vals.dtype, device=vals.device))
        if side == "in":
            dim = W.shape[1]

            def op(dp, U):
                return ((U * dp) @ G) * dp  # D (WᵀW) D U  (G symmetric)

        else:
            dim = W.shape[0]
            WT = W.T

            def op(dp, U):
                return ((U @ W) * (dp * dp)) @ WT  # W D² Wᵀ U

        parts = []
        for s0 in range(0, B, self.norm_batch):  # bounds the Lanczos basis to norm_batch × krylov_dim × dim
            s1 = min(s0 + self.norm_batch, B)
            V0 = self._start_vectors(layer, n, dim, start + s0, start + s1, dphi)
            if method == "lanczos":
                res = batched_lanczos_top(
                    op, dphi[s0:s1], V0, tol=self.power_tol, max_iters=self.power_max_iters,
                    krylov_dim=self.krylov_dim, generator=self._gen,
                )
            else:
                res = batched_power_top(
                    op, dphi[s0:s1], V0, tol=self.power_tol, max_iters=self.power_max_iters, generator=self._gen
                )
            self._warm[(layer, n, dim)][start + s0 : start + s1] = res.vectors
            parts.append(res)
        if len(parts) == 1:
            return parts[0]
        return BatchedEig(
            values=torch.cat([p.values for p in parts]),
            vectors=None,
            iterations=torch.cat([p.iterations for p in parts]),
            converged=torch.cat([p.converged for p in parts]),
            residuals=torch.cat([p.residuals for p in parts]),
        )

    # -- main entry ----------------------------------------------------------------------------

    def compute(self, theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor, *, keep_per_sample: bool = False) -> LayerMetrics:
        """The spec §3–§4 quantities at ``theta`` over the training set ``(X, y)``.

        ``keep_per_sample``: also return per-sample arrays in ``per_sample``: ``K2`` (n,)
        ``‖K_n‖²_op``; ``K2_layer`` (n, L) ``‖K_i‖²_op``; ``A2`` (n, L) ``‖A_i‖²_op``; ``J2``
        (n, L−1) ``‖J_i‖²_op``; ``x2p1`` (n, L) ``‖x_{i−1}‖² + 1``; ``ratio`` (n, L−1) the
        per-sample alignment ratio ``‖A_{i+1} J_i‖²/(‖A_{i+1}‖² ‖J_i‖²) ∈ [0, 1]`` (0 where the
        denominator is 0).
        """
        spec, L = self.spec, self.spec.depth
        theta = theta.detach()
        n = int(X.shape[0])
        if n < 1:
            raise ConfigError("layer metrics need at least one sample")
        chunk = n if self.chunk_size is None else min(self.chunk_size, n)
        layers = unflatten(spec, theta)
        plan = self.layer_norm_plan()
        grams = []
        for i, (method, side) in enumerate(plan):
            W = layers[i + 1][0]
            grams.append(W.T @ W if side == "in" else None)

        f64 = torch.float64
        sum_K2 = torch.zeros((), dtype=f64)
        sum_K2_layer = torch.zeros(L, dtype=f64)
        sum_A2 = torch.zeros(L, dtype=f64)
        sum_J2 = torch.zeros(max(L - 1, 0), dtype=f64)
        sum_x2p1 = torch.zeros(L, dtype=f64)
        iters_max = np.zeros(max(L - 1, 0), dtype=np.int64)
        iters_sum = np.zeros(max(L - 1, 0), dtype=np.float64)
        conv_all = np.ones(max(L - 1, 0), dtype=bool)
        resid_max = np.zeros(max(L - 1, 0))
        per: dict[str, list] = {k: [] for k in ("K2", "K2_layer", "A2", "J2", "x2p1", "ratio")}

        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            Xc, yc = X[start:stop], y[start:stop]
            A, inter = weighted_preactivation_jacobians(spec, self.criterion, theta, Xc, yc)
            B = stop - start
            x2p1 = torch.stack([(x.to(theta.dtype) ** 2).sum(dim=1) + 1.0 for x in inter.xs], dim=1)  # (B, L)
            A2 = torch.empty(B, L, dtype=theta.dtype, device=theta.device)
            KK = None
            for i in range(L):
                Mi = _gram(A[i])
                if i < L - 1:
                    A2[:, i] = _top_eigvalsh(Mi)
                KK = Mi * x2p1[:, i, None, None] if KK is None else KK + Mi * x2p1[:, i, None, None]
            # ‖A_L‖²_op = λ1(Hℓ), closed form
            A2[:, L - 1] = torch.clamp(self.criterion.hessian_top_eigenvalue(inter.output, yc), min=0.0)
            K2 = _top_eigvalsh(KK)
            J2 = torch.empty(B, max(L - 1, 0), dtype=theta.dtype, device=theta.device)
            for i, (method, side) in enumerate(plan):
                res = self._jacobian_norms(i, method, side, layers[i + 1][0], grams[i], inter.dphi[i], n, start, stop)
                J2[:, i] = res.values
                it = res.iterations.numpy()
                iters_max[i] = max(iters_max[i], int(it.max()))
                iters_sum[i] += float(it.sum())
                conv_all[i] &= bool(res.converged.all())
                resid_max[i] = max(resid_max[i], float(res.residuals.max()))

            K2_layer = A2 * x2p1
            sum_K2 += K2.to(f64).sum().cpu()
            sum_K2_layer += K2_layer.to(f64).sum(dim=0).cpu()
            sum_A2 += A2.to(f64).sum(dim=0).cpu()
            sum_J2 += J2.to(f64).sum(dim=0).cpu()
            sum_x2p1 += x2p1.to(f64).sum(dim=0).cpu()
            if keep_per_sample:
                den = A2[:, 1:] * J2
                num = A2[:, :-1]  # ‖A_{i+1} J_i‖² = ‖A_i‖² (exact identity)
                ratio = torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(den))
                for key, val in (("K2", K2), ("K2_layer", K2_layer), ("A2", A2), ("J2", J2), ("x2p1", x2p1), ("ratio", ratio)):
                    per[key].append(val.detach().to(f64).cpu())

        a = (sum_A2 / n).numpy()
        s = (sum_J2 / n).numpy()
        m = (sum_x2p1 / n).numpy()
        EK2_layer = (sum_K2_layer / n).numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            r = a[:-1] / (a[1:] * s)  # numerator E‖A_{i+1}J_i‖² = a_i  (A_{i+1} J_i = A_i)
            P = np.ones(L)
            for i in range(L - 2, -1, -1):
                P[i] = r[i] * P[i + 1]
            kappa = EK2_layer / (a * m)
        per_sample = None
        if keep_per_sample:
            per_sample = {k: torch.cat(v, dim=0).numpy() for k, v in per.items()}
        return LayerMetrics(
            EK2=float(sum_K2 / n),
            EK2_layer=EK2_layer,
            a=a,
            s=s,
            r=r,
            P=P,
            m=m,
            kappa=kappa,
            a_L=float(a[L - 1]),
            norm_method=tuple(p[0] for p in plan),
            norm_iterations=iters_max,
            norm_mean_iterations=iters_sum / n,
            norm_converged=conv_all,
            norm_residual=resid_max,
            per_sample=per_sample,
        )
