"""The training loop end to end on tiny real runs: recording, snapshots, stopping rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import tiny_config
from engine.data import load_training_set
from engine.model import MLPSpec, forward
from engine.store import open_run, send_control
from engine.trainer import Trainer, train


def test_gd_run_records_every_step_and_snapshots(tmp_path):
    cfg = tiny_config()
    result = train(cfg, tmp_path / "run")
    assert result.status == "finished" and result.steps == 30
    with open_run(tmp_path / "run") as run:
        s = run.steps()
        assert list(s["step"]) == list(range(30))
        assert np.allclose(np.diff(s["t"]), 0.5)  # t advances by η
        assert np.allclose(s["threshold"], 2 / 0.5)
        assert np.allclose(s["tau"], 0.5)
        assert (s["transient"][:10] == 1).all() and (s["transient"][10:] == 0).all()
        assert np.isfinite(s["lambda_H_1"][0])  # eig.every=5 in dice-quick: steps 0, 5, ...
        assert np.isnan(s["lambda_H_1"][1])
        assert np.all(np.diff(s["hvp_count"]) >= 0)
        assert list(run.snapshot_steps()) == [10, 20, 29]  # end of transient, every 10, last
        snap = run.snapshot_at(20)
        L = cfg["model"]["depth"]
        for name in ["lambda_G1", "lambda_HmG1", "overlap_ratio", "EK2", "a_L"] + [
            f"{q}_{i}" for i in range(1, L + 1) for q in ("EK2_layer", "P", "m", "kappa")
        ] + [f"{q}_{i}" for i in range(1, L) for q in ("s", "r")]:
            assert name in snap, name
        assert 0 < snap["overlap_ratio"] <= 1 + 1e-12
        assert snap["P_3"] == 1.0
        assert run.checkpoint_steps() == [0, 10, 20, 29]
        assert run.status == "finished"


def test_checkpoint_and_training_data_reproduce_the_recorded_loss(tmp_path):
    cfg = tiny_config()
    train(cfg, tmp_path / "run")
    with open_run(tmp_path / "run") as run:
        data = run.training_data()
        fresh = load_training_set("dice", size=60, subset_seed=0, options={"image_size": 8})
        assert torch.equal(data["X"], fresh.X) and torch.equal(data["indices"], fresh.indices)
        theta = run.checkpoint(20)["theta"]
        spec = MLPSpec(tuple(run.meta["sizes"]), "elu")
        loss = torch.nn.functional.cross_entropy(forward(spec, theta, data["X"]), data["y"])
        assert math.isclose(float(loss), run.steps()["loss"][20], rel_tol=1e-12)


def test_exponential_euler_records_tau_and_k_plus_one_eigenvalues(tmp_path):
    cfg = tiny_config("train.solver=ee", "train.lr=5.0", "train.max_steps=15")
    train(cfg, tmp_path / "run")
    with open_run(tmp_path / "run") as run:
        assert run.num_eigs == 7  # k = c = 6 outputs
        s = run.steps()
        assert np.all(s["tau"] <= 5.0 + 1e-12)
        assert np.allclose(s["threshold"], 2 / s["tau"])
        assert np.allclose(np.diff(s["t"]), s["tau"][:-1])
        lam = np.stack([s[f"lambda_H_{j}"] for j in range(1, 8)], axis=1)
        assert np.isfinite(lam[:, 0]).all()
        # τ ≤ min(η, 1/|λ_{k+1}|) wherever λ_{k+1} is recorded (positive): the cap of the controller
        ok = np.isfinite(lam[:, -1])
        assert np.all(s["tau"][ok] <= np.minimum(5.0, 1 / lam[ok, -1]) * (1 + 1e-12))
        # every step carries its certificate and its step control
        assert np.isfinite(s["eig_resid"]).all() and (s["eig_iters"] >= 1).all()
        assert np.array_equal(s["eig_refinements"], s["eig_iters"] - 1)
        assert (s["ee_rejections"] >= 0).all() and (s["ee_err"] <= cfg["ee"]["tol"]).all()
        assert np.all(s["loss"][1:] <= s["loss"][:-1] * (1 + 1e-12))


def test_divergence_ends_the_run_cleanly(tmp_path):
    result = train(tiny_config("train.lr=500"), tmp_path / "run")
    assert result.status == "diverged"
    with open_run(tmp_path / "run") as run:
        assert run.status == "diverged" and run.num_steps() == result.steps
        assert "loss" in run.status_message


def test_target_loss_stops_the_run(tmp_path):
    result = train(tiny_config("train.target_loss=1.7", "train.max_steps=500"), tmp_path / "run")
    assert result.status == "finished" and "target loss" in result.message
    with open_run(tmp_path / "run") as run:
        loss = run.steps()["loss"]
        assert loss[-1] <= 1.7 < loss[-2]


def test_stop_on_the_control_channel_interrupts(tmp_path):
    out = tmp_path / "run"
    seen = []

    def on_step(row):
        seen.append(row["step"])
        if row["step"] == 4:
            send_control(out, "stop")

    result = train(tiny_config(), out, on_step=on_step)
    assert result.status == "interrupted"
    with open_run(out) as run:
        assert run.status == "interrupted" and run.num_steps() == 5


def test_keyboard_interrupt_keeps_the_data(tmp_path):
    out = tmp_path / "run"

    def on_step(row):
        if row["step"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(), out, on_step=on_step)
    with open_run(out) as run:
        assert run.status == "interrupted" and run.num_steps() == 4


def test_rk4_step_matches_a_fine_flow(tmp_path):
    trainer = Trainer(tiny_config("train.solver=rk4", "train.rk4_alpha=0.05"), tmp_path / "x")
    theta = trainer.theta
    theta1, info = trainer.solver.step(theta)
    assert info.step_size <= 0.05 / float(info.eigenvalues.abs().max()) + 1e-15


def test_recorded_accuracy_is_the_accuracy_at_the_rows_parameters(tmp_path):
    """The accuracy taken from the solver's own gradient pass equals a separate evaluation."""
    for solver in ("gd", "ee", "rk4"):
        trainer = Trainer(tiny_config(f"train.solver={solver}"), tmp_path / solver)
        theta = trainer.theta
        for _ in range(3):
            new, info = trainer.solver.step(theta)
            assert info.accuracy == trainer.problem.accuracy(theta)
            theta = new
