"""Unit tests of the pure downsampling / interpolation functions used by every plot."""

import numpy as np
import pytest

from eos_tui.app.downsample import finite_xy, interp_at, minmax_downsample, value_at


def test_short_series_unchanged():
    x = np.arange(10.0)
    y = x**2
    xd, yd = minmax_downsample(x, y, 20)
    assert np.array_equal(xd, x) and np.array_equal(yd, y)


@pytest.mark.parametrize("n", [1000, 100_000])
def test_bounded_by_twice_the_buckets(n):
    x = np.arange(n, dtype=float)
    y = np.sin(x / 37.0)
    xd, yd = minmax_downsample(x, y, 50)
    assert len(xd) <= 2 * 50 + 2
    assert np.all(np.diff(xd) > 0)  # x order kept


def test_keeps_extremes_and_endpoints():
    rng = np.random.default_rng(1)
    x = np.arange(5000.0)
    y = rng.standard_normal(5000)
    y[1234] = 50.0
    y[4321] = -50.0
    xd, yd = minmax_downsample(x, y, 40)
    assert 50.0 in yd and -50.0 in yd
    assert xd[0] == 0 and xd[-1] == 4999
    assert yd.max() == y.max() and yd.min() == y.min()


def test_nan_points_are_skipped_not_propagated():
    x = np.arange(1000.0)
    y = np.where(x % 5 == 0, x, np.nan)  # e.g. λ1 computed every 5 steps
    xd, yd = minmax_downsample(x, y, 20)
    assert np.all(np.isfinite(yd))
    assert len(xd) <= 42
    xd, yd = minmax_downsample(x, np.full(1000, np.nan), 20)
    assert len(xd) == 0


def test_positive_drops_non_positive_for_log_axes():
    x = np.arange(6.0)
    y = np.array([1.0, 0.0, -1.0, 2.0, np.inf, 3.0])
    xd, yd = minmax_downsample(x, y, 10, positive=True)
    assert yd.tolist() == [1.0, 2.0, 3.0]


def test_unsorted_x_is_sorted():
    x = np.array([3.0, 1.0, 2.0] * 100) + np.repeat(np.arange(100) * 10.0, 3)
    y = np.arange(300.0)
    xd, _ = minmax_downsample(x, y, 10)
    assert np.all(np.diff(xd) >= 0)


def test_constant_x():
    xd, yd = minmax_downsample(np.zeros(100), np.arange(100.0), 5)
    assert len(xd) <= 12 and yd.min() == 0 and yd.max() == 99


def test_finite_xy_and_interp():
    x = np.array([0.0, 1.0, 2.0, 3.0])
    y = np.array([0.0, np.nan, 2.0, 3.0])
    xf, yf = finite_xy(x, y)
    assert xf.tolist() == [0.0, 2.0, 3.0]
    assert interp_at(x, y, 1.0) == pytest.approx(1.0)
    assert np.isnan(interp_at(x, y, 5.0))
    assert interp_at(x, y, np.array([0.5, 2.5])).tolist() == pytest.approx([0.5, 2.5])
    assert np.isnan(interp_at(x, np.full(4, np.nan), 1.0))


def test_value_at_is_last_known_value():
    x = np.arange(5.0)
    y = np.array([1.0, np.nan, 3.0, np.nan, np.nan])
    assert value_at(x, y, 1.5) == 1.0
    assert value_at(x, y, 4.0) == 3.0
    assert np.isnan(value_at(x, y, -1.0))

