"""Solver interface and the warm-started top-eigenpair tracker shared by the solvers."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from engine.eigensolver import EigResult, RitzVectors, refine_ritz, subspace_iteration
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
    eig_residual: float | None = None  # largest relative residual of the K Ritz pairs the step used
    eig_refinements: int = 0  # Rayleigh–Ritz iterations beyond the first (free) one
    rejections: int | None = None  # exponential Euler: trial steps rejected before this one
    error_estimate: float | None = None  # exponential Euler: local error of the accepted step, relative

    @property
    def threshold(self) -> float:
        """The stability threshold 2/η (GD) or 2/τ."""
        return 2.0 / self.step_size


class EigTracker:
    """Top-K eigenpairs of H by warm-started block subspace iteration (spec §5), certified.

    The block (K + ``oversample`` columns) is kept between calls. A warm call's first
    Rayleigh–Ritz iteration uses the solver's fused gradient-and-HVP pass (``first_product``),
    so a step whose warm start is already accurate costs the floor of spec §5. The call then
    iterates while the largest relative residual ``‖Hu − λu‖/|λ|`` of the K Ritz pairs
    (computed for free from the Gram matrices) exceeds ``residual_tol``: at most ``max_iters``
    iterations warm, ``cold_max_iters`` for the first (cold) call. Iterations beyond the first
    are *refinements*; :attr:`last_residual` and :attr:`last_iterations` are the certificate
    of the pairs the step uses. ``residual_tol=None`` falls back to the change rule (stop when
    the top Ritz values moved by less than ``tol``, relatively), which certifies nothing.
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
        self.residuals: torch.Tensor | None = None
        self.subspace: tuple[torch.Tensor, torch.Tensor] | None = None

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

    def _solve(self, theta: torch.Tensor, first_product: torch.Tensor | None, max_iters: int,
               residual_tol: float | None) -> EigResult:
        matmat = lambda V: self.problem.hvp(theta, V)  # noqa: E731
        V = self.current_block(theta)
        if residual_tol is None:  # the change rule: subspace iteration, nothing certified
            result = subspace_iteration(matmat, V, k=self.num, tol=self.tol, max_iters=max_iters,
                                        first_product=first_product, prev_values=self.values,
                                        assume_orthonormal=True)
        else:  # one Rayleigh–Ritz on the block, then refinements while a residual is too large
            W = matmat(V) if first_product is None else first_product
            result = refine_ritz(matmat, V, W, k=self.num, residual_tol=residual_tol, max_iters=max_iters - 1,
                                 block_size=self.block_size)
            result.iterations += 1
        self._keep(result)
        return result

    def _keep(self, result: EigResult) -> None:
        self.block, self.values, self.ritz, self.residuals = result.block, result.values, result.ritz, result.residuals
        self.subspace = result.subspace  # (the work of this θ: dropped by the next call)

    def update(self, theta: torch.Tensor, first_product: torch.Tensor | None = None) -> EigResult:
        """Refine the eigenpairs at ``theta``; ``first_product`` is ``H @ current_block()`` if known.

        ``theta`` is cast to the tracker's precision; the result is in that precision. Raises
        :class:`~engine.eigensolver.NonFiniteError` when a product is NaN or infinite.
        """
        theta = self.cast(theta)
        cold = self.values is None
        return self._solve(theta, first_product, self.cold_max_iters if cold else self.max_iters,
                           self.residual_tol)

    def refine(self, theta: torch.Tensor, residual_tol: float, max_iters: int) -> EigResult | None:
        """More iterations at ``theta`` (the same point as the last :meth:`update`) until every
        relative residual is at most ``residual_tol``; ``None`` (no products) if it already is.
        ``iterations`` of the result counts only these refinements."""
        if self.subspace is None or float(self.residuals.max()) <= residual_tol:
            return None
        theta = self.cast(theta)
        matmat = lambda V: self.problem.hvp(theta, V)  # noqa: E731
        result = refine_ritz(matmat, *self.subspace, k=self.num, residual_tol=residual_tol, max_iters=max_iters,
                             block_size=self.block_size)
        self._keep(result)
        return result

    @property
    def last_residual(self) -> float:
        """Largest relative residual of the K pairs of the last call (NaN before the first)."""
        return math.nan if self.residuals is None else float(self.residuals.max())

    @property
    def vectors(self) -> torch.Tensor | None:
        """The last Ritz vectors, ``(P, num)`` (formed on first use)."""
        return None if self.ritz is None else self.ritz.dense()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The warm start and the last values (the next call is warm iff they exist)."""
        if self.block is None:
            return {}
        state = {"eig_block": self.block}
        if self.values is not None:
            state["eig_values"] = self.values
        if self.residuals is not None:
            state["eig_residuals"] = self.residuals
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if "eig_block" in state:
            self.block = state["eig_block"]
        if "eig_values" in state:
            self.values = state["eig_values"]
        if "eig_residuals" in state:
            self.residuals = state["eig_residuals"]
        self.ritz = self.subspace = None  # not kept: the next call starts from the block


def spectrum_fields(result: EigResult, dtype: torch.dtype, iterations: int | None = None) -> dict:
    """The :class:`StepInfo` fields of the pairs a step used (``iterations``: all tracker
    iterations at this θ, when more than ``result``'s, e.g. after an exponential Euler rejection)."""
    iterations = result.iterations if iterations is None else iterations
    return {"eigenvalues": result.values.to(dtype), "eig_iterations": iterations,
            "eig_residual": float(result.residuals.max()) if result.residuals is not None else None,
            "eig_refinements": iterations - 1}


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

    # scalar state of a subclass, saved as float64 tensors when set: {state key: attribute}
    STATE_SCALARS: dict[str, str] = {}

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Everything that decides the rest of the trajectory, as tensors (for checkpoints and
        resume): taken before :meth:`step` from θ_s (the trainer's checkpoints), a solver loaded
        with it takes step ``s`` and every later one exactly as this one does."""
        state = {**self.tracker.state_dict(), "steps_taken": torch.tensor(self.steps_taken, dtype=torch.int64)}
        for key, attr in self.STATE_SCALARS.items():
            if getattr(self, attr) is not None:
                state[key] = torch.tensor(getattr(self, attr), dtype=torch.float64)
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.tracker.load_state_dict(state)
        if "steps_taken" in state:
            self.steps_taken = int(state["steps_taken"])
        for key, attr in self.STATE_SCALARS.items():
            if key in state:
                setattr(self, attr, float(state[key]))
