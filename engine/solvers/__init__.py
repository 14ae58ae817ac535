"""The solvers of spec §6: fixed-LR gradient descent, exponential Euler and an RK4 reference flow.

Each solver takes one step from ``theta`` and reports what the run records for that step.
"""

from engine.solvers.base import Solver, StepInfo
from engine.solvers.exp_euler import StepSizeError
from engine.solvers.registry import SOLVERS, make_solver

__all__ = ["SOLVERS", "Solver", "StepInfo", "StepSizeError", "make_solver"]
