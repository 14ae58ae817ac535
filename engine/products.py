"""Full-batch loss and batched curvature products for the flat-parameter MLP (spec §1, §2, §5).

:class:`LossProblem` holds the training set and evaluates ``L(θ) = (1/n) Σ_n ℓ(f(x_n; θ), y_n)``,
its gradient, Hessian-vector products ``H V`` and Gauss–Newton-vector products ``G V`` for a
block ``V`` of ``b`` directions (shape ``(P, b)``) at once.

How (``method="manual"``, the default): the products are written out by hand for the MLP's layer
structure — Pearlmutter's R-operator, i.e. forward-over-reverse mode done explicitly:

* forward: ``z_i = x_{i-1} W_iᵀ + b_i``, ``x_i = φ(z_i)``, and for every direction
  ``v = (V_W, V_b)`` its tangent ``ż_i = ẋ_{i-1} W_iᵀ + x_{i-1} V_{W,i}ᵀ + V_{b,i}``,
  ``ẋ_i = φ'(z_i) ż_i``;
* backward: ``δ_L = ∂ℓ/∂z_L`` and its tangent ``δ̇_L = Hℓ ż_L`` (closed-form ``Hℓ``), then per
  layer ``∇W_i = δ_iᵀ x_{i-1}``, ``(HV)_{W_i} = δ̇_iᵀ x_{i-1} + δ_iᵀ ẋ_{i-1}`` and
  ``δ_{i-1} = φ'(z_{i-1}) ⊙ δ_i W_i``,
  ``δ̇_{i-1} = φ''(z_{i-1}) ⊙ ż_{i-1} ⊙ δ_i W_i + φ'(z_{i-1}) ⊙ (δ̇_i W_i + δ_i V_{W,i})``.

The primal (loss, gradient) part is computed once; the ``b`` tangents are stacked so that every
step is one large matrix product over all of them. This is the floor the spec asks for (one fused
pass yields the gradient and all ``b`` HVPs): per direction it costs 2 GEMMs per layer forward and
4 backward (layer 1: 1 + 1), i.e. ~1.5–1.75 gradients, without ``torch.func`` dispatch overheads.
Measured (CPU, 1 thread, float64, MLP d0→512×5→6, ELU, CE, n = 468; time / autograd gradient):

    ===========  =========  =====================  ================  ===============
    d0, b        manual     vmap(jvp(grad)) func   double backward   1 + 2b
    ===========  =========  =====================  ================  ===============
    1024, 7      10.5       15.1                   15.1              15
    1024, 11     17.0       22.5                   —                 23
    3072, 7       9.0       13.8                   —                 15
    3072, 11     13.5       —                      —                 23
    ===========  =========  =====================  ================  ===============

(the GEMMs run at the machine's peak; the manual pass is within ~10% of its GEMM flop count).
``method="func"`` keeps the ``torch.func.vmap(jvp(grad_and_value))`` implementation (shared,
unbatched primal) as an independent cross-check and for architectures the manual pass does not
cover.

The Gauss–Newton product ``G V = (1/n) Σ J_nᵀ Hℓ,n J_n V`` is a forward tangent pass
(``J V``, i.e. a jvp of the network), the closed-form ``Hℓ``, and a linear backward pass of
the ``b`` cotangents (a vjp of the network): never a P-sized Jacobian.

All passes loop over chunks of ``chunk_size`` samples (``None``: all at once), accumulate sums
and divide by ``n`` at the end, so memory is bounded by the chunk size: the fused pass keeps about
``(b + 3) · m · Σ_i d_i`` numbers per chunk of ``m`` samples (b = 11, m = 7500, 5 × 512 hidden
units: ~2 GB in float64), plus the ``(b, P)`` output.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from engine.criteria import Criterion
from engine.errors import ConfigError
from engine.model import MLPSpec, activation, activation_derivative, forward, unflatten

METHODS = ("manual", "func")
# the primal pass of the last θ (6 arrays of n × d per layer) is kept while it fits in this many
# bytes; above it (very large n·width) every call recomputes it
PRIMAL_CACHE_BYTES = 512 * 2**20


@dataclass
class _Primal:
    """One chunk's primal pass: layer inputs ``x_{i-1}``, ``φ'(z_i)``, ``φ''(z_i)``, ``δ_i``,
    ``δ_i W_i``, the criterion Hessian, the summed loss and the correct predictions."""

    xs: list
    dphis: list
    d2phis: list
    deltas: list
    gxs: list
    hess: torch.Tensor
    loss_sum: torch.Tensor
    correct: torch.Tensor


def activation_second_derivative(name: str, z: torch.Tensor) -> torch.Tensor:
    """φ''(z) in closed form (ReLU: 0; ELU: e^z for z <= 0, else 0; tanh: −2 tanh (1 − tanh²))."""
    if name == "elu":
        return torch.where(z > 0, torch.zeros_like(z), torch.exp(torch.clamp(z, max=0.0)))
    if name == "relu":
        return torch.zeros_like(z)
    if name == "tanh":
        t = torch.tanh(z)
        return -2.0 * t * (1.0 - t * t)
    raise ConfigError(f"unknown activation {name!r}")


class LossProblem:
    """Full-batch loss ``L(θ) = mean_n ℓ(f(x_n; θ), y_n)`` with batched curvature products.

    ``hvp_count`` grows by ``b`` for every ``H V`` or ``G V`` with ``V`` of ``b`` columns
    (including the HVPs of :meth:`grad_and_hvp`).
    """

    def __init__(
        self,
        spec: MLPSpec,
        criterion: Criterion,
        X: torch.Tensor,
        y: torch.Tensor,
        *,
        chunk_size: int | None = None,
        method: str = "manual",
    ) -> None:
        if X.ndim != 2 or X.shape[1] != spec.sizes[0]:
            raise ConfigError(f"inputs must have shape (n, {spec.sizes[0]}), got {tuple(X.shape)}")
        if y.shape != (X.shape[0],):
            raise ConfigError(f"labels must have shape ({X.shape[0]},), got {tuple(y.shape)}")
        if chunk_size is not None and chunk_size < 1:
            raise ConfigError(f"chunk_size must be >= 1 or None, got {chunk_size}")
        if method not in METHODS:
            raise ConfigError(f"unknown product method {method!r}; choose one of {', '.join(METHODS)}")
        self.spec = spec
        self.criterion = criterion
        self.X = X
        self.y = y
        self.n = int(X.shape[0])
        self.P = spec.num_params
        self.chunk_size = chunk_size
        self.method = method
        self.hvp_count = 0
        # training accuracy at the θ of the latest gradient pass (manual method), read by the
        # solvers right after their first pass at a step's θ: saves a separate forward pass
        self.last_accuracy: float | None = None
        self._primal_cache: tuple[torch.Tensor, list[_Primal]] | None = None

    @property
    def dtype(self) -> torch.dtype:
        return self.X.dtype

    def with_dtype(self, dtype: torch.dtype) -> "LossProblem":
        """The same problem with inputs (and so all products) in ``dtype``; ``self`` if unchanged."""
        if dtype == self.X.dtype:
            return self
        return LossProblem(self.spec, self.criterion, self.X.to(dtype), self.y,
                           chunk_size=self.chunk_size, method=self.method)

    # ------------------------------------------------------------------ helpers

    def _chunks(self):
        step = self.n if self.chunk_size is None else self.chunk_size
        for start in range(0, self.n, step):
            yield self.X[start : start + step], self.y[start : start + step]

    def _check_theta(self, theta: torch.Tensor) -> torch.Tensor:
        if theta.shape != (self.P,):
            raise ValueError(f"theta must have shape ({self.P},), got {tuple(theta.shape)}")
        return theta.detach()

    def _check_block(self, V: torch.Tensor) -> torch.Tensor:
        if V.ndim != 2 or V.shape[0] != self.P:
            raise ValueError(f"V must have shape ({self.P}, b), got {tuple(V.shape)}")
        return V.detach()

    def _loss_grad_z(self, z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed loss of a chunk and ``∂ℓ_n/∂z_n`` per sample (a c-sized autograd, cheap)."""
        with torch.enable_grad():
            zz = z.detach().requires_grad_(True)
            loss_sum = self.criterion.per_sample_loss(zz, y).sum()
            (dz,) = torch.autograd.grad(loss_sum, zz)
        return loss_sum.detach(), dz

    # ------------------------------------------------------------------ scalars

    @torch.no_grad()
    def loss(self, theta: torch.Tensor) -> float:
        theta = self._check_theta(theta)
        total = 0.0
        for Xc, yc in self._chunks():
            total += float(self.criterion.per_sample_loss(forward(self.spec, theta, Xc), yc).sum())
        return total / self.n

    @torch.no_grad()
    def accuracy(self, theta: torch.Tensor) -> float:
        theta = self._check_theta(theta)
        correct = 0
        for Xc, yc in self._chunks():
            correct += int(self.criterion.correct(forward(self.spec, theta, Xc), yc).sum())
        return correct / self.n

    @torch.no_grad()
    def loss_and_grad(self, theta: torch.Tensor) -> tuple[float, torch.Tensor]:
        """``(L(θ), ∇L(θ))``; the gradient has shape ``(P,)``."""
        theta = self._check_theta(theta)
        loss, grad, _ = self._fused(theta, None)
        return loss, grad

    # ------------------------------------------------------------------ products

    @torch.no_grad()
    def hvp(self, theta: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        """``H V`` for ``V`` of shape ``(P, b)``; returns ``(P, b)``.

        Products return the transpose of a contiguous ``(b, P)`` tensor (each column contiguous,
        as ``torch.linalg.qr`` lays out ``Q``); call ``.contiguous()`` if row-major is needed.
        The gradient-only paths (``loss_and_grad``) always use the manual pass.
        """
        _, _, HV = self.grad_and_hvp(theta, V)
        return HV

    @torch.no_grad()
    def grad_and_hvp(self, theta: torch.Tensor, V: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
        """``(L(θ), ∇L(θ), H V)`` from one fused forward-over-reverse pass (primal once, tangents batched)."""
        theta = self._check_theta(theta)
        V = self._check_block(V)
        self.hvp_count += V.shape[1]
        if V.shape[1] == 0:
            loss, grad, _ = self._fused(theta, None)
            return loss, grad, V.new_zeros(self.P, 0)
        if self.method == "func":
            self.last_accuracy = None  # this cross-check path does not count predictions
            return self._fused_func(theta, V)
        return self._fused(theta, V)

    @torch.no_grad()
    def residual_hvp(self, theta: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        """``(H − G) V`` in one pass: the R-operator pass with the criterion term ``δ̇_L = Hℓ ż_L``
        left out (the backward is linear in its seeds, and what ``δ̇_L`` alone contributes is
        exactly the Gauss–Newton product). Counts ``b`` products; ``V`` ``(P, b)`` → ``(P, b)``."""
        return self._product(theta, V, lambda t, W: self._fused(t, W, gauss_newton=False)[2],
                             lambda t, W: self._fused_func(t, W)[2] - self._ggnvp_func(t, W))

    @torch.no_grad()
    def ggnvp(self, theta: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        """``G V`` with ``G = (1/n) Σ J_nᵀ Hℓ,n J_n`` (closed-form ``Hℓ``); ``V`` ``(P, b)`` → ``(P, b)``."""
        return self._product(theta, V, self._ggnvp_manual, self._ggnvp_func)

    def _product(self, theta: torch.Tensor, V: torch.Tensor, manual, func) -> torch.Tensor:
        """A curvature product ``(P, b) → (P, b)`` by ``manual`` (or ``func``), counted."""
        theta = self._check_theta(theta)
        V = self._check_block(V)
        self.hvp_count += V.shape[1]
        if V.shape[1] == 0:
            return V.new_zeros(self.P, 0)
        return (func if self.method == "func" else manual)(theta, V)

    # ------------------------------------------------------------------ manual (R-operator) passes

    def _primal(self, theta: torch.Tensor, layers) -> Iterable["_Primal"]:
        """The primal pass of every chunk at ``θ`` (forward, loss, backward of ``∂ℓ/∂z``), to be
        iterated once.

        Kept for the last ``θ`` while it fits :data:`PRIMAL_CACHE_BYTES`: products at one θ
        (refinements of the eigenpairs, snapshot eigen-solves, the next step's fused pass after
        a trial gradient) then pay only for their tangents. When it does not fit, the chunks are
        made one at a time (a generator), so memory stays bounded by ``chunk_size``.
        """
        cached = self._primal_cache
        if cached is not None and cached[0].shape == theta.shape and torch.equal(cached[0], theta):
            return cached[1]
        sizes = sum(self.spec.sizes[:-1]) + sum(self.spec.sizes[1:])
        if 3 * self.n * sizes * theta.element_size() > PRIMAL_CACHE_BYTES:
            self._primal_cache = None
            return (self._primal_chunk(layers, Xc, yc) for Xc, yc in self._chunks())
        primals = [self._primal_chunk(layers, Xc, yc) for Xc, yc in self._chunks()]
        self._primal_cache = (theta.clone(), primals)
        return primals

    def _primal_chunk(self, layers, Xc, yc) -> "_Primal":
        name = self.spec.activation
        L = len(layers)
        xs, dphis, d2phis = [], [], []
        x = Xc
        for i, (W, bias) in enumerate(layers):
            xs.append(x)
            z = torch.addmm(bias, x, W.T)
            if i < L - 1:
                dphis.append(activation_derivative(name, z))
                d2phis.append(activation_second_derivative(name, z))
                x = activation(name, z)
        loss_sum, delta = self._loss_grad_z(z, yc)  # δ_L = ∂ℓ/∂z_L
        deltas, gxs = [None] * L, [None] * L
        for i in range(L - 1, -1, -1):  # δ_{i-1} = φ'(z_{i-1}) ⊙ δ_i W_i
            deltas[i] = delta
            if i > 0:
                gxs[i] = delta @ layers[i][0]
                delta = dphis[i - 1] * gxs[i]
        return _Primal(xs, dphis, d2phis, deltas, gxs, self.criterion.hessian(z, yc), loss_sum,
                       self.criterion.correct(z, yc).sum())

    @staticmethod
    def _tangents(layers, tlayers, pr: "_Primal") -> list[torch.Tensor]:
        """Forward tangents ``ż_i`` ``(b, m, d_i)`` of every direction (``ẋ_0 = 0``)."""
        zds, xd = [], None
        for i, (W, _) in enumerate(layers):
            VW, Vb = tlayers[i]
            zd = torch.matmul(pr.xs[i], VW.mT)  # x V_Wᵀ for every direction: (b, m, d_out)
            zd += Vb.unsqueeze(1)
            if xd is not None:
                zd += (xd.flatten(0, 1) @ W.T).view_as(zd)
            zds.append(zd)
            if i < len(layers) - 1:
                xd = pr.dphis[i] * zd
        return zds

    def _fused(self, theta: torch.Tensor, V: torch.Tensor | None, gauss_newton: bool = True):
        """Loss, gradient and (if ``V`` is given) ``H V`` by the explicit R-operator pass
        (``gauss_newton=False``: ``(H − G) V``, the criterion term ``δ̇_L`` left out)."""
        layers = unflatten(self.spec, theta)
        L = len(layers)
        primals = self._primal(theta, layers)
        grad = torch.zeros_like(theta)
        glayers = unflatten(self.spec, grad)
        tlayers = hlayers = HVt = None
        if V is not None:
            b = V.shape[1]
            tlayers = unflatten(self.spec, V.T.contiguous())  # (b, P): each direction contiguous
            HVt = torch.zeros(b, self.P, dtype=theta.dtype, device=theta.device)
            hlayers = unflatten(self.spec, HVt)
        loss_total = torch.zeros((), dtype=theta.dtype, device=theta.device)
        correct = torch.zeros((), dtype=torch.int64, device=theta.device)
        for pr in primals:
            loss_total += pr.loss_sum
            correct += pr.correct
            for i in range(L - 1, -1, -1):  # ∇W = δᵀx, ∇b = Σδ
                gW, gb = glayers[i]
                gW.addmm_(pr.deltas[i].T, pr.xs[i])
                gb += pr.deltas[i].sum(0)
            if V is None:
                continue
            zds = self._tangents(layers, tlayers, pr)
            deltad = (torch.einsum("mcd,bmd->bmc", pr.hess, zds[-1]) if gauss_newton  # δ̇_L = Hℓ ż_L
                      else torch.zeros_like(zds[-1]))
            m = pr.xs[0].shape[0]
            for i in range(L - 1, -1, -1):
                # layer i: (HV)_W = δ̇ᵀx + δᵀẋ, (HV)_b = Σδ̇
                hW, hb = hlayers[i]
                hW += torch.matmul(deltad.mT, pr.xs[i])
                if i > 0:  # ẋ_{i-1} = φ'(z_{i-1}) ż_{i-1}; ẋ_0 = 0
                    hW += torch.matmul(pr.deltas[i].T, pr.dphis[i - 1] * zds[i - 1])
                hb += deltad.sum(1)
                if i == 0:
                    break
                # back to layer i-1: δ̇_{i-1} = φ'' ⊙ ż ⊙ δW + φ' ⊙ (δ̇W + δV_W)
                W = layers[i][0]
                gxd = (deltad.flatten(0, 1) @ W).view(b, m, W.shape[1])
                gxd += torch.matmul(pr.deltas[i], tlayers[i][0])
                deltad = pr.dphis[i - 1] * gxd + pr.d2phis[i - 1] * zds[i - 1] * pr.gxs[i]
        n = self.n
        grad /= n
        self.last_accuracy = int(correct) / n
        if V is None:
            return float(loss_total) / n, grad, None
        HVt /= n
        return float(loss_total) / n, grad, HVt.T

    def _ggnvp_manual(self, theta: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        """``G V``: forward tangents ``J V``, ``Hℓ``, then a linear backward of the cotangents."""
        layers = unflatten(self.spec, theta)
        b = V.shape[1]
        tlayers = unflatten(self.spec, V.T.contiguous())
        GVt = torch.zeros(b, self.P, dtype=theta.dtype, device=theta.device)
        out = unflatten(self.spec, GVt)
        for pr in self._primal(theta, layers):
            u = torch.einsum("mcd,bmd->bmc", pr.hess, self._tangents(layers, tlayers, pr)[-1])
            m = pr.xs[0].shape[0]
            for i in range(len(layers) - 1, -1, -1):
                gW, gb = out[i]
                gW += torch.matmul(u.mT, pr.xs[i])
                gb += u.sum(1)
                if i == 0:
                    break
                W = layers[i][0]
                u = pr.dphis[i - 1] * (u.flatten(0, 1) @ W).view(b, m, W.shape[1])
        GVt /= self.n
        return GVt.T

    # ------------------------------------------------------------------ torch.func passes (cross-check)

    def _chunk_loss_sum(self, theta, Xc, yc):
        return self.criterion.per_sample_loss(forward(self.spec, theta, Xc), yc).sum()

    def _fused_func(self, theta: torch.Tensor, V: torch.Tensor):
        """``vmap`` over tangents of ``jvp(grad_and_value)`` with a shared unbatched primal."""
        from torch.func import grad_and_value, jvp, vmap

        grad = torch.zeros_like(theta)
        HV = torch.zeros(V.shape[1], self.P, dtype=theta.dtype, device=theta.device)
        loss_total = 0.0
        Vt = V.T.contiguous()
        for Xc, yc in self._chunks():
            gv = grad_and_value(lambda t: self._chunk_loss_sum(t, Xc, yc))
            (g, val), (hv, _) = vmap(lambda v: jvp(gv, (theta,), (v,)))(Vt)
            grad += g[0]
            HV += hv
            loss_total += float(val[0])
        return loss_total / self.n, grad / self.n, (HV / self.n).T

    def _ggnvp_func(self, theta: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        """``G V`` by ``jvp`` and ``vjp`` of the network (torch.func), closed-form ``Hℓ``."""
        from torch.func import jvp, vjp, vmap

        GV = torch.zeros(V.shape[1], self.P, dtype=theta.dtype, device=theta.device)
        Vt = V.T.contiguous()
        for Xc, yc in self._chunks():
            f = lambda t: forward(self.spec, t, Xc)  # noqa: E731
            z, pullback = vjp(f, theta)
            zd = vmap(lambda v: jvp(f, (theta,), (v,))[1])(Vt)  # (b, m, c) = J V
            u = torch.einsum("mcd,bmd->bmc", self.criterion.hessian(z, yc), zd)
            GV += vmap(lambda w: pullback(w)[0])(u)
        return (GV / self.n).T
