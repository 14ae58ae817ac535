"""Certified snapshot eigenvalues against a dense eigendecomposition (float64, a few thousand
parameters): λ1(G) by the GGN route and λ1(H−G) in both senses, at an early and a late snapshot
of a real small run; each recorded residual is checked to be honest (Krylov–Bogoliubov: an
eigenvalue lies within ``residual · |θ|`` of the value), and an unreachable tolerance is
recorded as unconverged.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

import engine.snapshot
from engine.config import load_preset
from engine.store import open_run
from engine.trainer import train
from tests.dense_reference import dense_ggn, dense_hessian

SMALL = ["model.depth=3", "model.width=24", "data.image_size=8", "data.size=60", "train.max_steps=15",
         "metrics.transient_steps=2", "metrics.snapshot_every=100"]


def _dense_spectra(run, step):
    X, y = run.training_data()["X"], run.training_data()["y"]
    from engine.criteria import get_criterion
    from engine.model import MLPSpec

    spec = MLPSpec(tuple(run.meta["sizes"]), run.config["model"]["activation"])
    pr = types.SimpleNamespace(spec=spec, criterion=get_criterion(run.config["train"]["criterion"]), X=X, y=y)
    theta = run.checkpoint(step)["theta"]
    G = dense_ggn(pr, theta)
    return torch.linalg.eigvalsh(G).numpy(), torch.linalg.eigvalsh(dense_hessian(pr, theta) - G).numpy()


def _honest(value, residual, spectrum):
    """Some eigenvalue lies within ‖Au − θu‖ = residual·|θ| of θ (Krylov–Bogoliubov)."""
    return np.abs(spectrum - value).min() <= residual * abs(value) * (1 + 1e-6) + 1e-12


@pytest.fixture(scope="module")
def certified_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("cert") / "run"
    mp = pytest.MonkeyPatch()
    mp.setattr(engine.snapshot, "GRAM_MAX", 0)  # the Lanczos (GGN) route for λ1(G), not the exact Gram one
    try:
        train(load_preset("dice-ce", SMALL), path)
    finally:
        mp.undo()
    return path


def test_snapshot_eigenvalues_match_a_dense_eigendecomposition(certified_run):
    with open_run(certified_run) as run:
        snaps = run.snapshots()
        steps = snaps["step"]
        assert len(steps) >= 2 and steps[0] == 2  # early and late
        for i, step in enumerate(steps):
            eg, er = _dense_spectra(run, int(step))
            rec = {k: v[i] for k, v in snaps.items()}
            assert rec["snapshot_full"] == 1
            assert rec["lambda_G1"] == pytest.approx(eg[-1], rel=1e-3)
            assert rec["lambda_HmG1"] == pytest.approx(er[-1], rel=1e-3)  # largest algebraic
            mag = er[-1] if abs(er[-1]) >= abs(er[0]) else er[0]
            assert rec["lambda_HmG_mag"] == pytest.approx(mag, rel=1e-3)  # largest magnitude, signed
            for name, spectrum in (("lambda_G1", eg), ("lambda_HmG1", er), ("lambda_HmG_mag", er)):
                assert rec[f"{name}_converged"] == 1 and rec[f"{name}_resid"] <= 1e-3
                assert _honest(rec[name], rec[f"{name}_resid"], spectrum), name


def test_unreachable_snapshot_tolerance_is_recorded_unconverged(tmp_path):
    cfg = load_preset("dice-ce", [*SMALL, "train.max_steps=3", "metrics.eig_tol=1e-12",
                                  "metrics.snapshot_eig_iters=3"])
    mp = pytest.MonkeyPatch()
    mp.setattr(engine.snapshot, "GRAM_MAX", 0)
    try:
        train(cfg, tmp_path / "run")
    finally:
        mp.undo()
    with open_run(tmp_path / "run") as run:
        snaps = run.snapshots()
    for name in ("lambda_G1", "lambda_HmG1", "lambda_HmG_mag"):
        assert (snaps[f"{name}_converged"] == 0).all() and (snaps[f"{name}_resid"] > 1e-12).all()
    # the per-sample ‖J_i‖ pairs: with 24-wide layers the exact route is used (residual 0)
    assert (snaps["s_1_resid"] == 0).all() and (snaps["s_1_converged"] == 1).all()


def test_cheap_and_full_snapshots_are_told_apart(tmp_path):
    cfg = load_preset("dice-ce", [*SMALL, "train.max_steps=9", "metrics.snapshot_every=2",
                                  "metrics.full_every=3", "metrics.transient_steps=0"])
    train(cfg, tmp_path / "run")
    with open_run(tmp_path / "run") as run:
        snaps = run.snapshots()
    full = snaps["snapshot_full"]
    assert snaps["step"].tolist() == [0, 2, 4, 6, 8]
    assert full.tolist() == [1, 0, 0, 1, 1]  # every third, and the last
    assert np.isnan(snaps["lambda_HmG1"][full == 0]).all() and np.isfinite(snaps["lambda_HmG1"][full == 1]).all()
    assert np.isfinite(snaps["lambda_G1"]).all() and np.isfinite(snaps["P_1"]).all()
