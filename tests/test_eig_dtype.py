"""``eig.dtype = float32``: float32 eigen-solve, float64 gradient, update and trajectory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tiny_config
from engine.config import load_preset
from engine.criteria import get_criterion
from engine.data import load_training_set
from engine.errors import ConfigError
from engine.model import MLPSpec, init_params
from engine.products import LossProblem
from engine.solvers import make_solver
from engine.store import open_run
from engine.trainer import train


def _problem():
    data = load_training_set("dice", size=64, subset_seed=0, dtype=torch.float64,
                             options={"image_size": 8})
    spec = MLPSpec.from_shape(64, 16, 3, data.num_classes, "elu")
    problem = LossProblem(spec, get_criterion("ce"), data.X, data.y)
    return problem, init_params(spec, gain=1.0, seed=0, dtype=torch.float64)


def _cfg(solver: str, eig_dtype: str) -> dict:
    return load_preset("dice-quick", [f"train.solver={solver}", "train.lr=0.2", f"eig.dtype={eig_dtype}",
                                      "eig.num=0", "eig.every=1", "eig.warm_iters=2"])


def _trajectory(solver: str, eig_dtype: str, steps: int = 6):
    problem, theta = _problem()
    s = make_solver(_cfg(solver, eig_dtype), problem, 4)
    thetas, eigs = [theta], []
    for _ in range(steps):
        theta, info = s.step(theta)
        thetas.append(theta)
        eigs.append(info.eigenvalues)
    return s, thetas, eigs


def test_float32_tracker_on_a_float64_problem():
    solver, thetas, eigs = _trajectory("ee", "float32")
    assert solver.problem.dtype == torch.float64
    assert solver.tracker.problem.dtype == torch.float32
    assert solver.tracker.block.dtype == torch.float32
    assert all(t.dtype == torch.float64 for t in thetas)
    assert all(e.dtype == torch.float64 for e in eigs)
    same, _, _ = _trajectory("ee", "same", steps=0)
    assert same.tracker.problem is same.problem


def test_exp_euler_with_float32_eigenpairs_stays_close_to_float64():
    _, t32, e32 = _trajectory("ee", "float32")
    _, t64, e64 = _trajectory("ee", "same")
    moved = float((t64[-1] - t64[0]).norm())
    assert float((t32[-1] - t64[-1]).norm()) / moved < 1e-4
    for a, b in zip(e32, e64):
        assert float(((a - b).abs() / b.abs()).max()) < 1e-4
    # but not bitwise: the eigenpairs really came from float32 products
    assert not torch.equal(t32[-1], t64[-1])


def test_gd_update_does_not_depend_on_the_eigen_precision():
    _, t32, e32 = _trajectory("gd", "float32")
    _, t64, e64 = _trajectory("gd", "same")
    for a, b in zip(t32, t64):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert float(((e32[-1] - e64[-1]).abs() / e64[-1].abs()).max()) < 1e-4


def test_bad_eig_dtype_is_a_config_error():
    with pytest.raises(ConfigError, match="eig.dtype"):
        tiny_config("eig.dtype=float16")


def test_a_run_with_float32_eigenpairs_records_them(tmp_path):
    result = train(tiny_config("train.solver=ee", "eig.dtype=float32"), tmp_path / "run")
    assert result.status == "finished"
    with open_run(tmp_path / "run") as run:
        s = run.steps()
        assert np.isfinite(s["lambda_H_1"]).all() and np.isfinite(s["tau"]).all()
        # the float32 products are counted: at least k+1 = 7 per exponential Euler step
        assert s["hvp_count"][-1] >= 7 * (len(s["step"]) - 1)
        assert run.config["eig"]["dtype"] == "float32"
