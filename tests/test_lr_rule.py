"""``train.lr = "auto"``: η = factor · 2/λ1(θ0) from a certified eigen-solve, recorded in the run."""

from __future__ import annotations

import math

import pytest
import torch
from typer.testing import CliRunner

from conftest import TINY, tiny_config
from dense_reference import dense_hessian
from engine import lr_rule
from engine.config import describe_lr, load_preset
from engine.errors import ConfigError
from engine.store import open_run
from engine.trainer import Trainer, train
from eos_tui.cli import app


def test_auto_lr_is_factor_times_two_over_the_dense_top_eigenvalue(tmp_path):
    cfg = tiny_config("train.lr=auto", "train.lr_factor=0.4", "model.width=6", "data.size=24")
    trainer = Trainer(cfg, tmp_path / "run")
    lam_dense = float(torch.linalg.eigvalsh(dense_hessian(trainer.problem, trainer.theta))[-1])
    rule = trainer.lr_rule
    assert rule.lambda1 == pytest.approx(lam_dense, rel=1e-6)
    assert rule.lr == pytest.approx(0.4 * 2 / lam_dense, rel=1e-6)
    assert rule.residual <= lr_rule.RESIDUAL_TOL
    assert trainer.cfg["train"]["lr"] == rule.lr and trainer.solver.lr == rule.lr


def test_the_run_records_the_resolved_lr_and_the_rule(tmp_path):
    cfg = tiny_config("train.lr=auto", "train.lr_factor=0.5", "train.max_steps=3")
    train(cfg, tmp_path / "run")
    with open_run(tmp_path / "run") as run:
        rule = run.meta["lr_rule"]
        steps = run.steps()
        recorded = run.config["train"]
    assert rule["setting"] == "auto" and rule["factor"] == 0.5 and rule["lambda1"] > 0
    assert rule["rule"] == "lr = factor * 2 / lambda1(H(theta0))"
    eta = 0.5 * 2 / rule["lambda1"]
    assert rule["lr"] == pytest.approx(eta) and run.meta["lr"] == pytest.approx(eta) and recorded["lr"] == pytest.approx(eta)
    assert steps["lr"][0] == pytest.approx(eta) and steps["threshold"][0] == pytest.approx(2 / eta)
    # GD starts below the edge by the factor: λ1(θ0) = factor · 2/η
    assert rule["lambda1"] == pytest.approx(0.5 * steps["threshold"][0])


def test_a_fixed_lr_is_kept_and_records_no_rule(tmp_path):
    trainer = Trainer(tiny_config("train.lr=0.25"), tmp_path / "run")
    assert trainer.lr_rule is None and trainer.meta()["lr_rule"] is None
    assert trainer.solver.lr == 0.25


def test_an_unconverged_solve_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(lr_rule, "MAX_STEPS", 3)
    with pytest.raises(ConfigError) as err:
        Trainer(tiny_config("train.lr=auto"), tmp_path / "run")
    text = str(err.value)
    assert "did not converge" in text and "set train.lr to a number" in text and "\n" not in text


@pytest.mark.parametrize("override, message", [
    ("train.lr_factor=0", "train.lr_factor must be > 0"),
    ("train.lr_factor=-0.5", "train.lr_factor must be > 0"),
    ("train.lr_factor=half", "train.lr_factor must be a number"),
    ("train.lr=fast", 'train.lr must be a number or "auto"'),
])
def test_bad_rule_settings_are_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_preset("dice-quick", ["train.lr=auto", override])
    result = CliRunner().invoke(app, ["run", "preset", "dice-quick", "--no-ui", "--set", "train.lr=auto",
                                      "--set", override], catch_exceptions=False)
    assert result.exit_code == 2
    assert result.output.count("error:") == 1 and message in result.output


def test_listing_shows_the_rule():
    assert describe_lr(load_preset("dice-quick", ["train.lr=AUTO", "train.lr_factor=0.5"])) == "auto ×0.5"
    assert describe_lr(load_preset("dice-quick", ["train.lr=0.3"])) == "0.3"
    assert math.isclose(load_preset("dice-quick", [*TINY])["train"]["lr"], 0.5)


