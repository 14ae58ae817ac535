"""Solver interface and the warm-started top-eigenpair tracker shared by the solvers."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.eigensolver import EigResult, RitzVectors, subspace_iteration
from engine.products import LossProblem


@dataclass
class StepInfo:
    """What one step measured at the parameters it started from."""

    loss: float
    grad_norm: float
    step_size: float  # the time step actually taken: η for GD, τ for exponential Euler / RK4
    eigenvalues: torch.Tensor | None  # top-K Ritz values of H by magnitude (may be negative); None if not computed
    eig_iterations: int = 0
    accuracy: float | None = None  # training accuracy at the step's θ, when the pass provided it

    @property
    def threshold(self) -> float:
        """The stability threshold 2/η (GD) or 2/τ."""
        return 2.0 / self.step_size


class EigTracker:
    """Top-K eigenpairs of H by warm-started block subspace iteration (spec §5).

    The block (K + ``oversample`` columns) is kept between calls. A warm call makes at most
    ``max_iters`` iterations (default 1: the products come from the solver's fused
    gradient-and-HVP pass, ``first_product``, so a step costs the floor of spec §5 — one
    subspace iteration per step, continued along the trajectory). The first (cold) call may
    use up to ``cold_max_iters``. Either stops early at ``tol`` / ``residual_tol``.
    """

    def __init__(self, problem: LossProblem, num: int, *, oversample: int = 0, tol: float = 1e-3,
                 max_iters: int = 1, cold_max_iters: int = 20, seed: int = 0,
                 residual_tol: float | None = None) -> None:
        self.problem = problem
        self.num = num
        self.block_size = num + oversample
        self.tol = tol
        self.max_iters = max_iters
        self.cold_max_iters = cold_max_iters
        self.seed = seed
        self.residual_tol = residual_tol
        self.block: torch.Tensor | None = None
        self.values: torch.Tensor | None = None
        self.ritz: RitzVectors | None = None

    def cast(self, theta: torch.Tensor) -> torch.Tensor:
        """``theta`` in the precision of the tracker's products (``eig.dtype``)."""
        return theta.to(self.problem.dtype)

    def current_block(self, like: torch.Tensor) -> torch.Tensor:
        """The block to multiply next: the warm start, or a seeded random orthonormal block."""
        if self.block is None:
            gen = torch.Generator().manual_seed(self.seed + 7919)
            V = torch.randn(like.numel(), self.block_size, generator=gen, dtype=torch.float64)
            self.block = torch.linalg.qr(V).Q.to(dtype=like.dtype, device=like.device)
        elif self.block.dtype != like.dtype:  # e.g. a checkpoint written with another eig.dtype
            self.block = self.block.to(like.dtype)
        return self.block

    def update(self, theta: torch.Tensor, first_product: torch.Tensor | None = None) -> EigResult:
        """Refine the eigenpairs at ``theta``; ``first_product`` is ``H @ current_block()`` if known.

        ``theta`` is cast to the tracker's precision; the result is in that precision.
        """
        theta = self.cast(theta)
        V0 = self.current_block(theta)
        cold = self.values is None
        result = subspace_iteration(
            lambda V: self.problem.hvp(theta, V),
            V0,
            k=self.num,
            tol=self.tol,
            max_iters=self.cold_max_iters if cold else self.max_iters,
            first_product=first_product,
            prev_values=self.values,
            residual_tol=self.residual_tol,
            assume_orthonormal=True,
        )
        self.block, self.values, self.ritz = result.block, result.values, result.ritz
        return result

    @property
    def vectors(self) -> torch.Tensor | None:
        """The last Ritz vectors, ``(P, num)`` (formed on first use)."""
        return None if self.ritz is None else self.ritz.dense()

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {} if self.block is None else {"eig_block": self.block}
        if self.values is not None:  # warm vs cold next call, and its first convergence test
            state["eig_values"] = self.values
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if "eig_block" in state:
            self.block = state["eig_block"]
        if "eig_values" in state:
            self.values = state["eig_values"]


def by_magnitude(values: torch.Tensor, vectors):
    """Eigenpairs sorted by decreasing |λ|; ``vectors`` a ``(P, k)`` tensor or :class:`RitzVectors`."""
    order = torch.argsort(values.abs(), descending=True)
    if isinstance(vectors, RitzVectors):
        return values[order], vectors.select(order)
    return values[order], vectors[:, order]


class Solver:
    """One optimisation step at a time; subclasses implement :meth:`step`."""

    name = ""

    def __init__(self, problem: LossProblem, tracker: EigTracker, lr: float) -> None:
        self.problem = problem
        self.tracker = tracker
        self.lr = lr
        self.steps_taken = 0

    @classmethod
    def from_config(cls, cfg: dict, problem: LossProblem, tracker: EigTracker) -> "Solver":
        """The solver with the settings of a resolved config (``train``, ``eig``, ``ee``)."""
        return cls(problem, tracker, cfg["train"]["lr"])

    def step(self, theta: torch.Tensor) -> tuple[torch.Tensor, StepInfo]:
        raise NotImplementedError

    @property
    def hvp_count(self) -> int:
        """Curvature products so far, in the problem's and (``eig.dtype``) the tracker's precision."""
        count = self.problem.hvp_count
        if self.tracker.problem is not self.problem:
            count += self.tracker.problem.hvp_count
        return count

    def grad_and_block_product(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(L(θ), ∇L(θ), H·block)`` for the tracker's current block.

        One fused pass when the tracker works in the problem's precision (the floor of a step);
        with ``eig.dtype = float32`` on a float64 problem, a float64 gradient pass plus a fused
        pass on the float32 copy (whose gradient is not used).
        """
        tracker = self.tracker
        if tracker.problem is self.problem:
            return self.problem.grad_and_hvp(theta, tracker.current_block(theta))
        loss, grad = self.problem.loss_and_grad(theta)
        low = tracker.cast(theta)
        _, _, HV = tracker.problem.grad_and_hvp(low, tracker.current_block(low))
        return loss, grad, HV

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {**self.tracker.state_dict(), "steps_taken": torch.tensor(self.steps_taken)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.tracker.load_state_dict(state)
        if "steps_taken" in state:
            self.steps_taken = int(state["steps_taken"])
