"""The exponential Euler solver of Lowell & Kastner §7.2 (spec §6), with step-size control.

Each step takes the top ``k+1`` eigenpairs ``(λ_j, v_j)`` of H (by magnitude, warm-started and
certified by their residuals, :class:`~engine.solvers.base.EigTracker`), splits the gradient
``g = Σ_{j≤k} g_j v_j + w`` and updates

    θ ← θ − Σ_{j≤k} g_j φ_j v_j − τ w,    φ_j = min((1 − e^{−λ_j τ}) / λ_j, τ).

This is the exact gradient flow of the local quadratic model along the top-k eigenvectors
plus an Euler step on the rest (the rule of the reference implementation, ``stable-solvers``'
``ExponentialEulerSolver``). Its step is the exponential Euler (ETD1) step of
``θ' = −A(θ − θ_0) + N(θ)`` with ``A = Σ_{j≤k} λ_j⁺ v_j v_jᵀ`` and ``N(θ) = −g(θ) + A(θ − θ_0)``.

**Step-size control** (an adaptive integrator, as for any ODE): τ is at most
``τ_max = min(η, 1/|λ_{k+1}|)`` (η scaled by ``warmup_factor`` for the first ``warmup_iters``
steps), and otherwise chosen for accuracy. A trial step to ``θ_1`` is followed by one gradient
``g_1 = ∇L(θ_1)``; the local error is estimated by the embedded second-order step
(exponential time differencing, ETD2 of Cox & Matthews), whose difference from ours is

    e = τ φ₂(−τA) (N(θ_1) − N(θ_0)) = τ φ₂(−τA) (ĝ_1 − g_1),    φ₂(z) = (e^z − 1 − z)/z²,

``ĝ_1 = g − A(θ_0 − θ_1)`` being the gradient the local linear model predicts at ``θ_1``: τ/2 times
the gradient misprediction off the stiff directions (the Heun–Euler estimate), damped by
``τφ₂(−τλ_j) ≈ 1/λ_j`` along them. The step is accepted when ``‖e‖ ≤ tol · ‖θ_1 − θ_0‖``
(relative local error: error per unit step) **and** the loss did not rise
(``L(θ_1) ≤ L(θ_0)(1 + 1e-12)``); otherwise it is rejected, the eigenpairs are refined at θ_0
(to a tenfold tighter residual, iterating only if they are not there yet) and τ shrinks. After an
accepted step the next τ is ``τ · clip(0.9 · tol/err, 0.2, 2)`` (no growth right after a
rejection). The first step's eigenpairs are solved cold to their tolerance and its τ starts at
``τ_max``. The trial gradient is the only extra cost of an accepted step (about one gradient on
top of the fused pass of ``1 + 2(k+1)`` gradient-equivalents); the next step recomputes it in
its fused pass.
"""

from __future__ import annotations

import math

import torch

from engine.eigensolver import RitzVectors
from engine.products import LossProblem
from engine.solvers.base import EigTracker, Solver, StepInfo, by_magnitude, spectrum_fields

LOSS_RISE = 1e-12  # a step whose loss rises by more than this, relatively, is always rejected
SAFETY, MIN_FACTOR, MAX_FACTOR = 0.9, 0.2, 2.0


class StepSizeError(FloatingPointError):
    """No acceptable exponential Euler step within ``ee.max_rejections`` trials."""


def flow_factors(lam: torch.Tensor, tau: float) -> torch.Tensor:
    """``φ(λ) = min((1 − e^{−λτ})/λ, τ)``, computed stably (``τ`` itself where ``|λ|τ`` is tiny)."""
    x = lam * tau
    tiny = x.abs() < 1e-12
    safe = torch.where(tiny, torch.ones_like(lam), lam)
    phi = torch.where(tiny, torch.full_like(lam, tau), -torch.expm1(-x) / safe)
    return torch.clamp(phi, max=tau)


def error_factors(lam: torch.Tensor, tau: float) -> torch.Tensor:
    """``τ φ₂(−τλ⁺) = (e^{−x} − 1 + x)/(x λ)`` with ``x = τλ⁺``: ``τ/2`` for ``λ ≤ 0`` (Euler
    directions), ``≈ 1/λ`` for ``τλ ≫ 1``; a series where ``x`` is small."""
    x = lam.clamp_min(0.0) * tau
    small = x < 1e-4
    xs = torch.where(small, torch.ones_like(x), x)
    phi2 = torch.where(small, 0.5 - x / 6.0 + x * x / 24.0, (torch.expm1(-xs) + xs) / (xs * xs))
    return tau * phi2


def exp_euler_update(theta: torch.Tensor, grad: torch.Tensor, values: torch.Tensor,
                     vectors: torch.Tensor | RitzVectors, max_step: float,
                     tau: float | None = None) -> tuple[torch.Tensor, float]:
    """One exponential Euler update from ``k+1`` eigenpairs sorted by decreasing |λ|.

    ``vectors``: ``(P, k+1)`` orthonormal, or factored :class:`RitzVectors` (then the update
    costs one pass over the basis for ``Uᵀg`` and one for ``U c``, never forming ``U``).
    ``tau``: the step (default ``min(max_step, 1/|λ_{k+1}|)``). Returns the new parameters and τ.

    ``θ − τ(g − U Uᵀg) − U(φ ∘ Uᵀg) = θ − τ g − U((φ − τ) ∘ Uᵀg)`` over the k stiff vectors.
    """
    if tau is None:
        tau = step_cap(values, max_step)
    stiff = _stiff(values, vectors)
    proj = stiff.project(grad)
    return theta - tau * grad - stiff.combine((flow_factors(values[:-1], tau) - tau) * proj), tau


def step_cap(values: torch.Tensor, max_step: float) -> float:
    """``min(max_step, 1/|λ_{k+1}|)``: the Euler part stays stable."""
    lam_last = float(values[-1].abs())
    return max_step if lam_last == 0.0 else min(max_step, 1.0 / lam_last)


def _stiff(values: torch.Tensor, vectors: torch.Tensor | RitzVectors) -> RitzVectors:
    if not isinstance(vectors, RitzVectors):
        vectors = RitzVectors(vectors)
    return vectors.select(torch.arange(values.shape[0] - 1, device=values.device))


class ExponentialEuler(Solver):
    name = "ee"

    def __init__(self, problem: LossProblem, tracker: EigTracker, lr: float, *,
                 warmup_iters: int = 0, warmup_factor: float = 1.0, tol: float = 1e-2,
                 max_rejections: int = 30) -> None:
        super().__init__(problem, tracker, lr)
        if tracker.num < 2:
            raise ValueError("exponential Euler needs at least k+1 = 2 eigenpairs")
        self.warmup_iters = warmup_iters
        self.warmup_factor = warmup_factor
        self.tol = tol
        self.max_rejections = max_rejections
        self.tau_next: float | None = None  # the controller's proposal for the next step

    def max_step(self) -> float:
        scale = self.warmup_factor if self.steps_taken < self.warmup_iters else 1.0
        return scale * self.lr

    @classmethod
    def from_config(cls, cfg: dict, problem: LossProblem, tracker: EigTracker) -> "ExponentialEuler":
        ee = cfg["ee"]
        return cls(problem, tracker, cfg["train"]["lr"], warmup_iters=ee["warmup_iters"],
                   warmup_factor=ee["warmup_factor"], tol=ee["tol"], max_rejections=ee["max_rejections"])

    def step(self, theta: torch.Tensor) -> tuple[torch.Tensor, StepInfo]:
        loss, grad, HV = self.grad_and_block_product(theta)
        accuracy = self.problem.last_accuracy
        result = self.tracker.update(theta, first_product=HV)
        iterations = result.iterations
        model = _LocalModel(theta, grad, result, self.max_step())
        tau = model.cap if self.tau_next is None else min(model.cap, self.tau_next)
        rejections = 0
        while True:
            new_theta = model.update(tau)
            new_loss, new_grad = self.problem.loss_and_grad(new_theta)
            err = model.error(tau, new_theta, new_grad)
            rises = not new_loss <= loss + LOSS_RISE * abs(loss)  # (NaN rises)
            if not rises and err <= self.tol:
                break
            rejections += 1
            if rejections > self.max_rejections:
                raise StepSizeError(
                    f"exponential Euler found no acceptable step in {self.max_rejections} trials "
                    f"(last τ = {tau:.3g}, relative local error {err:.3g} for ee.tol = {self.tol:g}, "
                    f"loss {loss:.6g} → {new_loss:.6g})")
            if err > self.tol:
                tau *= min(max(SAFETY * self.tol / err, MIN_FACTOR), 0.5) if math.isfinite(err) else MIN_FACTOR
            else:  # a loss rise the error estimate did not see
                tau *= 0.5
            # the eigenpairs are refined on a rejection (iterations only where a residual is above
            # a tenfold tighter tolerance): no retry is driven by a pair that could be better
            rtol = self.tracker.residual_tol
            if rtol:
                refined = self.tracker.refine(theta, rtol / 10, max(self.tracker.max_iters, 1))
                if refined is not None:
                    iterations += refined.iterations
                    result = refined
                    model = _LocalModel(theta, grad, result, self.max_step())
                    tau = min(tau, model.cap)
        growth = MAX_FACTOR if err == 0 else SAFETY * self.tol / err
        self.tau_next = tau * min(max(growth, MIN_FACTOR), 1.0 if rejections else MAX_FACTOR)
        self.steps_taken += 1
        info = StepInfo(loss=float(loss), grad_norm=float(grad.norm()), step_size=tau, accuracy=accuracy,
                        rejections=rejections, error_estimate=err,
                        **spectrum_fields(result, theta.dtype, iterations))
        return new_theta, info

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = super().state_dict()
        if self.tau_next is not None:
            state["ee_tau_next"] = torch.tensor(self.tau_next, dtype=torch.float64)
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        super().load_state_dict(state)
        if "ee_tau_next" in state:
            self.tau_next = float(state["ee_tau_next"])


class _LocalModel:
    """The local linear model of one exponential Euler step at θ_0: update and error estimate."""

    def __init__(self, theta: torch.Tensor, grad: torch.Tensor, result, max_step: float) -> None:
        # (eig.dtype = float32: the pairs come in float32; the update is done in θ's precision)
        self.values, vectors = by_magnitude(result.values.to(theta.dtype), result.ritz.to(theta.dtype))
        self.theta, self.grad = theta, grad
        self.cap = step_cap(self.values, max_step)
        self.stiff = _stiff(self.values, vectors)
        self.lam = self.values[:-1]
        self.proj = self.stiff.project(grad)  # g_j, j ≤ k

    def update(self, tau: float) -> torch.Tensor:
        phi = flow_factors(self.lam, tau)
        self.phi = phi
        return self.theta - tau * self.grad - self.stiff.combine((phi - tau) * self.proj)

    def error(self, tau: float, new_theta: torch.Tensor, new_grad: torch.Tensor) -> float:
        """``‖τ φ₂(−τA)(ĝ_1 − g_1)‖ / ‖θ_1 − θ_0‖``, the relative local error of the trial step.

        ``r = ĝ_1 − g_1 = (g − g_1) − U(λ⁺φ ∘ Uᵀg)``; with ``c = Uᵀr`` and ``E = τφ₂(−τλ⁺)`` on
        the stiff directions, ``‖e‖² = (τ/2)²‖r − Uc‖² + ‖E ∘ c‖²`` (``U`` orthonormal).
        """
        shift = self.lam.clamp_min(0.0) * self.phi * self.proj  # A(θ_0 − θ_1) in the stiff basis
        r = (self.grad - new_grad) - self.stiff.combine(shift)
        c = self.stiff.project(r)
        half = 0.5 * tau
        E = error_factors(self.lam, tau)
        e_sq = half * half * max(float(r @ r) - float(c @ c), 0.0) + float(((E * c) ** 2).sum())
        step = float((new_theta - self.theta).norm())
        if not (math.isfinite(e_sq) and math.isfinite(step)):
            return math.inf
        return math.sqrt(e_sq) / step if step > 0 else (0.0 if e_sq == 0 else math.inf)
