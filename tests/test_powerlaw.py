"""The power-law fit of max P^1 against dataset size (paper Table 2)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.analysis.powerlaw import PAPER_TABLE2, fit_power_law, max_p1, paper_row
from engine.errors import ConfigError
from engine.store import RunWriter, open_run


def test_recovers_known_c1_c2_exactly():
    D = np.repeat([468, 937, 1875, 3750, 7500], 4).astype(float)
    fit = fit_power_law(D, 0.0017 * D ** 0.23, bootstrap=0)
    assert fit.c1 == pytest.approx(0.0017, rel=1e-12) and fit.c2 == pytest.approx(0.23, rel=1e-12)
    assert fit.r2 == pytest.approx(1.0) and fit.n == 20 and fit.sizes == 5


def test_recovers_r2_and_intervals_from_noisy_data():
    rng = np.random.default_rng(3)
    D = np.repeat([390, 781, 1562, 3125, 6250], 16).astype(float)
    logy = math.log(0.0004) + 0.49 * np.log(D) + rng.normal(0, 0.3, D.size)
    fit = fit_power_law(D, np.exp(logy), bootstrap=500, seed=1)
    # R² against its definition
    pred = math.log(fit.c1) + fit.c2 * np.log(D)
    r2 = 1 - ((logy - pred) ** 2).sum() / ((logy - logy.mean()) ** 2).sum()
    assert fit.r2 == pytest.approx(r2, rel=1e-12)
    assert fit.c2_ci[0] < 0.49 < fit.c2_ci[1] and fit.c2_ci[1] - fit.c2_ci[0] < 0.3
    assert fit.c1_ci[0] < fit.c1 < fit.c1_ci[1]
    assert abs(fit.c2 - np.polyfit(np.log(D), logy, 1)[0]) < 1e-12


def test_rejects_fewer_than_two_sizes_and_bad_values():
    with pytest.raises(ConfigError, match="at least 2 dataset sizes, got 1"):
        fit_power_law([500, 500, 500], [0.1, 0.2, 0.3])
    with pytest.raises(ConfigError, match="not positive and finite"):
        fit_power_law([500, 1000], [0.1, float("nan")])


def test_paper_rows():
    assert paper_row("dice", "ce") == ("dice-ce", PAPER_TABLE2["dice-ce"])
    assert paper_row("digits", "ce") is None


def test_max_p1_skips_the_transient(tmp_path):
    with RunWriter.create(tmp_path / "r", config={}, meta={"n_train": 10}, num_eigs=1,
                          heartbeat_interval=None) as w:
        for step, p1 in [(5, 9.0), (10, 8.0), (11, 0.5), (20, 0.7)]:
            w.append_snapshot(step, {"P_1": p1})
    with open_run(tmp_path / "r") as run:
        assert max_p1(run) == 0.7
        assert math.isnan(max_p1(run, transient_steps=20))
