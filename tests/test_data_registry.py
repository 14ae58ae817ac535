"""Tests of the data registry, subsets, data directories and the digits set (engine/data/)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.data import (
    DATASETS,
    TrainingSet,
    dataset_info,
    dataset_module,
    default_data_dir,
    halving_sizes,
    load_training_set,
    resolve_data_dir,
    subset_indices,
)
from engine.data import registry
from engine.errors import DataError


def test_dataset_names() -> None:
    assert DATASETS == ("dice", "digits", "cifar10", "af", "sst")


def test_unknown_dataset_lists_valid_names() -> None:
    with pytest.raises(DataError) as info:
        dataset_module("mnist")
    message = str(info.value)
    assert "mnist" in message and "\n" not in message
    for name in DATASETS:
        assert name in message


def test_missing_module_is_a_data_error_and_does_not_break_dice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(registry._MODULES, "cifar10", "engine.data._no_such_module")
    with pytest.raises(DataError, match="not available"):
        dataset_module("cifar10")
    assert dataset_module("dice").NAME == "dice"


def test_importing_the_package_loads_no_dataset_module(monkeypatch: pytest.MonkeyPatch) -> None:
    import engine

    ours = [m for m in sys.modules if m == "engine.data" or m.startswith("engine.data.")]
    for name in ours:  # monkeypatch restores the original modules afterwards
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(engine, "data", sys.modules.get("engine.data"), raising=False)
    try:
        importlib.import_module("engine.data")
        loaded = [m for m in ("dice", "digits", "cifar", "ucr", "sst") if f"engine.data.{m}" in sys.modules]
    finally:
        for name in [m for m in sys.modules if m == "engine.data" or m.startswith("engine.data.")]:
            if name not in ours:
                del sys.modules[name]
    assert loaded == []


def test_subset_indices_deterministic_sorted_distinct() -> None:
    a = subset_indices(60000, 468, 3)
    assert a.dtype == np.int64 and a.shape == (468,)
    assert np.array_equal(a, np.unique(a)) and a.min() >= 0 and a.max() < 60000
    assert np.array_equal(a, subset_indices(60000, 468, 3))
    assert not np.array_equal(a, subset_indices(60000, 468, 4))
    assert np.array_equal(subset_indices(10, 10, 0), np.arange(10))


def test_subset_independent_of_other_seeded_streams() -> None:
    seed = 0
    np.random.seed(seed)
    torch.manual_seed(seed)
    first = subset_indices(60000, 937, seed)
    np.random.seed(123)  # global numpy/torch state (init seeds) must not matter
    torch.manual_seed(123)
    np.random.rand(1000)
    assert np.array_equal(first, subset_indices(60000, 937, seed))
    # and it is not the plain numpy stream of the same seed
    plain = np.sort(np.random.default_rng(seed).permutation(60000)[:937])
    assert not np.array_equal(first, plain)


def test_subsets_of_one_seed_are_nested() -> None:
    sizes = halving_sizes(60000)
    subsets = [set(subset_indices(60000, s, 1).tolist()) for s in sizes]
    for small, large in zip(subsets, subsets[1:]):
        assert small < large


@pytest.mark.parametrize("size", [0, -5, 60001])
def test_subset_size_out_of_range(size: int) -> None:
    with pytest.raises(DataError, match="out of range"):
        subset_indices(60000, size, 0)


def test_halving_sizes_match_paper() -> None:
    assert halving_sizes(60000) == [468, 937, 1875, 3750, 7500]
    assert halving_sizes(50000) == [390, 781, 1562, 3125, 6250]
    assert halving_sizes(50000, 128, 16) == [390, 781, 1562, 3125]
    assert halving_sizes(7680) == [60, 120, 240, 480, 960]
    with pytest.raises(DataError):
        halving_sizes(60000, 100, 8)


def test_resolve_data_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("EOS_TUI_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "eos-tui"
    assert resolve_data_dir(None) == tmp_path / "xdg" / "eos-tui"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_data_dir() == tmp_path / "home" / ".cache" / "eos-tui"
    monkeypatch.setenv("EOS_TUI_DATA", str(tmp_path / "env"))
    assert resolve_data_dir(None) == tmp_path / "env"
    assert resolve_data_dir("") == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "cli") == tmp_path / "cli"
    assert resolve_data_dir(str(tmp_path / "cli")) == tmp_path / "cli"


def test_load_dice_training_set() -> None:
    ts = load_training_set("dice", size=60, subset_seed=2)
    assert isinstance(ts, TrainingSet)
    assert ts.X.shape == (60, 1024) and ts.X.dtype == torch.float64
    assert ts.y.shape == (60,) and ts.y.dtype == torch.int64
    assert ts.indices.dtype == torch.int64
    assert np.array_equal(ts.indices.numpy(), subset_indices(60000, 60, 2))
    assert torch.equal(ts.y, ts.indices % 6)
    assert (ts.n, ts.input_dim, ts.n_total, ts.num_classes) == (60, 1024, 60000, 6)
    assert ts.input_shape == (32, 32) and ts.name == "dice" and ts.description
    again = load_training_set("dice", size=60, subset_seed=2, dtype=torch.float32,
                              options={"image_size": 16})
    assert again.X.shape == (60, 256) and again.X.dtype == torch.float32
    assert again.input_shape == (16, 16)
    assert torch.equal(again.indices, ts.indices)


def test_default_size_is_smallest_paper_size() -> None:
    ts = load_training_set("digits", size=None, subset_seed=0)
    assert ts.n == dataset_module("digits").PAPER_SIZES[0] == 224


@pytest.mark.parametrize("size", [0, -1, 60001, 2.5])
def test_training_set_size_out_of_range(size: object) -> None:
    with pytest.raises(DataError):
        load_training_set("dice", size=size, subset_seed=0)  # type: ignore[arg-type]


def test_unknown_option_is_a_data_error() -> None:
    with pytest.raises(DataError, match="image_sise"):
        load_training_set("dice", size=6, subset_seed=0, options={"image_sise": 16})


def test_digits_training_set() -> None:
    ts = load_training_set("digits", size=1797, subset_seed=0)
    assert ts.X.shape == (1797, 64) and ts.y.shape == (1797,)
    assert ts.num_classes == 10 and ts.input_shape == (8, 8)
    assert torch.isfinite(ts.X).all()
    assert set(ts.y.tolist()) == set(range(10))
    # full-set per-pixel standardisation: zero mean, unit std except constant pixels (all 0)
    assert ts.X.mean(dim=0).abs().max() < 1e-10
    std = ts.X.std(dim=0, unbiased=False)
    assert torch.all(((std - 1.0).abs() < 1e-10) | (std == 0))
    sub = load_training_set("digits", size=100, subset_seed=5)
    assert torch.equal(sub.X, ts.X[sub.indices])  # features independent of the subset
    with pytest.raises(DataError):
        load_training_set("digits", size=1798, subset_seed=0)


def test_dataset_info() -> None:
    info = dataset_info("dice")
    assert info == {
        "name": "dice", "n_total": 60000, "num_classes": 6, "input_dim": 1024,
        "paper_sizes": [468, 937, 1875, 3750, 7500], "needs_download": False,
        "available": True, "description": info["description"],
    }
    digits = dataset_info("digits")
    assert digits["input_dim"] == 64 and digits["n_total"] == 1797 and digits["available"]


@pytest.mark.skipif(importlib.util.find_spec("engine.data.cifar") is None,
                    reason="engine/data/cifar.py not written yet")
def test_missing_cifar_names_the_command(tmp_path: Path) -> None:
    assert dataset_info("cifar10", tmp_path)["available"] is False
    with pytest.raises(DataError, match="eos-tui data"):
        load_training_set("cifar10", size=390, subset_seed=0, data_dir=tmp_path)
