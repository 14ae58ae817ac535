"""Fixed-learning-rate gradient descent: ``θ ← θ − η ∇L(θ)``, threshold 2/η (spec §6)."""

from __future__ import annotations

import torch

from engine.solvers.base import EigTracker, Solver, StepInfo, spectrum_fields
from engine.products import LossProblem


class GradientDescent(Solver):
    """GD; on every ``eig_every``-th step the gradient and the HVPs share one fused pass."""

    name = "gd"

    def __init__(self, problem: LossProblem, tracker: EigTracker, lr: float, *, eig_every: int = 1) -> None:
        super().__init__(problem, tracker, lr)
        self.eig_every = eig_every

    @classmethod
    def from_config(cls, cfg: dict, problem: LossProblem, tracker: EigTracker) -> "GradientDescent":
        return cls(problem, tracker, cfg["train"]["lr"], eig_every=cfg["eig"]["every"])

    def step(self, theta: torch.Tensor) -> tuple[torch.Tensor, StepInfo]:
        spectrum = {}
        if self.steps_taken % self.eig_every == 0:
            loss, grad, HV = self.grad_and_block_product(theta)
            spectrum = spectrum_fields(self.tracker.update(theta, first_product=HV), theta.dtype)
        else:
            loss, grad = self.problem.loss_and_grad(theta)
        accuracy = self.problem.last_accuracy
        self.steps_taken += 1
        info = StepInfo(loss=float(loss), grad_norm=float(grad.norm()), step_size=self.lr,
                        eigenvalues=spectrum.pop("eigenvalues", None), accuracy=accuracy, **spectrum)
        return theta - self.lr * grad, info
