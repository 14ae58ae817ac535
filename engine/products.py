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

import torch

from engine.criteria import Criterion
from engine.errors import ConfigError
from engine.model import MLPSpec, activation, activation_derivative, forward, unflatten

METHODS = ("manual", "func")


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
        theta = self._check_theta(theta)
        V = self._check_block(V)
        self.hvp_count += V.shape[1]
        if V.shape[1] == 0:
            return V.new_zeros(self.P, 0)
        if self.method == "func":
            return self._fused_func(theta, V)[2] - self._ggnvp_func(theta, V)
        return self._fused(theta, V, gauss_newton=False)[2]

    @torch.no_grad()
    def ggnvp(self, theta: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        """``G V`` with ``G = (1/n) Σ J_nᵀ Hℓ,n J_n`` (closed-form ``Hℓ``); ``V`` ``(P, b)`` → ``(P, b)``."""
        theta = self._check_theta(theta)
        V = self._check_block(V)
        self.hvp_count += V.shape[1]
        if V.shape[1] == 0:
            return V.new_zeros(self.P, 0)
        if self.method == "func":
            return self._ggnvp_func(theta, V)
        return self._ggnvp_manual(theta, V)

    # ------------------------------------------------------------------ manual (R-operator) passes

    def _forward(self, layers, tlayers, Xc):
        """Forward pass, with batched tangents if ``tlayers`` is given.

        Returns per layer ``(x_{i-1}, z_i, ż_i, φ'(z_i))``: tangents are ``(b, m, d_i)`` (None
        without ``tlayers``), ``φ'`` is None for the output layer. ``ẋ_i = φ'(z_i) ż_i`` is not
        kept (recomputed where needed) so that one tangent tensor per layer stays in memory.
        """
        name = self.spec.activation
        L = len(layers)
        x, xd = Xc, None  # ẋ_0 = 0: the input does not depend on θ
        cache = []
        for i, (W, bias) in enumerate(layers):
            z = torch.addmm(bias, x, W.T)
            zd = None
            if tlayers is not None:
                VW, Vb = tlayers[i]
                zd = torch.matmul(x, VW.mT)  # x V_Wᵀ for every direction: (b, m, d_out)
                zd += Vb.unsqueeze(1)
                if xd is not None:
                    zd += (xd.flatten(0, 1) @ W.T).view_as(zd)
            dphi = activation_derivative(name, z) if i < L - 1 else None
            cache.append((x, z, zd, dphi))
            if i < L - 1:
                x = activation(name, z)
                xd = dphi * zd if zd is not None else None
        return cache

    def _fused(self, theta: torch.Tensor, V: torch.Tensor | None, gauss_newton: bool = True):
        """Loss, gradient and (if ``V`` is given) ``H V`` by the explicit R-operator pass
        (``gauss_newton=False``: ``(H − G) V``, the criterion term ``δ̇_L`` left out)."""
        spec, name = self.spec, self.spec.activation
        layers = unflatten(spec, theta)
        L = len(layers)
        grad = torch.zeros_like(theta)
        glayers = unflatten(spec, grad)
        tlayers = hlayers = HVt = None
        if V is not None:
            b = V.shape[1]
            tlayers = unflatten(spec, V.T.contiguous())  # (b, P): each direction contiguous
            HVt = torch.zeros(b, self.P, dtype=theta.dtype, device=theta.device)
            hlayers = unflatten(spec, HVt)
        loss_total = torch.zeros((), dtype=theta.dtype, device=theta.device)
        correct = torch.zeros((), dtype=torch.int64, device=theta.device)
        for Xc, yc in self._chunks():
            cache = self._forward(layers, tlayers, Xc)
            zL, zdL = cache[-1][1], cache[-1][2]
            loss_sum, delta = self._loss_grad_z(zL, yc)  # δ_L = ∂ℓ/∂z_L
            loss_total += loss_sum
            correct += self.criterion.correct(zL, yc).sum()
            deltad = None
            if V is not None:  # δ̇_L = Hℓ ż_L
                deltad = (torch.einsum("mcd,bmd->bmc", self.criterion.hessian(zL, yc), zdL) if gauss_newton
                          else torch.zeros_like(zdL))
            for i in range(L - 1, -1, -1):
                x, W = cache[i][0], layers[i][0]
                if i > 0:
                    _, z_prev, zd_prev, dphi_prev = cache[i - 1]
                # layer i: ∇W = δᵀx, ∇b = Σδ;  (HV)_W = δ̇ᵀx + δᵀẋ, (HV)_b = Σδ̇
                gW, gb = glayers[i]
                gW.addmm_(delta.T, x)
                gb += delta.sum(0)
                if V is not None:
                    hW, hb = hlayers[i]
                    hW += torch.matmul(deltad.mT, x)
                    if i > 0:  # ẋ_{i-1} = φ'(z_{i-1}) ż_{i-1}; ẋ_0 = 0
                        hW += torch.matmul(delta.T, dphi_prev * zd_prev)
                    hb += deltad.sum(1)
                if i == 0:
                    break
                # back to layer i-1: δ_{i-1} = φ' ⊙ δW,  δ̇_{i-1} = φ'' ⊙ ż ⊙ δW + φ' ⊙ (δ̇W + δV_W)
                gx = delta @ W
                if V is not None:
                    gxd = (deltad.flatten(0, 1) @ W).view(b, Xc.shape[0], W.shape[1])
                    gxd += torch.matmul(delta, tlayers[i][0])
                    deltad = dphi_prev * gxd + activation_second_derivative(name, z_prev) * zd_prev * gx
                delta = dphi_prev * gx
        n = self.n
        grad /= n
        self.last_accuracy = int(correct) / n
        if V is None:
            return float(loss_total) / n, grad, None
        HVt /= n
        return float(loss_total) / n, grad, HVt.T

    def _ggnvp_manual(self, theta: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        """``G V``: forward tangents ``J V``, ``Hℓ``, then a linear backward of the cotangents."""
        spec = self.spec
        layers = unflatten(spec, theta)
        b = V.shape[1]
        tlayers = unflatten(spec, V.T.contiguous())
        GVt = torch.zeros(b, self.P, dtype=theta.dtype, device=theta.device)
        out = unflatten(spec, GVt)
        for Xc, yc in self._chunks():
            cache = self._forward(layers, tlayers, Xc)
            zL, zdL = cache[-1][1], cache[-1][2]
            u = torch.einsum("mcd,bmd->bmc", self.criterion.hessian(zL, yc), zdL)
            for i in range(len(layers) - 1, -1, -1):
                gW, gb = out[i]
                gW += torch.matmul(u.mT, cache[i][0])
                gb += u.sum(1)
                if i == 0:
                    break
                W = layers[i][0]
                u = cache[i - 1][3] * (u.flatten(0, 1) @ W).view(b, Xc.shape[0], W.shape[1])
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
