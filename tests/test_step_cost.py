"""The cost columns of `eos-tui presets`: snapshot counts, expected totals, random-data timing."""

from __future__ import annotations

import pytest

from conftest import TINY, tiny_config
from engine.config import load_preset
from engine.step_cost import (StepCost, cached_step_cost, expected_steps, format_duration,
                              measure_step_cost, snapshot_count)
from engine.store import open_run
from engine.trainer import train


@pytest.mark.parametrize("steps", [1, 10, 11, 25, 30])
def test_snapshot_count_matches_the_trainer(tmp_path, steps):
    cfg = tiny_config(f"train.max_steps={steps}", "metrics.layer_metrics=false", "train.target_loss=1e-9")
    train(cfg, tmp_path / "run")
    with open_run(tmp_path / "run") as run:
        taken = len(set(run.snapshots()["step"].tolist()))
    assert snapshot_count(cfg, steps) == taken


def test_expected_total_uses_the_measured_step_count():
    cfg = load_preset("dice-quick", ["train.expected_steps=200", "train.max_steps=3000", "metrics.snapshot_every=100"])
    assert expected_steps(cfg) == (200, True)
    assert expected_steps(load_preset("dice-quick", ["train.expected_steps=0"]))[1] is False
    cost = StepCost(step_s=0.5, snapshot_s=4.0, setup_s=3.0)
    assert snapshot_count(cfg, 200) == 3  # steps 10 (end of the transient), 100 and 199 (the last)
    assert cost.total(200, snapshot_count(cfg, 200)) == pytest.approx(3 + 100 + 3 * 4)
    assert format_duration(42) == "42 s" and format_duration(600) == "10.0 min"
    assert format_duration(3 * 3600) == "3.0 h"


def test_absent_data_is_timed_on_random_data_of_its_shape(monkeypatch, tmp_path):
    monkeypatch.setenv("EOS_TUI_DATA", str(tmp_path))
    cfg = load_preset("cifar-ce", [*TINY, "data.size=20", "train.lr=0.05"])
    cost = measure_step_cost("cifar-tiny", cfg, steps=1, random_data=True)
    assert cost.random_data and cost.step_s > 0
    assert cached_step_cost("cifar-tiny", cfg, random_data=True) == cost
    assert cached_step_cost("cifar-tiny", cfg) is None
