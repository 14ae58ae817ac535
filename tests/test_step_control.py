"""Exponential Euler with step-size control, per-step eigen certificates, and resumable solver state.

The climbing case is a real small run (the paper net's init on 100 Dice images at width 32,
η = 0.5) whose loss rose at 6 of its first 12 steps before the controller existed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import tiny_config
from engine.config import load_preset
from engine.products import LossProblem
from engine.solvers import make_solver
from engine.solvers.exp_euler import error_factors, exp_euler_update
from engine.store import open_run
from engine.trainer import Trainer, train
from tests.dense_reference import dense_gradient, dense_hessian

CLIMBS = ["model.width=32", "data.size=100", "data.image_size=8", "train.lr=0.5", "train.max_steps=12",
          "metrics.layer_metrics=false"]


def _trained_steps(cfg, path):
    train(cfg, path)
    with open_run(path) as run:
        return run.steps()


def _run_steps(solver, theta, steps):
    infos = []
    for _ in range(steps):
        theta, info = solver.step(theta)
        infos.append(info)
    return theta, infos


def test_error_factors_interpolate_between_heun_and_the_stiff_limit():
    tau = 0.1
    lam = torch.tensor([-3.0, 0.0, 1e-6, 10.0, 1e5], dtype=torch.float64)
    E = error_factors(lam, tau)
    assert E[0] == E[1] == pytest.approx(tau / 2)  # Euler directions: the Heun–Euler estimate
    assert float(E[2]) == pytest.approx(tau / 2, rel=1e-6)
    x = 10.0 * tau
    assert float(E[3]) == pytest.approx((math.exp(-x) - 1 + x) / (x * 10.0), rel=1e-12)
    assert float(E[4]) == pytest.approx(1 / 1e5, rel=1e-3)  # ≈ 1/λ when τλ ≫ 1


def test_loss_never_rises_on_a_run_that_climbed_and_rejections_are_recorded(tmp_path):
    cfg = load_preset("dice-ce", [*CLIMBS, "train.max_steps=20"])  # the faithful Dice: 20 steps, loss ×0.45
    result = train(cfg, tmp_path / "run")
    assert result.status == "finished"
    with open_run(tmp_path / "run") as run:
        s = run.steps()
    loss = s["loss"]
    assert np.all(loss[1:] <= loss[:-1] * (1 + 1e-12))
    assert s["ee_rejections"].sum() >= 1  # the controller had to reject trials here
    assert (s["ee_err"] <= cfg["ee"]["tol"]).all()
    assert np.all(s["tau"] <= cfg["train"]["lr"])
    assert loss[-1] < 0.6 * loss[0]


def _dense_rule(problem, theta, tau, k1, order):
    """One step of the solver's rule with exact dense eigenpairs and autograd gradients: the
    exponential Euler step, then (order 2) its ETD2RK correction τφ₂(−τA)(ĝ_1 − g_1)."""
    lam, vec = torch.linalg.eigh(dense_hessian(problem, theta))
    idx = torch.argsort(lam.abs(), descending=True)[: k1 - 1]
    lam, U = lam[idx], vec[:, idx]
    grad = dense_gradient(problem, theta)[1]
    new, _ = exp_euler_update(theta, grad, torch.cat([lam, lam[-1:] * 0]), torch.cat([U, U[:, :1] * 0], 1),
                              math.inf, tau=tau)
    if order == 1:
        return new
    lp = lam.clamp_min(0)
    A = U @ torch.diag(lp) @ U.T
    r = (grad - dense_gradient(problem, new)[1]) + A @ (new - theta)
    x = lp * tau
    phi2 = torch.where(x < 1e-4, 0.5 - x / 6, (torch.expm1(-x) + x) / x.clamp_min(1e-300) ** 2)
    c = U.T @ r
    return new + 0.5 * tau * (r - U @ c) + U @ (tau * phi2 * c)


@pytest.mark.parametrize("order", [1, 2])
def test_the_trajectory_follows_the_exact_dense_rule(order):
    """The solver's trajectory (tracked, certified eigenpairs) against its rule with exact dense
    eigenpairs, replayed with the same step sizes: within 5e-3 of the displacement."""
    cfg = tiny_config("train.solver=ee", "train.lr=2.0", "metrics.layer_metrics=false",
                      "data.size=40", "model.width=10", f"ee.order={order}")
    trainer = Trainer(cfg, "/nonexistent")
    problem, solver = trainer.problem, trainer.solver
    theta = exact = trainer.theta
    for _ in range(8):
        theta, info = solver.step(theta)
        exact = _dense_rule(problem, exact, info.step_size, solver.tracker.num, order)
    moved = float((exact - trainer.theta).norm())
    assert float((theta - exact).norm()) / moved < 5e-3


def _resume_check(cfg, steps=6, split=3):
    trainer = Trainer(cfg, "/nonexistent")
    problem, theta0 = trainer.problem, trainer.theta
    a = make_solver(cfg, problem, trainer.num_eigs)
    theta_mid, _ = _run_steps(a, theta0, split)
    state = {k: v.clone() for k, v in a.state_dict().items()}
    theta_end, infos = _run_steps(a, theta_mid, steps - split)
    b = make_solver(cfg, problem, trainer.num_eigs)
    b.load_state_dict(state)
    theta_res, infos_res = _run_steps(b, theta_mid, steps - split)
    assert float((theta_res - theta_end).norm()) <= 1e-10 * float(theta_end.norm())
    assert [i.step_size for i in infos] == [i.step_size for i in infos_res]
    return state


@pytest.mark.parametrize("solver", ["ee", "gd", "rk4"])
def test_solver_state_resumes_the_trajectory(solver):
    cfg = tiny_config(f"train.solver={solver}", "metrics.layer_metrics=false", "eig.every=2")
    state = _resume_check(cfg)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert {"eig_block", "eig_values", "steps_taken"} <= set(state)
    if solver == "ee":
        assert "ee_tau_next" in state


def test_per_step_certificate_and_refinements(tmp_path):
    cfg = tiny_config("train.solver=ee", "train.max_steps=8", "metrics.layer_metrics=false",
                      "eig.residual_tol=1e-3", "eig.warm_iters=30", "eig.max_iters=60")
    train(cfg, tmp_path / "run")
    with open_run(tmp_path / "run") as run:
        s = run.steps()
        block = run.checkpoint(0)
    assert (s["eig_resid"] <= 1e-3).all()  # certified, refined where the warm start was not enough
    assert s["eig_refinements"].sum() > 0
    # the certificate is honest: recompute the residuals of the recorded pairs at θ_0 ...
    trainer = Trainer(cfg, "/nonexistent")
    H = dense_hessian(trainer.problem, block["theta"])
    lam, vec = torch.linalg.eigh(H)
    top = lam[torch.argsort(lam.abs(), descending=True)[:7]]
    recorded = np.array([s[f"lambda_H_{j}"][0] for j in range(1, 8)])  # by magnitude, NaN if negative
    ok = np.isfinite(recorded)
    want = top.numpy()
    # Ritz values err by at most ~residual² · ‖H‖/gap; 1e-3 residuals give ≤ 1e-4 here
    assert np.allclose(recorded[ok], want[ok], rtol=1e-4)


def test_an_unreachable_residual_tolerance_is_recorded_not_hidden(tmp_path):
    s = _trained_steps(tiny_config("train.solver=ee", "train.max_steps=4", "metrics.layer_metrics=false",
                                   "eig.residual_tol=1e-14", "eig.warm_iters=2", "eig.max_iters=3"),
                       tmp_path / "run")
    assert (s["eig_resid"] > 1e-14).all()  # the cap was reached: the residual says so
    # at most the cap per call: eig.max_iters cold, eig.warm_iters warm, and per rejection
    assert (s["eig_iters"] <= np.where(s["step"] == 0, 3, 2) + 2 * s["ee_rejections"]).all()


def test_no_acceptable_step_ends_the_run_diverged(tmp_path):
    cfg = tiny_config("train.solver=ee", "ee.tol=1e-15", "ee.max_rejections=2", "metrics.layer_metrics=false")
    result = train(cfg, tmp_path / "run")
    assert result.status == "diverged"
    with open_run(tmp_path / "run") as run:
        assert run.status == "diverged"
        assert "no acceptable step in 2 trials" in run.status_message


def test_a_non_finite_product_ends_the_run_diverged(tmp_path, monkeypatch):
    original = LossProblem.grad_and_hvp

    calls = []

    def poisoned(self, theta, V):  # the third distinct θ gets a NaN product
        loss, grad, HV = original(self, theta, V)
        if not any(torch.equal(theta, t) for t in calls):
            calls.append(theta.clone())
        if len(calls) >= 3:
            HV = HV.clone()
            HV[0, 0] = float("nan")
        return loss, grad, HV

    monkeypatch.setattr(LossProblem, "grad_and_hvp", poisoned)
    result = train(tiny_config("train.solver=ee", "metrics.layer_metrics=false"), tmp_path / "run")
    assert result.status == "diverged"
    with open_run(tmp_path / "run") as run:
        assert run.status == "diverged" and "NaN or infinite" in run.status_message
        assert run.num_steps() >= 1


@pytest.mark.parametrize("setting", ["ee.tol=0", "ee.tol=1.5", "ee.max_rejections=0", "metrics.eig_tol=0",
                                     "metrics.eig_tol=2", "eig.residual_tol=-1", "metrics.snapshot_eig_iters=0"])
def test_new_settings_are_validated(setting):
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match=setting.split("=")[0]):
        tiny_config(setting)


def test_a_checkpoint_continues_the_recorded_trajectory(tmp_path):
    """A checkpoint holds θ_s and the solver state before step s (the controller's proposed τ,
    the warm eigen-block and its residuals): a fresh solver loaded from it reproduces the
    recorded rows s, s+1, ... (loss, τ, t) to 1e-10."""
    cfg = tiny_config("train.solver=ee", "train.max_steps=16", "metrics.layer_metrics=false")
    steps = _trained_steps(cfg, tmp_path / "run")
    with open_run(tmp_path / "run") as run:
        ckpt = run.checkpoint(10)
    assert "ee_tau_next" in ckpt and "eig_residuals" in ckpt
    trainer = Trainer(cfg, "/nonexistent")
    solver = make_solver(cfg, trainer.problem, trainer.num_eigs)
    solver.load_state_dict({k: v for k, v in ckpt.items() if k not in ("theta", "hvp_count")})
    theta, t = ckpt["theta"], float(steps["t"][10])
    for s in range(10, 16):
        assert t == pytest.approx(steps["t"][s], rel=1e-12)
        theta, info = solver.step(theta)
        assert info.loss == pytest.approx(steps["loss"][s], rel=1e-10)
        assert info.step_size == pytest.approx(steps["tau"][s], rel=1e-10)
        t += info.step_size
