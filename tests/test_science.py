"""Science checks: GD reaches the edge of stability; exponential Euler follows gradient flow."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tiny_config
from engine.config import load_preset
from engine.solvers.base import EigTracker
from engine.solvers.exp_euler import ExponentialEuler
from engine.solvers.rk4 import rk4_step
from engine.store import open_run
from engine.trainer import Trainer, train


def _gd_run(tmp_path, preset: str, steps: int) -> tuple[dict, float]:
    """The step columns of a GD run of ``preset`` (no snapshots) and its threshold 2/η."""
    cfg = load_preset(preset, [f"train.max_steps={steps}", "metrics.layer_metrics=false"])
    train(cfg, tmp_path / "run")
    with open_run(tmp_path / "run") as run:
        return run.steps(), 2 / cfg["train"]["lr"]


@pytest.mark.slow
def test_gd_on_dice_quick_sharpens_to_two_over_eta(tmp_path):
    """Progressive sharpening: λ1 starts well below 2/η, rises to it, then hovers around it."""
    s, threshold = _gd_run(tmp_path, "dice-quick", 80)
    lam = s["lambda_H_1"]
    measured = np.isfinite(lam)
    assert measured.sum() >= 15
    assert lam[0] < 0.5 * threshold
    assert np.nanmax(lam) > 0.95 * threshold
    late = lam[40:][np.isfinite(lam[40:])]
    # at the edge: it neither keeps growing nor falls back to where it started
    assert 0.6 * threshold < np.median(late) < 1.6 * threshold
    assert s["loss"][-1] < 0.5 * s["loss"][0]


def _flow_to(problem, theta, t_end, lam1):
    """Reference gradient flow to time ``t_end`` by RK4 with τ ≤ 0.02/λ1."""
    n = int(np.ceil(t_end * lam1 / 0.02))
    tau = t_end / n
    for _ in range(n):
        theta = rk4_step(problem, theta, tau)
    return theta


def test_exponential_euler_follows_the_gradient_flow(tmp_path):
    """With step-size control, exponential Euler tracks the flow (RK4 with τ ≤ 0.02/λ1) to
    about its local tolerance even when its maximum step is past GD's threshold 2/λ1."""
    trainer = Trainer(tiny_config("train.solver=ee"), tmp_path / "x")
    problem, theta0 = trainer.problem, trainer.theta
    lam1 = float(torch.linalg.eigvalsh(torch.autograd.functional.hessian(
        lambda th: torch.nn.functional.cross_entropy(
            __import__("engine.model", fromlist=["forward"]).forward(trainer.spec, th, problem.X), problem.y),
        theta0))[-1])
    tracker = EigTracker(problem, 7, tol=1e-10, max_iters=50, cold_max_iters=300, residual_tol=1e-3)
    ee = ExponentialEuler(problem, tracker, 3.0 / lam1, tol=1e-2)
    theta, t, steps, taus, losses = theta0, 0.0, 12, [], []
    for _ in range(steps):
        theta, info = ee.step(theta)
        t += info.step_size
        taus.append(info.step_size)
        losses.append(info.loss)
    flow = _flow_to(problem, theta0, t, lam1 * 1.5)
    err_ee = float((theta - flow).norm()) / float((flow - theta0).norm())
    assert err_ee < 2e-2, err_ee
    assert all(b <= a for a, b in zip(losses, losses[1:]))


@pytest.mark.slow
def test_gd_on_real_digits_reaches_two_over_eta(tmp_path):
    """Real data, no download: scikit-learn's digits under GD sharpen up to the threshold."""
    s, threshold = _gd_run(tmp_path, "digits-ce-gd", 40)
    # λ1(H) at the initialisation is 0.670 (eigsh to 1e-10; a −0.656 follows it in magnitude):
    # a third of 2/η (the uncertified first solve used to record less than a quarter)
    assert s["lambda_H_1"][0] < 0.4 * threshold
    assert np.nanmax(s["lambda_H_1"]) >= 0.95 * threshold


@pytest.mark.slow
def test_showcase_shows_the_papers_mechanism(tmp_path):
    """dice-showcase under exponential Euler: λ1 rises ≥ 5× after the transient, P^1 carries the
    rise (its growth exceeds the product of the other four factors'), the loss never rises."""
    from engine.analysis.claims import claims_for_run, run_summary

    cfg = load_preset("dice-showcase", ["train.max_steps=100"])  # the peak of λ1 comes near step 77
    train(cfg, tmp_path / "run")
    with open_run(tmp_path / "run") as run:
        summary = run_summary(run)
        report = claims_for_run(run)
        loss = run.steps()["loss"]
    assert summary["rise"] >= 5.0, summary
    assert summary["P1_growth"] > summary["others_growth"], summary
    assert {c.key: c for c in report.claims}["factor_P_1"].holds
    assert (loss[1:] <= loss[:-1] * (1 + 1e-9)).all()
