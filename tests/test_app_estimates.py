"""Unit tests of the status-bar estimates: ETA to the target loss, throughput, formatting."""

import math

import numpy as np
import pytest

from eos_tui.app.estimates import eta_seconds, eta_steps_to_target, fmt_duration, fmt_num, steps_per_second


def test_eta_exponential_decay_is_exact():
    step = np.arange(200.0)
    loss = 2.0 * np.exp(-step / 50.0)  # log-loss slope -1/50 per step
    left = eta_steps_to_target(step, loss, 0.01)
    expected = 50.0 * math.log(loss[-1] / 0.01)
    assert left == pytest.approx(expected, rel=1e-6)


def test_eta_uses_recent_slope_and_skips_transient():
    step = np.arange(300.0)
    loss = np.where(step < 10, 100.0, np.exp(-step / 100.0))  # wild transient then slow decay
    left = eta_steps_to_target(step, loss, 1e-3, window=100)
    assert left == pytest.approx(100.0 * math.log(loss[-1] / 1e-3), rel=1e-6)


def test_eta_reached_rising_and_unknown():
    step = np.arange(50.0)
    assert eta_steps_to_target(step, np.linspace(1, 0.005, 50), 0.01) == 0.0
    assert math.isnan(eta_steps_to_target(step, np.linspace(0.5, 1.0, 50), 0.01))  # not falling
    assert math.isnan(eta_steps_to_target(step[:2], np.array([1.0, 0.5]), 0.01))  # too few points
    assert math.isnan(eta_steps_to_target(step, np.full(50, np.nan), 0.01))
    assert math.isnan(eta_steps_to_target(step, np.linspace(1, 0.5, 50), 0.0))


def test_eta_ignores_nan_losses():
    step = np.arange(100.0)
    loss = np.exp(-step / 10.0)
    loss[::3] = np.nan
    assert eta_steps_to_target(step, loss, 1e-6) == pytest.approx(10.0 * math.log(np.nanmin(loss[-3:]) / 1e-6), rel=0.2)


def test_steps_per_second_and_eta_seconds():
    step = np.arange(100.0)
    wall = step * 0.25
    assert steps_per_second(step, wall) == pytest.approx(4.0)
    assert math.isnan(steps_per_second(step[:1], wall[:1]))
    assert math.isnan(steps_per_second(step, np.zeros(100)))
    assert eta_seconds(40, 4.0) == 10.0
    assert math.isnan(eta_seconds(float("nan"), 4.0))
    assert math.isnan(eta_seconds(10, float("nan")))


def test_formatting():
    assert fmt_duration(42) == "42s"
    assert fmt_duration(184) == "3m04s"
    assert fmt_duration(7500) == "2h05m"
    assert fmt_duration(90000) == "1d01h"
    assert fmt_duration(float("nan")) == "—"
    assert fmt_num(float("nan")) == "—" and fmt_num(None) == "—"
    assert fmt_num(6.666666) == "6.667"
    assert fmt_num(1.5e-5) == "1.500e-5"
    assert fmt_num(0) == "0"
