"""Reference gradient flow ``dθ/dt = −∇L(θ)`` by classical RK4 with ``τ = α/λ1(H)`` (spec §6).

As in Cohen et al., the step is a fraction ``α`` of the local curvature time scale; λ1 is
re-estimated every ``eig_every`` steps (warm-started). ``τ`` never exceeds ``lr``.
"""

from __future__ import annotations

import torch

from engine.products import LossProblem
from engine.solvers.base import EigTracker, Solver, StepInfo, spectrum_fields


class RK4Flow(Solver):
    name = "rk4"
    STATE_SCALARS = {"rk4_lambda1": "lambda1"}  # the λ1 of the last spectrum step (eig.every)

    def __init__(self, problem: LossProblem, tracker: EigTracker, lr: float, *, alpha: float = 0.1,
                 eig_every: int = 1) -> None:
        super().__init__(problem, tracker, lr)
        self.alpha = alpha
        self.eig_every = eig_every
        self.lambda1: float | None = None

    @classmethod
    def from_config(cls, cfg: dict, problem: LossProblem, tracker: EigTracker) -> "RK4Flow":
        return cls(problem, tracker, cfg["train"]["lr"], alpha=cfg["train"]["rk4_alpha"],
                   eig_every=cfg["eig"]["every"])

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        super().load_state_dict(state)
        if self.tracker.values is not None:  # λ1 of the last eigen step, as step() set it
            self.lambda1 = float(self.tracker.values.abs().max())

    def step(self, theta: torch.Tensor) -> tuple[torch.Tensor, StepInfo]:
        spectrum = {}
        if self.steps_taken % self.eig_every == 0 or self.lambda1 is None:
            loss, k1, HV = self.grad_and_block_product(theta)
            result = self.tracker.update(theta, first_product=HV)
            spectrum = spectrum_fields(result, theta.dtype)
            self.lambda1 = float(result.values.abs().max())
        else:
            loss, k1 = self.problem.loss_and_grad(theta)
        accuracy = self.problem.last_accuracy
        tau = self.lr if self.lambda1 == 0.0 else min(self.lr, self.alpha / self.lambda1)
        new_theta = rk4_step(self.problem, theta, tau, k1)
        self.steps_taken += 1
        info = StepInfo(loss=float(loss), grad_norm=float(k1.norm()), step_size=tau,
                        eigenvalues=spectrum.pop("eigenvalues", None), accuracy=accuracy, **spectrum)
        return new_theta, info


def rk4_step(problem: LossProblem, theta: torch.Tensor, tau: float, k1: torch.Tensor | None = None) -> torch.Tensor:
    """One RK4 step of ``dθ/dt = −∇L`` of length ``tau`` (``k1`` = ∇L(θ) if already known)."""
    if k1 is None:
        k1 = problem.loss_and_grad(theta)[1]
    k2 = problem.loss_and_grad(theta - 0.5 * tau * k1)[1]
    k3 = problem.loss_and_grad(theta - 0.5 * tau * k2)[1]
    k4 = problem.loss_and_grad(theta - tau * k3)[1]
    return theta - tau / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
