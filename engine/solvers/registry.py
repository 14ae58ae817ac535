"""The solver registry: builds the solver a config names (``train.solver``).

The solver modules depend only on :mod:`engine.solvers.base`; this module depends on all of them,
so the package has no import cycle (an import-linter contract in ``pyproject.toml`` keeps it so).
"""

from __future__ import annotations

import torch

from engine.products import LossProblem
from engine.solvers.base import EigTracker, Solver
from engine.solvers.exp_euler import ExponentialEuler
from engine.solvers.gd import GradientDescent
from engine.solvers.rk4 import RK4Flow

SOLVERS: dict[str, type[Solver]] = {
    GradientDescent.name: GradientDescent,
    ExponentialEuler.name: ExponentialEuler,
    RK4Flow.name: RK4Flow,
}


def make_solver(cfg: dict, problem: LossProblem, num_eigs: int) -> Solver:
    """The solver named by ``cfg['train']['solver']`` tracking ``num_eigs`` eigenvalues."""
    eig = cfg["eig"]
    eig_problem = problem.with_dtype(torch.float32) if eig["dtype"] == "float32" else problem
    tracker = EigTracker(eig_problem, num_eigs, oversample=eig["oversample"], tol=eig["tol"],
                         max_iters=eig["warm_iters"], cold_max_iters=eig["max_iters"],
                         seed=cfg["train"]["seed"],
                         residual_tol=eig["residual_tol"] or None)
    return SOLVERS[cfg["train"]["solver"]].from_config(cfg, problem, tracker)
